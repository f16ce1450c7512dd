"""What a stage sees while it runs: its input, earlier outputs, progress and cancellation."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vigia.audit import check_details
from vigia.blobs import BlobStore
from vigia.config import Settings
from vigia.escalation import EscalationRequest, NotificationRequest, Urgency
from vigia.exceptions import ConfigurationError, InvalidInput, StageCancelled
from vigia.pipeline import Severity

if TYPE_CHECKING:  # the store brings SQLAlchemy: a stage's module need not load it
    from vigia.store.database import Database

ProgressCallback = Callable[[float, str | None], None]
#: Progress messages are short status lines, not documents.
MAX_PROGRESS_MESSAGE = 500
#: Reasons given to reviewers are one short line of the stage author's own wording.
MAX_REASON = 120
MAX_NOTIFICATION_TEXT = 1000
_ACTION = re.compile(r"^[a-z][a-z0-9_.]{0,49}$")


class StageContext:
    """Handed to every stage function.

    ``input`` is the job's input; ``outputs`` holds the outputs of the stages this one
    depends on, directly or not (a failed non-critical stage is simply absent).
    """

    __slots__ = (
        "_cancelled",
        "_report",
        "attempt",
        "database",
        "decisions",
        "escalations",
        "files",
        "input",
        "job_id",
        "notifications",
        "outputs",
        "settings",
        "stage",
        "tenant",
    )

    def __init__(
        self,
        *,
        job_id: str,
        stage: str,
        attempt: int,
        input: Any,
        outputs: Mapping[str, Any],
        report: ProgressCallback | None = None,
        files: BlobStore | None = None,
        settings: Settings | None = None,
        tenant: str | None = None,
        database: Database | None = None,
    ) -> None:
        self.job_id = job_id
        self.stage = stage
        self.attempt = attempt
        self.input = input
        self.outputs = outputs
        self._report = report
        #: The installation's blob storage (the job's files), and its settings.
        self.files = files
        self.settings = settings
        #: Whose job this is: a workload's own tables (documents) are kept per tenant.
        self.tenant = tenant
        #: The installation's database, for workloads with stores of their own (`vigia.store`).
        self.database = database
        self._cancelled = threading.Event()
        #: What the stage asked for with `escalate` and recorded with `audit`, in order.
        self.escalations: list[EscalationRequest] = []
        self.decisions: list[tuple[str, dict[str, Any]]] = []
        self.notifications: list[NotificationRequest] = []

    def require_database(self) -> Database:
        """The database, for stages that keep records of their own (documents)."""
        if self.database is None:
            raise ConfigurationError("this stage keeps records in the database, but none was given to it")
        return self.database

    def require_files(self) -> BlobStore:
        """The blob storage, for stages that read the job's files."""
        if self.files is None:
            raise ConfigurationError("this stage reads the job's files, but no blob storage was given to it")
        return self.files

    def notify(self, role: str, urgency: Urgency | str, subject: str, text: str = "") -> None:
        """Tell ``role`` something once the stage ends (a notification over its channels,
        without a review item). Your own wording with ids and codes: never patient data."""
        subject, text = str(subject).strip(), str(text).strip()
        if not subject or len(subject) > MAX_REASON or "\n" in subject:
            raise InvalidInput(f"a notification subject is one line of at most {MAX_REASON} characters")
        if len(text) > MAX_NOTIFICATION_TEXT:
            raise InvalidInput(f"a notification text is at most {MAX_NOTIFICATION_TEXT} characters")
        self.notifications.append(NotificationRequest(role, Urgency(str(urgency).lower()), subject, text))

    def escalate(
        self,
        reason: str,
        *,
        severity: Severity | str = Severity.HIGH,
        role: str | None = None,
        urgency: Urgency | str | None = None,
    ) -> None:
        """Send this job to human review once the stage ends (whatever its outcome): a
        review item for ``role`` and a notification. ``reason`` is one short line of your
        own wording, shown to reviewers and audited: never patient data."""
        reason = str(reason).strip()
        if not reason or len(reason) > MAX_REASON or "\n" in reason:
            raise InvalidInput(f"an escalation reason must be one line of at most {MAX_REASON} characters")
        self.escalations.append(
            EscalationRequest(
                reason,
                Severity(str(severity).lower()),
                role,
                Urgency(str(urgency).lower()) if urgency is not None else None,
            )
        )

    def audit(self, action: str, **details: Any) -> None:
        """Record a clinical decision in the audit log once the stage ends, e.g.
        ``ctx.audit("triage.decided", level="urgent", grade=4)``. Details are codes,
        numbers and flags; free text is refused (`InvalidAuditDetails`)."""
        if not _ACTION.match(action):
            raise InvalidInput(f"an audit action is a short dotted name like 'triage.decided', got {action!r}")
        self.decisions.append((action, check_details(details)))

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far this stage is, from 0.0 to 1.0, with an optional short message.

        Thread-safe and cheap: call it as often as the work allows. Messages must not
        contain patient data; they are shown to users and stored with the job's events.
        """
        if self._report is not None:
            if message is not None:
                message = str(message).replace("\x00", "\ufffd")[:MAX_PROGRESS_MESSAGE]
            self._report(float(fraction), message)

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled or this attempt was abandoned: stop promptly."""
        return self._cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise StageCancelled()

    def cancel(self) -> None:
        """Called by the executor, never by stages."""
        self._cancelled.set()
