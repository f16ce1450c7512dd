"""Clinical failure handling through the HTTP API with embedded workers, on SQLite and
PostgreSQL: severity policies, escalation to human review with notifications delivered to
local servers speaking the real protocols, the dead-letter queue, the audit chain, patient
data kept out of logs and audit, monitoring and metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from tests.harness import API, Harness, assert_error, harness
from tests.pipelines import journal, switches
from tests.receivers import WebhookReceiver, smtp_server, webhook_receiver
from vigia.audit import AuditDraft, Pseudonymiser, chain, chain_key, verify
from vigia.cli import app
from vigia.store.database import Database
from vigia.store.jobs import SQLJobStore
from vigia.store.oversight import OversightStore

SECRET = "receiver-secret-7f3a"
AUDIT_KEY = "11" * 32
CHAIN_KEY = chain_key(bytes.fromhex(AUDIT_KEY))
pytestmark = pytest.mark.timeout(120)


def oversight_settings(receiver: WebhookReceiver, **more: Any) -> dict[str, Any]:
    channels = {"hook": {"type": "webhook", "url": receiver.url, "secret": SECRET}}
    channels.update(more.pop("channels", {}))
    routes = more.pop("routes", {"*": ["hook"]})
    return {
        "notify_channels": json.dumps(channels),
        "notify_routes": json.dumps(routes),
        "audit_key": AUDIT_KEY,
        **more,
    }


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver(SECRET) as running:
        yield running


@pytest.fixture
def oversee(store_url: str, tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Harness]:
    """The API on each store, notifications going to the local webhook receiver."""
    with harness(store_url, tmp_path, **oversight_settings(receiver)) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_switches() -> Iterator[None]:
    switches.clear()
    journal.clear()
    yield
    switches.clear()


def wait_for(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def reviews(api: Harness, who: str = "reviewer", **params: Any) -> list[dict[str, Any]]:
    response = api.client.get(f"{API}/reviews", params=params, headers=api.headers(who))
    assert response.status_code == 200, response.text
    return list(response.json()["reviews"])


def audit_entries(api: Harness) -> list[Any]:
    return list(api.vigia.oversight.audit_entries())


def events_of(api: Harness, job_id: str) -> list[dict[str, Any]]:
    return [event.to_dict() for event in api.vigia.store.events_after(job_id)]


# --- severity policies and escalation ---------------------------------------------------------


def test_a_critical_stage_escalates_at_its_first_failure_and_notifies(
    oversee: Harness, receiver: WebhookReceiver
) -> None:
    job = oversee.submit("t_critical", {"patient_code": "PT-0042"})
    done = oversee.wait(job["id"])

    assert done["state"] == "dead"
    assert done["awaiting_review"] is True
    [review] = reviews(oversee)
    assert (review["job_id"], review["stage"], review["kind"]) == (job["id"], "vital_check", "failure")
    assert (review["severity"], review["role"], review["urgency"], review["status"]) == (
        "critical",
        "medical_team",
        "critical",
        "open",
    )
    assert "failed once: ConnectionError; retrying" in review["reason"]  # at the first failure
    assert [summary["id"] for summary in done["reviews"]] == [review["id"]]

    # The notification, delivered to the webhook receiver with a valid signature.
    [delivery] = wait_for(receiver.accepted, what="the notification")
    assert delivery.signed
    body = delivery.json
    assert (body["urgency"], body["role"], body["job_id"], body["review_id"]) == (
        "critical",
        "medical_team",
        job["id"],
        review["id"],
    )
    assert body["subject"] == "t_critical: human review needed (critical)"

    # The job's stream says so before its final event.
    types = [event["type"] for event in events_of(oversee, job["id"])]
    assert types.index("job.escalated") < types.index("job.finished")

    # Audited, with the patient pseudonymised.
    opened = [entry for entry in audit_entries(oversee) if entry.action == "review.opened"]
    assert [entry.details["review_id"] for entry in opened] == [review["id"]]
    assert opened[0].subject == Pseudonymiser(bytes.fromhex(AUDIT_KEY))("PT-0042")

    # The notification is listed with its delivery state.
    def delivered() -> list[dict[str, Any]]:
        response = oversee.client.get(f"{API}/notifications", headers=oversee.headers("viewer"))
        return [item for item in response.json()["notifications"] if item["delivery"] == "delivered"]

    [listed] = wait_for(delivered, what="the notification to be recorded as delivered")
    assert (listed["channel"], listed["about_job"], listed["attempts"]) == ("hook", job["id"], 1)
    # A page to clinicians is not a submitter's to stop (an admin's cancel meets its end state).
    cancel = f"{API}/jobs/{listed['id']}/cancel"
    assert_error(oversee.client.post(cancel, headers=oversee.headers("submitter")), 403, "permission_denied")
    assert_error(oversee.client.post(cancel, headers=oversee.headers("admin")), 409)


def test_a_low_stage_never_escalates(oversee: Harness, receiver: WebhookReceiver) -> None:
    job = oversee.submit("t_low")
    done = oversee.wait(job["id"])

    assert done["state"] == "dead"
    assert done["awaiting_review"] is False
    assert reviews(oversee) == []
    time.sleep(0.3)
    assert receiver.deliveries == []
    assert "job.escalated" not in [event["type"] for event in events_of(oversee, job["id"])]


def test_a_result_rule_sends_low_confidence_to_the_specialists(oversee: Harness, receiver: WebhookReceiver) -> None:
    doubtful = oversee.submit("t_confidence", {"patient_code": "PT-7", "confidence": 0.41})
    confident = oversee.submit("t_confidence", {"patient_code": "PT-8", "confidence": 0.60})

    doubtful_done, confident_done = oversee.wait(doubtful["id"]), oversee.wait(confident["id"])

    assert (doubtful_done["state"], doubtful_done["awaiting_review"]) == ("succeeded", True)
    assert (confident_done["state"], confident_done["awaiting_review"]) == ("succeeded", False)
    [review] = reviews(oversee)
    assert (review["job_id"], review["kind"], review["stage"]) == (doubtful["id"], "result", "detect")
    assert (review["reason"], review["role"], review["severity"]) == ("confidence below 0.60", "specialists", "high")
    [delivery] = wait_for(receiver.accepted, what="the notification")
    assert delivery.json["role"] == "specialists"


def test_severity_policies_are_configurable(store_url: str, tmp_path: Path, receiver: WebhookReceiver) -> None:
    policies = json.dumps({"low": {"escalate_after": 1, "role": "operations", "notify": True}})
    with harness(store_url, tmp_path, **oversight_settings(receiver, severity_policies=policies)) as api:
        job = api.submit("t_low")
        api.wait(job["id"])

        [review] = reviews(api)
        assert (review["severity"], review["role"]) == ("low", "operations")
        wait_for(receiver.accepted, what="the notification")


# --- human review ------------------------------------------------------------------------------


def test_reviewers_acknowledge_then_resolve_and_roles_and_tenants_are_enforced(oversee: Harness) -> None:
    job = oversee.submit("t_confidence", {"patient_code": "PT-1", "confidence": 0.2})
    oversee.wait(job["id"])
    [review] = reviews(oversee)
    path = f"{API}/reviews/{review['id']}"

    assert_error(oversee.client.post(f"{path}/acknowledge", headers=oversee.headers("viewer")), 403)
    assert_error(oversee.client.post(f"{path}/acknowledge", headers=oversee.headers("submitter")), 403)
    assert_error(oversee.client.post(f"{path}/acknowledge", headers=oversee.headers("other_admin")), 404)
    assert reviews(oversee, who="other_admin") == []

    taken = oversee.client.post(f"{path}/acknowledge", headers=oversee.headers("reviewer"))
    assert taken.status_code == 200, taken.text
    assert (taken.json()["status"], taken.json()["acknowledged_by"]) == ("acknowledged", oversee.key_ids["reviewer"])
    assert_error(oversee.client.post(f"{path}/acknowledge", headers=oversee.headers("reviewer")), 409)
    assert_error(oversee.client.post(f"{path}/resolve", json={"note": ""}, headers=oversee.headers("reviewer")), 422)
    assert oversee.job(job["id"])["awaiting_review"] is True

    note = "Wound re-photographed; specialist confirms stage 2."
    resolved = oversee.client.post(f"{path}/resolve", json={"note": note}, headers=oversee.headers("reviewer"))
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolution"]) == ("resolved", note)
    assert_error(oversee.client.post(f"{path}/resolve", json={"note": "again"}, headers=oversee.headers("admin")), 409)
    assert oversee.job(job["id"])["awaiting_review"] is False
    assert reviews(oversee, status="open") == []

    actions = [(entry.action, entry.actor) for entry in audit_entries(oversee) if entry.action.startswith("review.")]
    assert actions == [
        ("review.opened", "system"),
        ("review.acknowledged", oversee.key_ids["reviewer"]),
        ("review.resolved", oversee.key_ids["reviewer"]),
    ]
    # The reviewer's note stays with the review, out of the audit log.
    assert all(note not in json.dumps(entry.to_dict()) for entry in audit_entries(oversee))


# --- the dead-letter queue ---------------------------------------------------------------------


def test_retrying_a_dead_job_resumes_at_the_failed_stage_keeping_earlier_outputs(oversee: Harness) -> None:
    job = oversee.submit("t_resumable", {"n": 7})
    assert oversee.wait(job["id"])["state"] == "dead"

    listed = oversee.client.get(f"{API}/dlq", headers=oversee.headers("viewer")).json()["jobs"]
    assert [(item["job"]["id"], item["failed_stage"], item["error_type"]) for item in listed] == [
        (job["id"], "analyse", "TimeoutError")
    ]
    stats = oversee.client.get(f"{API}/dlq/statistics", headers=oversee.headers("viewer")).json()
    assert (stats["total"], stats["by_pipeline"], stats["by_stage"]) == (1, {"t_resumable": 1}, {"analyse": 1})
    assert stats["by_error_type"] == {"TimeoutError": 1} and sum(item["count"] for item in stats["by_hour"]) == 1
    # Filtered by the failed stage (a 500 once: the stage query lost its FROM clause).
    by_stage = oversee.client.get(f"{API}/dlq/statistics", params={"stage": "analyse"}, headers=oversee.headers())
    assert by_stage.status_code == 200, by_stage.text
    assert by_stage.json() == stats
    elsewhere = oversee.client.get(f"{API}/dlq/statistics", params={"stage": "load"}, headers=oversee.headers())
    assert elsewhere.status_code == 200, elsewhere.text
    assert (elsewhere.json()["total"], elsewhere.json()["by_stage"], elsewhere.json()["by_hour"]) == (0, {}, [])

    assert_error(oversee.client.post(f"{API}/jobs/{job['id']}/retry", headers=oversee.headers("submitter")), 403)
    switches["analyse_broken"] = False
    retried = oversee.client.post(f"{API}/jobs/{job['id']}/retry", headers=oversee.headers("admin"))
    assert retried.status_code == 202, retried.text

    done = oversee.wait(job["id"])
    assert done["state"] == "succeeded"
    result = oversee.client.get(f"{API}/jobs/{job['id']}/result", headers=oversee.headers()).json()
    assert result["result"] == {"analysed": 7}
    # "load" ran once: its output was kept; "analyse" ran again from a fresh count.
    assert journal.order() == [f"{job['id']}:load", f"{job['id']}:analyse", f"{job['id']}:analyse"]
    assert {stage["stage"]: stage["attempts"] for stage in done["stages"]} == {"load": 1, "analyse": 1}
    assert "job.retried" in [event["type"] for event in events_of(oversee, job["id"])]
    assert_error(oversee.client.post(f"{API}/jobs/{job['id']}/retry", headers=oversee.headers("admin")), 409)
    retries = [entry for entry in audit_entries(oversee) if entry.action == "job.retried"]
    assert [(entry.job_id, entry.actor) for entry in retries] == [(job["id"], oversee.key_ids["admin"])]


def test_bulk_retry_and_purge_select_dead_jobs_by_filter(oversee: Harness) -> None:
    resumable = [oversee.submit("t_resumable", {"n": n})["id"] for n in range(3)]
    critical = oversee.submit("t_critical", {"patient_code": "PT-1"})["id"]
    for job_id in [*resumable, critical]:
        assert oversee.wait(job_id)["state"] == "dead"
    switches["analyse_broken"] = False

    refused = oversee.client.post(f"{API}/dlq/retry", json={"pipeline": "t_resumable"}, headers=oversee.headers())
    assert_error(refused, 403)
    bulk = oversee.client.post(f"{API}/dlq/retry", json={"pipeline": "t_resumable"}, headers=oversee.headers("admin"))
    assert bulk.json() == {"count": 3}
    assert {oversee.wait(job_id)["state"] for job_id in resumable} == {"succeeded"}
    assert oversee.job(critical)["state"] == "dead"

    assert_error(oversee.client.delete(f"{API}/dlq", headers=oversee.headers("admin")), 422)
    assert_error(oversee.client.delete(f"{API}/dlq", params={"pipeline": "t_critical"}, headers=oversee.headers()), 403)
    purged = oversee.client.delete(
        f"{API}/dlq", params={"error_type": "ConnectionError"}, headers=oversee.headers("admin")
    )
    assert purged.json() == {"count": 1}
    assert_error(oversee.client.get(f"{API}/jobs/{critical}", headers=oversee.headers()), 404)
    assert [entry.details["count"] for entry in audit_entries(oversee) if entry.action == "dlq.purged"] == [1]


# --- the audit log -----------------------------------------------------------------------------


def test_the_audit_chain_names_the_first_tampered_or_missing_entry(sqlite_url: str, tmp_path: Path) -> None:
    with webhook_receiver(SECRET) as receiver, harness(sqlite_url, tmp_path, **oversight_settings(receiver)) as api:
        for number in range(3):
            api.wait(api.submit("t_confidence", {"patient_code": f"PT-{number}", "confidence": 0.3})["id"])
    # Read once everything (the notifications too) has stopped writing.
    store = SQLJobStore(Database(sqlite_url))
    entries = list(OversightStore(store.database).audit_entries())
    store.database.close()
    env = {"VIGIA_DATABASE_URL": sqlite_url, "VIGIA_DATA_DIR": str(tmp_path / "data"), "VIGIA_AUDIT_KEY": AUDIT_KEY}
    runner = CliRunner()

    assert verify(entries, key=CHAIN_KEY).ok and len(entries) >= 12
    intact = runner.invoke(app, ["audit", "verify"], env=env)
    assert intact.exit_code == 0, intact.output
    assert f"{len(entries)} entries" in intact.output

    victim = entries[5]
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE vigia_audit SET actor = 'someone-else' WHERE seq = :seq"), {"seq": victim.seq}
        )
    changed = runner.invoke(app, ["audit", "verify"], env=env)
    assert changed.exit_code == 1
    assert f"entry {victim.seq}:" in changed.output and "changed after writing" in changed.output

    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE vigia_audit SET actor = :actor WHERE seq = :seq"), victim.to_dict())
        connection.execute(sa.text("DELETE FROM vigia_audit WHERE seq = :seq"), {"seq": victim.seq + 1})
    removed = runner.invoke(app, ["audit", "verify"], env=env)
    assert removed.exit_code == 1
    assert f"entry {victim.seq + 2}:" in removed.output and "missing" in removed.output

    # Re-chained from the changed entry on (the head left alone): the chain verifies, the
    # head does not match.

    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM vigia_audit WHERE seq >= :seq"), {"seq": victim.seq})
        drafts = [
            AuditDraft(entry.action, "someone-else" if entry.seq == victim.seq else entry.actor, entry.at,
                       entry.tenant, entry.job_id, entry.subject, entry.details)
            for entry in entries[victim.seq - 1 :]
        ]  # fmt: skip
        # With the key (an insider who has it): only the head's record tells.
        forged = chain(entries[victim.seq - 2].hash, victim.seq - 1, drafts, CHAIN_KEY)
        connection.execute(sa.text(
            "INSERT INTO vigia_audit (seq, at, actor, action, tenant, job_id, subject, details, prev_hash, hash) "
            "VALUES (:seq, :at, :actor, :action, :tenant, :job_id, :subject, :details, :prev_hash, :hash)"),
            [{**entry.to_dict(), "details": json.dumps(entry.to_dict()["details"])} for entry in forged])  # fmt: skip
    rewritten = runner.invoke(app, ["audit", "verify"], env=env)
    assert rewritten.exit_code == 1, rewritten.output
    assert "rewritten" in rewritten.output

    exported = runner.invoke(app, ["audit", "export"], env=env)
    lines = [json.loads(line) for line in exported.output.splitlines() if line.startswith("{")]
    assert len(lines) == len(entries) and all(len(line["hash"]) == 64 for line in lines)
    engine.dispose()


# --- patient data ------------------------------------------------------------------------------


def test_patient_data_reaches_no_log_line_audit_entry_or_notification(
    oversee: Harness, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    code, note = "MARKER-PATIENT-93A1", "MARKER-NOTE Juana Pérez fell at home, 12 Calle Mayor"
    with caplog.at_level(logging.DEBUG):
        job = oversee.submit("t_patient", {"patient_code": code, "note": note})
        done = oversee.wait(job["id"])
        wait_for(receiver.accepted, what="the notification")
        oversee.vigia.watch.check()

    assert done["state"] == "succeeded"
    assert done["awaiting_review"] is True
    entries = audit_entries(oversee)
    actions = [entry.action for entry in entries if entry.job_id == job["id"]]
    assert actions[:2] == ["job.submitted", "job.running"]
    assert {"decision.note.read", "review.opened", "job.succeeded"} <= set(actions)
    pseudonym = Pseudonymiser(bytes.fromhex(AUDIT_KEY))(code)
    assert {entry.subject for entry in entries if entry.job_id == job["id"]} == {pseudonym}

    logged = "\n".join(f"{record.getMessage()} {json.dumps(record.__dict__, default=str)}" for record in caplog.records)
    audited = "\n".join(json.dumps(entry.to_dict()) for entry in entries)
    sent = "\n".join(delivery.body.decode() for delivery in receiver.deliveries)
    for marker in ("MARKER-PATIENT", "MARKER-NOTE", "Juana", "Calle Mayor"):
        assert marker not in logged, f"{marker} in a log record"
        assert marker not in audited, f"{marker} in the audit log"
        assert marker not in sent, f"{marker} in a notification"
    assert caplog.records, "the run logged nothing: the check above proved nothing"


# --- notifications -------------------------------------------------------------------------


def test_a_notification_is_retried_until_delivered_and_one_that_fails_raises_an_alert_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    with (
        webhook_receiver(SECRET, failures=1) as receiver,
        smtp_server() as mailbox,
        harness(
            sqlite_url,
            tmp_path,
            **oversight_settings(
                receiver,
                channels={
                    "mail": {
                        "type": "email",
                        "smtp": f"smtp://127.0.0.1:{mailbox.port}",
                        "from": "vigia@clinic.example",
                        "to": ["oncall@clinic.example"],
                    },
                    "dead_end": {"type": "webhook", "url": "http://127.0.0.1:9/nowhere", "secret": "x"},
                },
                routes={"medical_team": ["hook", "mail"], "operations": ["log"], "*": ["dead_end"]},
                notify_attempts=2,
            ),
        ) as api,
    ):
        job = api.submit("t_critical", {"patient_code": "PT-5"})
        api.wait(job["id"])
        # The webhook answered 500 once: delivered at the second attempt, 5 s later
        # (the critical urgency's delay).
        [delivery] = wait_for(receiver.accepted, timeout=30, what="the retried webhook")
        assert delivery.signed and len(receiver.deliveries) == 2
        [mail] = wait_for(lambda: mailbox.messages, what="the e-mail")
        text = mail.content.decode() if isinstance(mail.content, bytes) else str(mail.content)
        assert "[CRITICAL] t_critical: human review needed (critical)" in text
        assert mail.rcpt_tos == ["oncall@clinic.example"]

        # A role routed to a dead end: its notification dies after two attempts.
        other = api.submit("t_confidence", {"patient_code": "PT-6", "confidence": 0.1})
        api.wait(other["id"])
        # (the rule's role is "specialists": routed by "*" to the dead end)

        def undelivered() -> list[dict[str, Any]]:
            response = api.client.get(f"{API}/notifications", params={"state": "dead"}, headers=api.headers())
            return list(response.json()["notifications"])

        [failed] = wait_for(undelivered, timeout=40, what="the notification to die")
        assert (failed["channel"], failed["delivery"], failed["attempts"]) == ("dead_end", "undelivered", 2)
        assert "ConnectError" in (failed["last_error"] or "") or "cannot" in (failed["last_error"] or "")

        first = api.vigia.watch.check()
        second = api.vigia.watch.check()
        assert [(alert.rule, alert.firing) for alert in first.evaluation.started] == [
            ("notifications_undelivered", True)
        ]
        assert second.evaluation.started == ()
        status = api.client.get(f"{API}/monitoring/status", headers=api.headers("admin")).json()
        assert status["health"] == "critical" and status["notifications_failed"] == 1
        assert [alert["rule"] for alert in status["alerts"]] == ["notifications_undelivered"]
        assert [entry.action for entry in audit_entries(api)].count("alert.started") == 1


# --- monitoring --------------------------------------------------------------------------------


def test_health_readiness_status_and_metrics(oversee: Harness) -> None:
    for confidence in (0.9, 0.9, 0.3):
        oversee.wait(oversee.submit("t_confidence", {"patient_code": "PT", "confidence": confidence})["id"])
    oversee.wait(oversee.submit("t_low")["id"])

    assert oversee.client.get(f"{API}/health").json() == {"status": "ok"}
    ready = oversee.client.get(f"{API}/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"store": "ok", "workers": "ok"}
    assert_error(oversee.client.get(f"{API}/metrics"), 401)
    # Every tenant's figures: not for a tenant's own viewers or submitters.
    for path in ("/metrics", "/monitoring/status"):
        for who in ("viewer", "submitter"):
            assert_error(oversee.client.get(f"{API}{path}", headers=oversee.headers(who)), 403, "permission_denied")

    status = oversee.client.get(f"{API}/monitoring/status", headers=oversee.headers("admin")).json()
    assert (status["finished"], status["failed"], status["dlq_size"], status["open_reviews"]) == (4, 1, 1, 1)
    assert status["processing_seconds"]["t_confidence"]["count"] == 3
    assert {queue["name"] for queue in status["queues"]} >= {"default", "notifications"}
    assert all(queue["consumers"] for queue in status["queues"])

    response = oversee.client.get(f"{API}/metrics", headers=oversee.headers("admin"))
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    jobs = {
        (sample.labels["pipeline"], sample.labels["state"]): sample.value
        for sample in families["vigia_jobs"].samples
        if sample.name == "vigia_jobs_total"
    }
    assert jobs[("t_confidence", "succeeded")] == 3 and jobs[("t_low", "dead")] == 1
    histogram = families["vigia_stage_duration_seconds"]
    assert histogram.type == "histogram"
    counts = {
        sample.labels["stage"]: sample.value
        for sample in histogram.samples
        if sample.name.endswith("_count") and sample.labels["pipeline"] == "t_confidence"
    }
    assert counts == {"detect": 3, "summarise": 3}
    gauges = {name: families[name].samples[0].value for name in ("vigia_dlq_size", "vigia_open_reviews")}
    assert gauges == {"vigia_dlq_size": 1, "vigia_open_reviews": 1}


def test_key_administration_is_audited(oversee: Harness) -> None:
    entries = [entry for entry in audit_entries(oversee) if entry.action.startswith("key.")]

    created = sorted(entry.details["key_id"] for entry in entries if entry.action == "key.created")
    revoked = [entry.details["key_id"] for entry in entries if entry.action == "key.revoked"]
    assert created == sorted(oversee.key_ids.values())
    assert revoked == [oversee.key_ids["revoked"]]
    assert verify(audit_entries(oversee), key=CHAIN_KEY).ok
