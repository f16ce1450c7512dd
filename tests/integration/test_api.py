"""The HTTP API in process (FastAPI app + embedded workers), on SQLite and PostgreSQL.

Every request goes through the real app: its lifespan starts real workers, keys are real
hashed keys in the store, uploads land in the real blob directory.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from starlette.websockets import WebSocketDisconnect

with warnings.catch_warnings():
    # starlette.testclient prefers httpx2 and says so once, at import; httpx works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)


from tests.harness import (
    API,
    NOT_A_KNOWN_TYPE,
    TINY_PDF,
    Harness,
    assert_error,
    blob_files,
    gate,
    label,
    problem_fields,
    tiny_png,
)
from vigia.access import ApiKey, Role
from vigia.api.auth import KEY_CACHE_SECONDS, KeyCache


def test_openapi_documents_every_endpoint_with_models(sqlite_api: Harness) -> None:
    response = sqlite_api.client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    paths = spec["paths"]
    expected = {
        f"{API}/pipelines/{{name}}/jobs": {"post"},
        f"{API}/jobs/{{job_id}}": {"get"},
        f"{API}/jobs/{{job_id}}/result": {"get"},
        f"{API}/jobs": {"get"},
        f"{API}/jobs/{{job_id}}/cancel": {"post"},
        f"{API}/batches": {"post"},
        f"{API}/batches/{{batch_id}}": {"get"},
        f"{API}/pipelines": {"get"},
        f"{API}/jobs/{{job_id}}/events": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, f"{path} missing from the OpenAPI document"
        assert methods <= set(paths[path]), (path, set(paths[path]))

    def ref(schema: dict[str, Any]) -> str:
        return schema.get("$ref", "").rsplit("/", 1)[-1]

    submit = paths[f"{API}/pipelines/{{name}}/jobs"]["post"]
    assert set(submit["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert ref(submit["responses"]["202"]["content"]["application/json"]["schema"]) == "JobModel"
    assert ref(submit["responses"]["409"]["content"]["application/json"]["schema"]) == "ErrorResponse"
    assert any(parameter["name"] == "idempotency-key" for parameter in submit["parameters"])

    status = paths[f"{API}/jobs/{{job_id}}"]["get"]
    assert ref(status["responses"]["200"]["content"]["application/json"]["schema"]) == "JobDetailModel"
    result = paths[f"{API}/jobs/{{job_id}}/result"]["get"]
    assert {"200", "202", "409", "410"} <= set(result["responses"])
    listing = paths[f"{API}/jobs"]["get"]
    assert {"pipeline", "state", "created_after", "created_before", "limit", "cursor"} <= {
        parameter["name"] for parameter in listing["parameters"]
    }
    schemas = spec["components"]["schemas"]
    assert {"JobModel", "JobDetailModel", "StageRunModel", "ErrorResponse", "PipelineModel", "BatchModel"} <= set(
        schemas
    )
    assert {"progress", "current_stage", "stages"} <= set(schemas["JobDetailModel"]["properties"])
    assert {"state", "attempts", "started_at", "finished_at", "duration", "error_type", "error_message"} <= set(
        schemas["StageRunModel"]["properties"]
    )


# --- submit, status, result ---------------------------------------------------------------


def test_submit_json_answers_202_with_location_then_status_and_result(api: Harness) -> None:
    response = api.client.post(
        f"{API}/pipelines/t_api_quick/jobs",
        json={"input": {"text": "hola", "n": 3}, "priority": 7},
        headers=api.headers(),
    )
    assert response.status_code == 202, response.text
    summary = response.json()
    job_id = summary["id"]
    assert response.headers["location"] == f"{API}/jobs/{job_id}"
    assert "idempotent-replayed" not in response.headers
    assert summary["pipeline"] == "t_api_quick"
    assert summary["state"] == "queued"
    assert summary["priority"] == 7
    assert summary["links"]["result"] == f"{API}/jobs/{job_id}/result"
    assert summary["links"]["events"] == f"{API}/jobs/{job_id}/events"

    job = api.wait(job_id)
    assert job["state"] == "succeeded"
    assert job["progress"] == 100
    assert job["current_stage"] is None
    assert job["error_type"] is None
    assert job["finished_at"] is not None
    assert job["last_event"] >= 5
    [stage] = job["stages"]
    assert stage["stage"] == "echo"
    assert stage["state"] == "succeeded"
    assert stage["attempts"] == 1
    assert stage["started_at"] is not None
    assert stage["finished_at"] is not None
    assert stage["duration"] is not None
    assert stage["duration"] >= 0
    assert stage["error_type"] is None

    result = api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers("viewer"))
    assert result.status_code == 200, result.text
    assert result.json() == {
        "id": job_id,
        "state": "succeeded",
        "result": {"echo": {"text": "hola", "n": 3}},
        "degraded_stages": [],
    }


def test_status_while_running_shows_current_stage_and_result_is_202(api: Harness) -> None:
    name = label()
    job_id = api.submit("t_api_gated", {"label": name})["id"]
    running = api.wait(job_id, lambda job: job["state"] == "running" and job["progress"] > 0)
    assert running["current_stage"] == "hold"
    assert 0 < running["progress"] < 100
    assert running["started_at"] is not None
    assert running["finished_at"] is None
    states = {stage["stage"]: stage["state"] for stage in running["stages"]}
    assert states == {"hold": "running", "finish": "pending"}
    assert [stage["stage"] for stage in running["stages"]] == ["hold", "finish"]

    pending = api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers())
    assert pending.status_code == 202, pending.text
    assert pending.headers["location"] == f"{API}/jobs/{job_id}"
    assert "retry-after" in pending.headers
    assert pending.json()["state"] == "running"
    assert pending.json()["current_stage"] == "hold"

    gate(name).set()
    assert api.wait(job_id)["state"] == "succeeded"
    result = api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers())
    assert result.status_code == 200
    assert result.json()["result"] == {"done": name}


def test_result_of_failed_dead_cancelled_and_degraded_jobs(api: Harness) -> None:
    failed = api.submit("t_outcomes", {"mode": "essential_rejects"})["id"]
    dead = api.submit("t_outcomes", {"mode": "essential_dies"})["id"]
    degraded = api.submit("t_outcomes", {"mode": "optional_fails"})["id"]
    cancelled = api.submit("t_api_gated", {"label": label()})["id"]
    api.wait(cancelled, lambda job: job["state"] == "running")
    response = api.client.post(f"{API}/jobs/{cancelled}/cancel", headers=api.headers())
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"

    failed_job = api.wait(failed)
    assert failed_job["state"] == "failed"
    stages = {stage["stage"]: stage for stage in failed_job["stages"]}
    assert stages["essential"]["state"] == "failed"
    assert stages["essential"]["error_type"] == "Permanent"
    assert stages["essential"]["error_message"] == "input cannot be processed"
    error = assert_error(api.client.get(f"{API}/jobs/{failed}/result", headers=api.headers()), 409, "job_failed")
    assert error["details"]["state"] == "failed"
    assert error["details"]["job_id"] == failed
    assert "input cannot be processed" in error["message"]

    dead_job = api.wait(dead)
    assert dead_job["state"] == "dead"
    stages = {stage["stage"]: stage for stage in dead_job["stages"]}
    assert stages["essential"]["attempts"] == 2
    assert stages["essential"]["error_type"] == "ConnectionError"
    assert stages["start"]["state"] == "succeeded"
    error = assert_error(api.client.get(f"{API}/jobs/{dead}/result", headers=api.headers()), 409, "job_dead")
    assert error["details"]["error_type"] == "ConnectionError"

    assert api.wait(cancelled)["state"] == "cancelled"
    error = assert_error(api.client.get(f"{API}/jobs/{cancelled}/result", headers=api.headers()), 410, "job_cancelled")
    assert error["details"]["state"] == "cancelled"

    assert api.wait(degraded)["state"] == "degraded"
    result = api.client.get(f"{API}/jobs/{degraded}/result", headers=api.headers())
    assert result.status_code == 200, result.text
    assert result.json()["state"] == "degraded"
    assert result.json()["degraded_stages"] == ["optional"]
    assert result.json()["result"] == {"optional_seen": False}


def test_cancel_stops_a_running_job_and_refuses_a_finished_one(api: Harness) -> None:
    name = label()
    job_id = api.submit("t_api_gated", {"label": name})["id"]
    api.wait(job_id, lambda job: job["state"] == "running")
    cancelled = api.client.post(f"{API}/jobs/{job_id}/cancel", headers=api.headers())
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["id"] == job_id
    assert cancelled.json()["state"] == "cancelled"

    # The stage saw the cancellation and stopped; the next stage never ran.
    def settled(job: dict[str, Any]) -> bool:
        return all(stage["state"] not in ("running", "queued") for stage in job["stages"])

    job = api.wait(job_id, settled)
    assert job["state"] == "cancelled"
    states = {stage["stage"]: stage["state"] for stage in job["stages"]}
    assert states["finish"] == "cancelled"
    assert states["hold"] in ("cancelled", "failed")

    again = api.client.post(f"{API}/jobs/{job_id}/cancel", headers=api.headers())
    assert_error(again, 409, "invalid_transition")
    done = api.submit("t_api_quick", {"x": 1})["id"]
    api.wait(done)
    assert_error(api.client.post(f"{API}/jobs/{done}/cancel", headers=api.headers()), 409, "invalid_transition")
    assert api.job(done)["state"] == "succeeded"
    assert_error(api.client.post(f"{API}/jobs/{'0' * 32}/cancel", headers=api.headers()), 404, "job_not_found")


# --- listing ------------------------------------------------------------------------------


def test_list_filters_by_pipeline_state_and_time_and_pages_with_a_cursor(api: Harness) -> None:
    quick_ids = []
    for index in range(5):
        quick_ids.append(api.submit("t_api_quick", {"i": index})["id"])
        time.sleep(0.005)
    failed_ids = []
    for _ in range(2):
        failed_ids.append(api.submit("t_outcomes", {"mode": "essential_rejects"})["id"])
        time.sleep(0.005)
    other_tenant = api.submit("t_api_quick", {"i": "other"}, who="other")["id"]
    jobs = {job_id: api.wait(job_id) for job_id in [*quick_ids, *failed_ids]}
    all_ids = [*quick_ids, *failed_ids]

    def listing(who: str = "viewer", **params: Any) -> list[str]:
        response = api.client.get(f"{API}/jobs", params=params, headers=api.headers(who))
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["jobs"]]

    assert listing() == sorted(all_ids, reverse=True), "newest first, only this tenant's"
    assert other_tenant not in listing()
    assert listing("other") == [other_tenant]
    assert listing(pipeline="t_api_quick") == sorted(quick_ids, reverse=True)
    assert listing(state="failed") == sorted(failed_ids, reverse=True)
    assert set(listing(state=["failed", "succeeded"])) == set(all_ids)
    assert listing(state="running") == []
    assert listing(pipeline="t_api_quick", state="failed") == []

    third = jobs[quick_ids[2]]["created_at"]
    assert listing(created_after=third) == sorted(all_ids[2:], reverse=True)
    assert listing(created_before=third) == sorted(all_ids[:2], reverse=True)
    assert listing(created_after=third, created_before=jobs[failed_ids[0]]["created_at"]) == sorted(
        quick_ids[2:], reverse=True
    )

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = api.client.get(f"{API}/jobs", params=params, headers=api.headers("viewer"))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["jobs"]) <= 3
        seen.extend(job["id"] for job in page["jobs"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert seen == sorted(all_ids, reverse=True)

    for params, field in [
        ({"cursor": "not-a-cursor"}, "query.cursor"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 10**30}, "query.limit"),
        ({"state": "exploded"}, "query.state.0"),
        ({"created_after": "yesterday"}, "query.created_after"),
    ]:
        error = assert_error(api.client.get(f"{API}/jobs", params=params, headers=api.headers()), 422)
        assert field in problem_fields(error), (params, error)
        assert field.split(".")[1] in error["message"]


# --- batches ------------------------------------------------------------------------------


def test_batch_submits_many_and_reports_aggregate_progress(api: Harness) -> None:
    response = api.client.post(
        f"{API}/batches",
        json={"pipeline": "t_api_quick", "inputs": [{"i": 0}, {"i": 1}, {"i": 2}], "priority": 3},
        headers=api.headers(),
    )
    assert response.status_code == 202, response.text
    batch = response.json()
    assert response.headers["location"] == f"{API}/batches/{batch['id']}"
    assert len(batch["jobs"]) == 3
    assert {job["batch_id"] for job in batch["jobs"]} == {batch["id"]}
    assert {job["priority"] for job in batch["jobs"]} == {3}
    job_ids = [job["id"] for job in batch["jobs"]]
    for job_id in job_ids:
        api.wait(job_id)

    status = api.client.get(f"{API}/batches/{batch['id']}", headers=api.headers("viewer"))
    assert status.status_code == 200, status.text
    aggregate = status.json()
    assert aggregate["id"] == batch["id"]
    assert aggregate["pipeline"] == "t_api_quick"
    assert aggregate["size"] == 3
    assert aggregate["counts"] == {"succeeded": 3}
    assert aggregate["finished"] == 3
    assert aggregate["progress"] == 100
    assert sorted(aggregate["job_ids"]) == sorted(job_ids)
    for job_id, expected in zip(job_ids, range(3), strict=True):
        result = api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers()).json()
        assert result["result"] == {"echo": {"i": expected}}

    # Another tenant cannot see it; a viewer cannot submit one.
    assert_error(api.client.get(f"{API}/batches/{batch['id']}", headers=api.headers("other")), 404, "batch_not_found")
    refused = api.client.post(
        f"{API}/batches", json={"pipeline": "t_api_quick", "inputs": [{}]}, headers=api.headers("viewer")
    )
    assert_error(refused, 403, "permission_denied")


def test_a_batch_with_one_bad_input_stores_nothing(api: Harness) -> None:
    before = api.client.get(f"{API}/jobs", headers=api.headers()).json()["jobs"]
    bad = api.client.post(
        f"{API}/batches",
        json={"pipeline": "t_api_quick", "inputs": [{"ok": 1}, {"bad": "nul\u0000here"}, {"ok": 3}]},
        headers=api.headers(),
    )
    error = assert_error(bad, 422, "invalid_input")
    # Caught as the body is read, the field naming the item (1) and the key inside it.
    assert error["details"]["field"] == "body.inputs.1.bad"
    assert "NUL" in error["message"]
    assert_error(
        api.client.post(f"{API}/batches", json={"pipeline": "nope", "inputs": [{}]}, headers=api.headers()),
        404,
        "unknown_pipeline",
    )
    empty = assert_error(
        api.client.post(f"{API}/batches", json={"pipeline": "t_api_quick", "inputs": []}, headers=api.headers()),
        422,
    )
    assert "inputs" in problem_fields(empty)
    missing = assert_error(api.client.post(f"{API}/batches", json={"inputs": [{}]}, headers=api.headers()), 422)
    assert "pipeline" in problem_fields(missing)
    too_many = assert_error(
        api.client.post(
            f"{API}/batches", json={"pipeline": "t_api_quick", "inputs": [{}] * 1001}, headers=api.headers()
        ),
        422,
    )
    assert "inputs" in problem_fields(too_many)
    assert api.client.get(f"{API}/jobs", headers=api.headers()).json()["jobs"] == before


def test_clients_cannot_make_notification_jobs_alone_or_in_a_batch(api: Harness) -> None:
    # Notification jobs deliver to the installation's channels: only escalations and alerts
    # make them, never a submitter.
    message = {"channel": "log", "subject": "not from a client", "body": "x"}
    single = api.client.post(f"{API}/pipelines/vigia.notify/jobs", json={"input": message}, headers=api.headers())
    assert "built in" in assert_error(single, 422, "invalid_input")["message"]
    batch = api.client.post(
        f"{API}/batches", json={"pipeline": "vigia.notify", "inputs": [message, message]}, headers=api.headers()
    )
    assert "built in" in assert_error(batch, 422, "invalid_input")["message"]
    listed = api.client.get(f"{API}/notifications", headers=api.headers())
    assert listed.status_code == 200, listed.text
    assert listed.json()["notifications"] == []


# --- pipelines ----------------------------------------------------------------------------


def test_pipelines_are_listed_with_their_stage_graphs(sqlite_api: Harness) -> None:
    api = sqlite_api
    response = api.client.get(f"{API}/pipelines", headers=api.headers("viewer"))
    assert response.status_code == 200, response.text
    listed = {pipeline["name"]: pipeline for pipeline in response.json()}
    assert {"t_parallel", "t_outcomes", "t_api_quick", "t_api_file", "t_api_gated"} <= set(listed)

    parallel = {stage["name"]: stage for stage in listed["t_parallel"]["stages"]}
    assert list(parallel) == ["left", "right", "join"]
    assert parallel["left"]["depends_on"] == []
    assert parallel["right"]["depends_on"] == []
    assert parallel["join"]["depends_on"] == ["left", "right"]
    outcomes = {stage["name"]: stage for stage in listed["t_outcomes"]["stages"]}
    assert outcomes["optional"]["critical"] is False
    assert outcomes["optional"]["severity"] == "LOW" or outcomes["optional"]["severity"].lower() == "low"
    assert outcomes["optional"]["max_attempts"] == 2
    assert outcomes["essential"]["depends_on"] == ["optional"]
    assert listed["t_api_file"]["accepts"] == ["image/png", "application/pdf"]
    assert listed["t_api_quick"]["accepts"] == []
    assert listed["t_api_file"]["stages"][0]["description"] == "Reports the file reference the job carries."

    one = api.client.get(f"{API}/pipelines/t_parallel", headers=api.headers())
    assert one.status_code == 200
    assert one.json() == listed["t_parallel"]
    assert_error(api.client.get(f"{API}/pipelines/nope", headers=api.headers()), 404, "unknown_pipeline")
    assert_error(
        api.client.post(f"{API}/pipelines/nope/jobs", json={"input": {}}, headers=api.headers()),
        404,
        "unknown_pipeline",
    )


# --- idempotency --------------------------------------------------------------------------


def test_idempotency_key_replays_the_same_job_and_refuses_a_different_input(api: Harness) -> None:
    url = f"{API}/pipelines/t_api_quick/jobs"
    headers = {**api.headers(), "Idempotency-Key": "order-42"}
    first = api.client.post(url, json={"input": {"a": 1, "b": [1, 2]}}, headers=headers)
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    job_id = first.json()["id"]

    # Same key, same input (keys in another order): the same job, 200, replayed.
    again = api.client.post(url, json={"input": {"b": [1, 2], "a": 1}}, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == f"{API}/jobs/{job_id}"
    assert again.json()["id"] == job_id

    conflict = api.client.post(url, json={"input": {"a": 2, "b": [1, 2]}}, headers=headers)
    error = assert_error(conflict, 409, "idempotency_conflict")
    assert error["details"]["job_id"] == job_id
    other_pipeline = api.client.post(
        f"{API}/pipelines/t_parallel/jobs", json={"input": {"a": 1, "b": [1, 2]}}, headers=headers
    )
    assert_error(other_pipeline, 409, "idempotency_conflict")

    # Keys are per tenant: the same key elsewhere is another job.
    elsewhere = api.client.post(
        url, json={"input": {"a": 1, "b": [1, 2]}}, headers={**api.headers("other"), "Idempotency-Key": "order-42"}
    )
    assert elsewhere.status_code == 202, elsewhere.text
    assert elsewhere.json()["id"] != job_id

    too_long = api.client.post(url, json={"input": {}}, headers={**api.headers(), "Idempotency-Key": "k" * 256})
    assert "header.idempotency-key" in problem_fields(assert_error(too_long, 422))

    api.wait(job_id)
    listed = api.client.get(f"{API}/jobs", params={"pipeline": "t_api_quick"}, headers=api.headers()).json()
    assert [job["id"] for job in listed["jobs"]] == [job_id], "only one job for the key in this tenant"
    # A replay after the job finished still returns it, unchanged.
    late = api.client.post(url, json={"input": {"a": 1, "b": [1, 2]}}, headers=headers)
    assert late.status_code == 200
    assert late.json()["id"] == job_id
    assert late.json()["state"] == "succeeded"


# --- auth ---------------------------------------------------------------------------------


def test_missing_invalid_or_revoked_keys_are_401_with_www_authenticate(api: Harness) -> None:
    job_id = api.submit("t_api_quick", {"x": 1})["id"]
    wrong_secret = api.keys["admin"][:-4] + ("AAAA" if not api.keys["admin"].endswith("AAAA") else "BBBB")
    for headers in [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": f"Bearer {wrong_secret}"},
        {"Authorization": f"Bearer {api.keys['revoked']}"},
        {"X-API-Key": api.keys["revoked"]},
        {"Authorization": f"Basic {api.keys['admin']}"},
    ]:
        for method, path in [
            ("GET", f"{API}/jobs/{job_id}"),
            ("GET", f"{API}/jobs"),
            ("POST", f"{API}/pipelines/t_api_quick/jobs"),
            ("GET", f"{API}/pipelines"),
        ]:
            response = api.client.request(method, path, headers=headers, json={"input": {}})
            assert_error(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"].startswith("Bearer"), headers
    # The header forms that are documented both work.
    assert api.client.get(f"{API}/jobs/{job_id}", headers={"X-API-Key": api.keys["viewer"]}).status_code == 200
    assert api.client.get(f"{API}/jobs/{job_id}", headers=api.headers("viewer")).status_code == 200
    assert api.client.get(f"{API}/health").status_code == 200


def test_roles_decide_who_may_submit_and_cancel(api: Harness) -> None:
    name = label()
    job_id = api.submit("t_api_gated", {"label": name})["id"]
    url = f"{API}/pipelines/t_api_quick/jobs"
    for who in ("viewer", "reviewer"):
        error = assert_error(
            api.client.post(url, json={"input": {}}, headers=api.headers(who)), 403, "permission_denied"
        )
        assert error["details"]["role"] == who
        assert error["details"]["needs"] == "submit"
        assert_error(api.client.post(f"{API}/jobs/{job_id}/cancel", headers=api.headers(who)), 403, "permission_denied")
        # Reading is fine.
        assert api.client.get(f"{API}/jobs/{job_id}", headers=api.headers(who)).status_code == 200
        assert api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers(who)).status_code == 202
    # A viewer's refused multipart upload stores no blob.
    refused = api.client.post(
        f"{API}/pipelines/t_api_file/jobs",
        files={"file": ("a.png", tiny_png(), "image/png")},
        headers=api.headers("viewer"),
    )
    assert_error(refused, 403, "permission_denied")
    assert blob_files(api) == []
    assert api.job(job_id)["state"] in ("queued", "running"), "the refused cancels did nothing"

    admin = api.client.post(url, json={"input": {"by": "admin"}}, headers=api.headers("admin"))
    assert admin.status_code == 202, admin.text
    cancelled = api.client.post(f"{API}/jobs/{job_id}/cancel", headers=api.headers("admin"))
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"


def test_another_tenants_job_is_404_everywhere(api: Harness) -> None:
    name = label()
    job_id = api.submit("t_api_gated", {"label": name})["id"]
    api.wait(job_id, lambda job: job["state"] == "running")
    unknown = assert_error(api.client.get(f"{API}/jobs/{'f' * 32}", headers=api.headers("other")), 404)
    for who in ("other", "other_admin"):
        headers = api.headers(who)
        for method, path in [
            ("GET", f"{API}/jobs/{job_id}"),
            ("GET", f"{API}/jobs/{job_id}/result"),
            ("POST", f"{API}/jobs/{job_id}/cancel"),
            ("GET", f"{API}/jobs/{job_id}/events"),
        ]:
            error = assert_error(api.client.request(method, path, headers=headers), 404, "job_not_found")
            assert error["code"] == unknown["code"]
            assert "acme" not in json.dumps(error)
        assert api.client.get(f"{API}/jobs", headers=headers).json()["jobs"] == []
    # Nothing the other tenant did touched the job.
    job = api.job(job_id)
    assert job["state"] == "running"
    gate(name).set()
    assert api.wait(job_id)["state"] == "succeeded"


# --- errors and bad input -----------------------------------------------------------------


def test_validation_errors_name_the_field(api: Harness) -> None:
    url = f"{API}/pipelines/t_api_quick/jobs"
    for body, field in [
        ({"input": {}, "priority": "high"}, "priority"),
        ({"input": {}, "priority": 101}, "priority"),
        ({"input": {}, "priority": -101}, "priority"),
        ({"input": {}, "priority": 10**40}, "priority"),
        ({"input": {}, "priority": 1.5}, "priority"),
    ]:
        error = assert_error(api.client.post(url, json=body, headers=api.headers()), 422)
        assert field in problem_fields(error), (body, error)
        assert field in error["message"]
    nul = assert_error(api.client.post(url, json={"input": {"t": "a\u0000b"}}, headers=api.headers()), 422)
    assert "NUL" in nul["message"]
    assert api.client.get(f"{API}/jobs", headers=api.headers()).json()["jobs"] == []


def test_no_bad_request_causes_a_500_or_changes_a_stored_job(api: Harness, caplog: pytest.LogCaptureFixture) -> None:
    job_id = api.submit("t_api_quick", {"keep": "me"})["id"]
    api.wait(job_id)
    before = api.job(job_id)
    before_result = api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers()).json()
    submit = f"{API}/pipelines/t_api_quick/jobs"
    auth = api.headers("admin")
    json_type = {**auth, "Content-Type": "application/json"}
    deep = "[" * 100_000 + "]" * 100_000
    # (method, path, request options, also acceptable: a 200 with an empty page or stream)
    cases: list[tuple[str, str, dict[str, Any], bool]] = [
        ("POST", submit, {"content": b"{not json", "headers": json_type}, False),
        ("POST", submit, {"content": b"[1, 2, 3]", "headers": json_type}, False),
        ("POST", submit, {"content": b'"just a string"', "headers": json_type}, False),
        ("POST", submit, {"content": b"\xff\xfe\x00garbage", "headers": json_type}, False),
        ("POST", submit, {"content": b'{"input": {}, "priority": 1e999}', "headers": json_type}, False),
        ("POST", submit, {"content": b'{"input": NaN}', "headers": json_type}, False),
        ("POST", submit, {"content": b'{"input": "\\ud800"}', "headers": json_type}, False),
        ("POST", submit, {"content": b'{"input": "a\\u0000b"}', "headers": json_type}, False),
        ("POST", submit, {"content": b'{"input": {"k\\u0000": 1}}', "headers": json_type}, False),
        ("POST", submit, {"content": ('{"input": ' + deep + "}").encode(), "headers": json_type}, False),
        ("POST", submit, {"content": b"input=1", "headers": {**auth, "Content-Type": "text/plain"}}, False),
        (
            "POST",
            submit,
            {"content": b"a=1", "headers": {**auth, "Content-Type": "application/x-www-form-urlencoded"}},
            False,
        ),
        ("POST", submit, {"content": b"--x--", "headers": {**auth, "Content-Type": "multipart/form-data"}}, False),
        ("POST", submit, {"json": {"input": {}, "priority": 2**70}, "headers": auth}, False),
        ("POST", submit, {"json": {"input": {}}, "headers": {**auth, "Idempotency-Key": "x" * 10_000}}, False),
        ("POST", f"{API}/pipelines/{'p' * 5000}/jobs", {"json": {"input": {}}, "headers": auth}, False),
        ("POST", f"{API}/pipelines/%00/jobs", {"json": {"input": {}}, "headers": auth}, False),
        ("POST", f"{API}/batches", {"content": b"{oops", "headers": json_type}, False),
        (
            "POST",
            f"{API}/batches",
            {"content": ('{"pipeline":"t_api_quick","inputs":[' + deep + "]}").encode(), "headers": json_type},
            False,
        ),
        (
            "POST",
            f"{API}/batches",
            {"json": {"pipeline": "t_api_quick", "inputs": [{}], "priority": 10**9}, "headers": auth},
            False,
        ),
        ("POST", f"{API}/batches", {"json": {"pipeline": "t_api_quick", "inputs": "many"}, "headers": auth}, False),
        ("GET", f"{API}/jobs/{'9' * 5000}", {"headers": auth}, False),
        ("GET", f"{API}/jobs/' OR '1'='1", {"headers": auth}, False),
        ("POST", f"{API}/jobs/{job_id}/cancel", {"headers": auth}, False),
        ("GET", f"{API}/jobs/{job_id}/events?after=-1", {"headers": auth}, False),
        ("GET", f"{API}/batches/{'b' * 5000}", {"headers": auth}, False),
        ("GET", f"{API}/jobs?pipeline={'p' * 10_000}", {"headers": auth}, True),
        ("GET", f"{API}/jobs?created_after=9999-99-99", {"headers": auth}, False),
        ("GET", f"{API}/jobs?created_after=99999999999999999999", {"headers": auth}, False),
        ("GET", f"{API}/jobs?created_before=0001-01-01T00:00:00", {"headers": auth}, True),
        ("GET", f"{API}/jobs?limit=abc", {"headers": auth}, False),
        ("DELETE", f"{API}/jobs/{job_id}", {"headers": auth}, False),
        ("PUT", f"{API}/jobs/{job_id}", {"headers": auth}, False),
    ]
    wrong = []
    for method, path, options, empty_ok in cases:
        caplog.clear()
        response = api.client.request(method, path, **options)
        body = str(options.get("content", options.get("json")))[:40]
        logged = [record.getMessage() for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
        if logged:
            wrong.append((method, path[:70], body, response.status_code, logged))
        elif 400 <= response.status_code < 500:
            assert_error(response, response.status_code)
        elif not (empty_ok and response.status_code == 200 and _empty(response)):
            wrong.append((method, path[:70], body, response.status_code, response.text[:200]))
    assert wrong == [], "these requests were not answered with a 4xx (or failed on the server):\n" + "\n".join(
        map(str, wrong)
    )

    assert api.job(job_id) == before
    assert api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers()).json() == before_result
    listed = api.client.get(f"{API}/jobs", headers=auth).json()["jobs"]
    assert [job["id"] for job in listed] == [job_id], "no bad request stored a job"


def test_nul_characters_in_ids_and_filters_are_a_4xx_not_a_500(api: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """A NUL can never be part of a job id, batch id or pipeline name: nothing matches."""
    job_id = api.submit("t_api_quick", {"keep": "me"})["id"]
    before = api.wait(job_id)
    auth = api.headers("admin")
    cases = [
        ("GET", f"{API}/jobs/%00", {404, 422}),
        ("GET", f"{API}/jobs/{job_id}%00", {404, 422}),
        ("GET", f"{API}/jobs/{job_id}%00/result", {404, 422}),
        ("POST", f"{API}/jobs/{job_id}%00/cancel", {404, 422}),
        ("GET", f"{API}/jobs/{job_id}%00/events", {404, 422}),
        ("GET", f"{API}/batches/a%00b", {404, 422}),
        ("GET", f"{API}/jobs?pipeline=t_api_quick%00", {200, 422}),
    ]
    wrong = []
    for method, path, allowed in cases:
        caplog.clear()
        response = api.client.request(method, path, headers=auth)
        logged = [record.getMessage() for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
        if response.status_code not in allowed or logged:
            wrong.append((method, path, response.status_code, response.text[:160], logged))
        elif response.status_code == 200:
            assert response.json()["jobs"] == []
        else:
            assert_error(response, response.status_code)
    with (
        api.client.websocket_connect(f"{API}/ws/jobs/{job_id}%00", headers=auth) as ws,
        pytest.raises(WebSocketDisconnect) as refused,
    ):
        ws.receive_text()
    if refused.value.code != 4404:
        wrong.append(("WS", f"{API}/ws/jobs/{job_id}%00", refused.value.code, refused.value.reason, []))
    assert wrong == [], "a NUL in a path or filter was not answered with a 4xx:\n" + "\n".join(map(str, wrong))
    assert api.job(job_id) == before


def _empty(response: Any) -> bool:
    """An empty page of jobs."""
    return response.json().get("jobs") == []


def test_a_large_json_body_is_413(sqlite_api: Harness) -> None:
    api = sqlite_api
    body = b'{"input": "' + b"a" * (10 * 1024 * 1024 + 10) + b'"}'
    response = api.client.post(
        f"{API}/pipelines/t_api_quick/jobs", content=body, headers={**api.headers(), "Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")
    assert api.client.get(f"{API}/jobs", headers=api.headers()).json()["jobs"] == []


# --- uploads ------------------------------------------------------------------------------


def test_upload_type_is_sniffed_and_the_filename_is_only_a_display_name(api: Harness) -> None:
    png = tiny_png()
    digest = hashlib.sha256(png).hexdigest()
    response = api.client.post(
        f"{API}/pipelines/t_api_file/jobs",
        files={"file": ("../../etc/passwd.pdf", png, "application/pdf")},
        data={"input": json.dumps({"note": "left heel"}), "priority": "5"},
        headers=api.headers(),
    )
    assert response.status_code == 202, response.text
    assert response.json()["priority"] == 5
    job_id = response.json()["id"]
    assert api.wait(job_id)["state"] == "succeeded"
    result = api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers()).json()["result"]
    assert result == {
        "file": {"sha256": digest, "size": len(png), "media_type": "image/png", "filename": "passwd.pdf"},
        "note": "left heel",
    }
    blob_dir = api.vigia.settings.blob_dir
    expected = blob_dir / digest[:2] / digest[2:4] / digest
    assert blob_files(api) == [expected]
    assert expected.read_bytes() == png
    data_dir = api.vigia.settings.data_dir
    assert not any(path.name.startswith("passwd") for path in data_dir.parent.rglob("*")), "a name became a path"

    pdf = api.client.post(
        f"{API}/pipelines/t_api_file/jobs",
        files={"file": ("scan.png", TINY_PDF, "image/png")},
        headers=api.headers(),
    )
    assert pdf.status_code == 202, pdf.text
    assert api.wait(pdf.json()["id"])["state"] == "succeeded"
    pdf_result = api.client.get(f"{API}/jobs/{pdf.json()['id']}/result", headers=api.headers()).json()["result"]
    assert pdf_result["file"]["media_type"] == "application/pdf"
    assert pdf_result["file"]["filename"] == "scan.png"
    assert pdf_result["note"] is None
    pdf_digest = hashlib.sha256(TINY_PDF).hexdigest()
    assert (blob_dir / pdf_digest[:2] / pdf_digest[2:4] / pdf_digest).read_bytes() == TINY_PDF

    # The same bytes again are the same blob (content-addressed), whatever the name.
    repeat = api.client.post(
        f"{API}/pipelines/t_api_file/jobs",
        files={"file": ("C:\\Windows\\system32\\x\x01.png", png, "image/png")},
        headers=api.headers(),
    )
    assert repeat.status_code == 202, repeat.text
    api.wait(repeat.json()["id"])
    repeat_file = api.client.get(f"{API}/jobs/{repeat.json()['id']}/result", headers=api.headers()).json()["result"]
    assert repeat_file["file"]["sha256"] == digest
    assert "\\" not in repeat_file["file"]["filename"]
    assert "/" not in repeat_file["file"]["filename"]
    assert "\x01" not in repeat_file["file"]["filename"]
    assert len(blob_files(api)) == 2


def test_uploads_of_unknown_type_too_large_or_malformed_are_refused_and_store_nothing(api: Harness) -> None:
    url = f"{API}/pipelines/t_api_file/jobs"
    headers = api.headers()

    def post(**options: Any) -> Any:
        return api.client.post(url, headers=headers, **options)

    error = assert_error(
        post(files={"file": ("scan.png", NOT_A_KNOWN_TYPE, "image/png")}), 415, "unsupported_media_type"
    )
    assert error["details"]["accepted"] == ["application/pdf", "image/png"]
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(100)
    error = assert_error(post(files={"file": ("photo.png", jpeg, "image/png")}), 415, "unsupported_media_type")
    assert error["details"]["media_type"] == "image/jpeg"
    short = assert_error(post(files={"file": ("x.pdf", b"%PD", "application/pdf")}), 415, "unsupported_media_type")
    assert short["details"]["media_type"] is None

    limit = api.vigia.settings.max_upload_bytes
    big_png = tiny_png() + bytes(limit)
    too_large = assert_error(post(files={"file": ("big.png", big_png, "image/png")}), 413, "payload_too_large")
    assert too_large["details"]["limit"] == limit
    huge = tiny_png() + bytes(limit + 200 * 1024)
    assert_error(post(files={"file": ("huge.png", huge, "image/png")}), 413, "payload_too_large")
    just_right = tiny_png() + bytes(limit - len(tiny_png()))
    assert post(files={"file": ("edge.png", just_right, "image/png")}).status_code == 202

    empty = assert_error(post(files={"file": ("empty.png", b"", "image/png")}), 422, "invalid_input")
    assert empty["details"]["field"] == "file"
    no_file = assert_error(post(data={"input": "{}"}, files={"other": ("a.png", tiny_png(), "image/png")}), 422)
    assert no_file["details"]["field"] == "file"
    for extra, field in [
        ({"input": "{not json"}, "input"),
        ({"input": "[1, 2]"}, "input"),
        ({"priority": "soon"}, "priority"),
        ({"priority": str(10**30)}, "priority"),
    ]:
        error = assert_error(post(files={"file": ("a.png", tiny_png(), "image/png")}, data=extra), 422, "invalid_input")
        assert error["details"]["field"] == field, (extra, error)
    two_files = post(files=[("file", ("a.png", tiny_png(), "image/png")), ("file", ("b.png", tiny_png(), "image/png"))])
    assert 400 <= two_files.status_code < 500
    assert_error(two_files, two_files.status_code)
    no_files_pipeline = api.client.post(
        f"{API}/pipelines/t_api_quick/jobs", files={"file": ("a.png", tiny_png(), "image/png")}, headers=headers
    )
    assert_error(no_files_pipeline, 415, "unsupported_media_type")

    listed = api.client.get(f"{API}/jobs", headers=headers).json()["jobs"]
    assert len(listed) == 1, "only the upload at the limit made a job"
    edge_digest = hashlib.sha256(just_right).hexdigest()
    assert [path.name for path in blob_files(api)] == [edge_digest], "refused uploads left files behind"


def test_an_upload_with_an_idempotency_key_is_replayed_or_refused(api: Harness) -> None:
    url = f"{API}/pipelines/t_api_file/jobs"
    headers = {**api.headers(), "Idempotency-Key": "scan-1"}
    png = tiny_png()
    first = api.client.post(url, files={"file": ("heel.png", png, "image/png")}, headers=headers)
    assert first.status_code == 202, first.text
    again = api.client.post(url, files={"file": ("heel.png", png, "image/png")}, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = api.client.post(url, files={"file": ("heel.png", TINY_PDF, "application/pdf")}, headers=headers)
    assert_error(other, 409, "idempotency_conflict")
    listed = api.client.get(f"{API}/jobs", headers=api.headers()).json()["jobs"]
    assert [job["id"] for job in listed] == [first.json()["id"]]


def test_stages_a_finished_job_will_never_run_say_so(api: Harness) -> None:
    job = api.submit("t_chain", {})
    done = api.wait(job["id"])
    assert done["state"] == "failed", done
    shown = {stage["stage"]: (stage["state"], stage["attempts"]) for stage in done["stages"]}
    assert shown == {"first": ("failed", 1), "second": ("not_run", 0), "third": ("not_run", 0)}
    # In the store they stay pending, so that a retry can take them up again.
    stored = {run.stage: run.state.value for run in api.vigia.store.get_runs(job["id"])}
    assert stored == {"first": "failed", "second": "pending", "third": "pending"}
    # A job that still runs shows its waiting stages as waiting.
    running = api.submit("t_api_quick", {"n": 1})
    assert all(stage["state"] != "not_run" for stage in api.job(running["id"])["stages"])


def test_a_key_revoked_elsewhere_stops_working_within_a_second(api: Harness) -> None:
    headers = api.headers("viewer")
    assert api.client.get(f"{API}/jobs", headers=headers).status_code == 200  # verified, cached
    # Revoked in the store, as `vigia keys revoke` in another process does.
    api.vigia.keys.revoke(api.key_ids["viewer"], time.time())
    revoked_at = time.monotonic()
    while (status := api.client.get(f"{API}/jobs", headers=headers).status_code) == 200:
        # The bound is KEY_CACHE_SECONDS (1 s); the margin is for a busy machine's slow requests.
        assert time.monotonic() - revoked_at < KEY_CACHE_SECONDS + 2, "the revoked key is still accepted"
        time.sleep(0.05)
    assert status == 401


def test_the_key_cache_trusts_a_key_for_one_second_only() -> None:
    now = [100.0]
    cache = KeyCache(clock=lambda: now[0])
    key = ApiKey("k1", "acme", Role.VIEWER, "viewer", 0.0, None)
    cache.put("fingerprint", key)
    assert KEY_CACHE_SECONDS == 1.0
    now[0] += 0.999
    assert cache.get("fingerprint") is key
    now[0] += 0.001
    assert cache.get("fingerprint") is None
