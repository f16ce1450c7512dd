"""Oversight that follows what the engine decides, written in the same transaction: the
review items a settlement's escalations open, the notifications that tell people (a job of
the notification pipeline per channel of the role), and the audit entries.

A review and its notification are written with the change that caused them or not at all,
so that no escalation is lost between a commit and a send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from vigia.audit import AuditDraft
from vigia.escalation import EscalationDraft, Review, ReviewStatus, Safeguards, Urgency
from vigia.job import Job, new_job_id
from vigia.notify.message import Message
from vigia.registry import Registry
from vigia.settlement import Settled, Settlement
from vigia.store.base import UnitOfWork
from vigia.submission import Submitted, input_fingerprint, new_job

log = logging.getLogger("vigia.coordinator")

#: Notifications jump their queue by urgency.
NOTIFICATION_PRIORITY = {Urgency.CRITICAL: 100, Urgency.HIGH: 50, Urgency.NORMAL: 0}


class Oversight:
    """Writes the reviews, notifications and audit entries a unit of work leads to."""

    def __init__(self, registry: Registry, safeguards: Safeguards, clock: Callable[[], float]) -> None:
        self.registry = registry
        self.safeguards = safeguards
        self._clock = clock

    def commit(self, unit: UnitOfWork, settlement: Settlement) -> Settled:
        """Write what the settlement decided: changes, events, the reviews its escalations
        open with their notifications, its messages, and its audit entries (chained last:
        the chain's lock is then held only for the end of the transaction)."""
        if settlement.writes:
            unit.write(settlement.writes)
        settled = settlement.settled
        settled.events = settlement.writes.events
        for job, draft in settlement.escalations:
            self._open_review(unit, settlement, job, draft)
        for job, message in settlement.messages:
            settled.notifications.extend(self.notification_jobs(unit, job.tenant, message, settlement.now))
        self.audit(
            unit,
            [
                self.draft(note.action, settlement.actor, settlement.now, note.job, dict(note.details))
                for note in settlement.audits
            ],
        )
        return settled

    def subject(self, job: Job | None) -> str | None:
        """The pseudonym of the job's patient, if its pipeline names one."""
        if job is None or job.pipeline not in self.registry:
            return None
        return self.safeguards.subject_of(self.registry.get(job.pipeline), job.input)

    def draft(self, action: str, actor: str, at: float, job: Job | None, details: dict[str, Any]) -> AuditDraft:
        """An audit entry about ``job`` (or the installation), its patient pseudonymised."""
        return AuditDraft(
            action, actor, at, job.tenant if job else None, job.id if job else None, self.subject(job), details
        )

    @staticmethod
    def audit(unit: UnitOfWork, drafts: Sequence[AuditDraft]) -> None:
        if drafts:
            unit.append_audit(drafts)

    def audit_submissions(
        self, unit: UnitOfWork, submitted: Sequence[tuple[str, Submitted]], batch_id: str | None = None
    ) -> None:
        drafts = []
        for actor, done in submitted:
            details: dict[str, Any] = {"pipeline": done.job.pipeline, "priority": done.job.priority}
            if batch_id is not None:
                details["batch_id"] = batch_id
            drafts.append(self.draft("job.submitted", actor, done.job.created_at, done.job, details))
        self.audit(unit, drafts)

    def _open_review(self, unit: UnitOfWork, settlement: Settlement, job: Job, draft: EscalationDraft) -> None:
        review_id = new_job_id(settlement.now)
        unit.insert_review(
            Review(
                id=review_id,
                tenant=job.tenant,
                job_id=job.id,
                stage=draft.stage,
                kind=draft.kind,
                reason=draft.reason,
                severity=draft.severity,
                role=draft.role,
                urgency=draft.urgency,
                status=ReviewStatus.OPEN,
                created_at=settlement.now,
            )
        )
        details = {
            "review_id": review_id,
            "pipeline": job.pipeline,
            "stage": draft.stage,
            "kind": draft.kind.value,
            "severity": draft.severity.value,
            "role": draft.role,
            "urgency": draft.urgency.value,
            "reason": draft.reason[:120],
        }
        settlement.audit(job, "review.opened", details)
        log.warning("review.opened", extra={"job_id": job.id, "review_id": review_id, "role": draft.role})
        if not draft.notify:
            return
        message = Message(
            id=review_id,
            subject=f"{job.pipeline}: human review needed ({draft.severity.value})",
            text=f"{draft.reason}\nJob {job.id}, stage {draft.stage or '-'}, review {review_id}.",
            urgency=draft.urgency,
            role=draft.role,
            job_id=job.id,
            review_id=review_id,
            fields={"pipeline": job.pipeline, "stage": draft.stage, "severity": draft.severity.value},
        )
        settlement.settled.notifications.extend(self.notification_jobs(unit, job.tenant, message, settlement.now))

    def notification_jobs(self, unit: UnitOfWork, tenant: str, message: Message, now: float) -> list[Job]:
        """Jobs of the notification pipeline delivering ``message`` over each channel of its
        role, each copy with an id of its own."""
        notifier = self.safeguards.notification_pipeline
        if notifier is None:
            return []
        created = []
        for channel in self.safeguards.channels_for(message.role):
            body = message.with_id(new_job_id(now)).to_dict()
            fingerprint = input_fingerprint(notifier.name, [{**body, "id": None}, channel, now])
            created.append(
                new_job(
                    notifier,
                    {"channel": channel, "message": body},
                    fingerprint,
                    tenant=tenant,
                    priority=NOTIFICATION_PRIORITY[message.urgency],
                    now=self._clock(),
                )
            )
        if created:
            unit.insert_jobs([new for new, _ in created], [event for _, done in created for event in done.events])
        return [done.job for _, done in created]
