"""Live progress over the HTTP API: Server-Sent Events and WebSocket, on SQLite and PostgreSQL.

Both must send the stored backlog, then live events, end cleanly after the job's final
event, and let a client that lost its connection resume without a gap or a repeat.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.harness import API, Harness, assert_error, gate, label

pytestmark = pytest.mark.timeout(90)


def sse_events(response: Any) -> Iterator[dict[str, Any]]:
    """The events of a text/event-stream response, each as {"id", "event", "data"}."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                yield {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def check_event(event: dict[str, Any]) -> dict[str, Any]:
    """An SSE event is consistent with itself; returns its data."""
    assert event["data"]["seq"] == event["id"], event
    assert event["data"]["type"] == event["event"], event
    return event["data"]


def assert_gap_free(seqs: list[int], last: int) -> None:
    assert len(seqs) == len(set(seqs)), f"an event came twice: {seqs}"
    assert sorted(seqs) == list(range(1, last + 1)), f"events missing: {sorted(seqs)} of 1..{last}"


def ws_url(job_id: str, key: str | None = None, after: int | None = None) -> str:
    params = []
    if key is not None:
        params.append(f"api_key={key}")
    if after is not None:
        params.append(f"after={after}")
    return f"{API}/ws/jobs/{job_id}" + ("?" + "&".join(params) if params else "")


def wait_for_subscribers(api: Harness, count: int, timeout: float = 5) -> None:
    """Wait until the bus has ``count`` subscribers: a client that went away leaves none behind."""
    deadline = time.monotonic() + timeout
    while api.vigia.bus.subscriber_count != count:
        assert time.monotonic() < deadline, f"{api.vigia.bus.subscriber_count} subscribers, expected {count}"
        time.sleep(0.01)


def drop(api: Harness, ws: Any, baseline: int) -> None:
    """Close the socket from the client's side, mid-stream, and let the server notice.

    Waiting for the server's handler to finish before leaving the session keeps the test
    client from cancelling it halfway through its clean-up (see the report on streams.py)."""
    ws.close()
    wait_for_subscribers(api, baseline)
    time.sleep(0.1)


def receive_until_close(ws: Any) -> tuple[list[dict[str, Any]], int]:
    """Messages until the server closes the socket, and its close code."""
    messages = []
    while True:
        try:
            messages.append(ws.receive_json())
        except WebSocketDisconnect as closed:
            return messages, closed.code


# --- Server-Sent Events -------------------------------------------------------------------


def test_sse_sends_backlog_then_live_events_and_ends_after_the_final_event(api: Harness) -> None:
    name = label()
    job_id = api.submit("t_api_gated", {"label": name})["id"]
    running = api.wait(job_id, lambda job: job["state"] == "running" and job["progress"] > 0)
    backlog_end = running["last_event"]

    seen: list[dict[str, Any]] = []
    with api.client.stream("GET", f"{API}/jobs/{job_id}/events", headers=api.headers("viewer")) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        stream = sse_events(response)
        while len(seen) < backlog_end:
            seen.append(check_event(next(stream)))
        assert [event["seq"] for event in seen] == list(range(1, backlog_end + 1))
        assert seen[0]["type"] == "job.queued"
        assert "job.finished" not in {event["type"] for event in seen}
        gate(name).set()  # everything from here on happens while the client listens
        seen.extend(check_event(event) for event in stream)  # ends by itself

    job = api.job(job_id)
    assert job["state"] == "succeeded"
    assert_gap_free([event["seq"] for event in seen], job["last_event"])
    assert len(seen) > backlog_end, "no live event arrived"
    final = seen[-1]
    assert final["type"] == "job.finished"
    assert final["state"] == "succeeded"
    assert final["progress"] == 100
    assert {"stage.succeeded"} <= {event["type"] for event in seen[backlog_end:]}
    progress = [event["progress"] for event in seen]
    assert progress == sorted(progress), "progress went backwards"
    assert all(event["progress"] < 100 for event in seen[:-1])
    assert {event["stage"] for event in seen if event["type"] == "stage.started"} == {"hold", "finish"}


def test_sse_resumes_after_a_dropped_connection_with_last_event_id(api: Harness) -> None:
    job_id = api.submit("t_api_ticker", {"steps": 30, "delay": 0.03})["id"]
    baseline = api.vigia.bus.subscriber_count
    first: list[dict[str, Any]] = []
    with api.client.stream("GET", f"{API}/jobs/{job_id}/events", headers=api.headers()) as response:
        assert response.status_code == 200
        stream = sse_events(response)
        while len(first) < 4:
            first.append(check_event(next(stream)))
    # The connection is gone, mid-job, and the server let go of it.
    wait_for_subscribers(api, baseline)
    assert first[-1]["type"] != "job.finished"
    assert api.job(job_id)["state"] in ("queued", "running")

    last_seen = first[-1]["seq"]
    headers = {**api.headers(), "Last-Event-ID": str(last_seen)}
    with api.client.stream("GET", f"{API}/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        rest = [check_event(event) for event in sse_events(response)]
    assert rest[0]["seq"] == last_seen + 1
    assert rest[-1]["type"] == "job.finished"
    job = api.job(job_id)
    assert job["state"] == "succeeded"
    assert_gap_free([event["seq"] for event in first + rest], job["last_event"])
    assert job["last_event"] > 10, "the ticker should have made many events"


def test_sse_resumes_with_the_after_parameter_and_replays_a_finished_job(api: Harness) -> None:
    job_id = api.submit("t_api_ticker", {"steps": 10, "delay": 0.01})["id"]
    last = api.wait(job_id)["last_event"]

    def replay(**options: Any) -> list[dict[str, Any]]:
        with api.client.stream("GET", f"{API}/jobs/{job_id}/events", **options) as response:
            assert response.status_code == 200, response.read()
            return [check_event(event) for event in sse_events(response)]

    everything = replay(headers=api.headers())
    assert [event["seq"] for event in everything] == list(range(1, last + 1))
    assert everything[-1]["type"] == "job.finished"

    middle = last // 2
    rest = replay(params={"after": middle}, headers=api.headers())
    assert [event["seq"] for event in rest] == list(range(middle + 1, last + 1))
    assert rest == everything[middle:]
    assert replay(params={"after": last}, headers=api.headers()) == [], "nothing after the final event"
    # A Last-Event-ID that is not a number starts from the beginning rather than failing.
    assert replay(headers={**api.headers(), "Last-Event-ID": "garbage"}) == everything


def test_sse_stream_of_a_cancelled_job_ends_with_its_final_event(api: Harness) -> None:
    job_id = api.submit("t_api_gated", {"label": label()})["id"]
    with api.client.stream("GET", f"{API}/jobs/{job_id}/events", headers=api.headers()) as response:
        stream = sse_events(response)
        seen = []
        for event in stream:
            seen.append(check_event(event))
            if event["event"] == "stage.progress":
                break
        cancelled = api.client.post(f"{API}/jobs/{job_id}/cancel", headers=api.headers())
        assert cancelled.status_code == 200, cancelled.text
        seen.extend(check_event(event) for event in stream)
    assert seen[-1]["type"] == "job.finished"
    assert seen[-1]["state"] == "cancelled"
    assert_gap_free([event["seq"] for event in seen], seen[-1]["seq"])


def test_resuming_after_a_sequence_number_beyond_any_is_not_a_server_error(
    api: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """`after` larger than any stored sequence number (even beyond a 64-bit integer) means
    "nothing more": an empty stream that ends, or a 422; never a failure on the server."""
    job_id = api.submit("t_api_quick", {"x": 1})["id"]
    last = api.wait(job_id)["last_event"]
    wrong = []
    for after in (last + 1000, 2**63, 10**22):
        for how, options in [
            ("SSE ?after=", {"params": {"after": after}, "headers": api.headers()}),
            ("SSE Last-Event-ID", {"headers": {**api.headers(), "Last-Event-ID": str(after)}}),
        ]:
            caplog.clear()
            with api.client.stream("GET", f"{API}/jobs/{job_id}/events", **options) as response:
                status = response.status_code
                body = response.read().decode()
            logged = [record.getMessage() for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
            if logged or status not in (200, 422) or (status == 200 and "\nid:" in "\n" + body):
                wrong.append((how, after, status, body[:100], logged))
        caplog.clear()
        with api.client.websocket_connect(ws_url(job_id, key=api.keys["viewer"], after=after)) as ws:
            messages, code = receive_until_close(ws)
        logged = [record.getMessage() for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
        if logged or messages or code not in (1000, 4422):
            wrong.append(("WS", after, code, messages[:2], logged))
    assert wrong == [], "\n".join(map(str, wrong))


def test_sse_needs_a_key_of_the_jobs_tenant(sqlite_api: Harness) -> None:
    api = sqlite_api
    job_id = api.submit("t_api_quick", {"x": 1})["id"]
    response = api.client.get(f"{API}/jobs/{job_id}/events")
    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    revoked = api.client.get(f"{API}/jobs/{job_id}/events", headers=api.headers("revoked"))
    assert_error(revoked, 401, "unauthenticated")
    assert_error(api.client.get(f"{API}/jobs/{job_id}/events", headers=api.headers("other")), 404, "job_not_found")
    assert_error(api.client.get(f"{API}/jobs/{'0' * 32}/events", headers=api.headers()), 404, "job_not_found")


# --- WebSocket ----------------------------------------------------------------------------


def test_websocket_with_api_key_param_sends_backlog_then_live_and_closes_1000(api: Harness) -> None:
    name = label()
    job_id = api.submit("t_api_gated", {"label": name})["id"]
    running = api.wait(job_id, lambda job: job["state"] == "running" and job["progress"] > 0)
    backlog_end = running["last_event"]

    with api.client.websocket_connect(ws_url(job_id, key=api.keys["viewer"])) as ws:
        backlog = [ws.receive_json() for _ in range(backlog_end)]
        assert [event["seq"] for event in backlog] == list(range(1, backlog_end + 1))
        assert backlog[0]["type"] == "job.queued"
        gate(name).set()
        live, code = receive_until_close(ws)
    assert code == 1000
    job = api.job(job_id)
    assert job["state"] == "succeeded"
    events = backlog + live
    assert_gap_free([event["seq"] for event in events], job["last_event"])
    assert live, "no live event arrived"
    assert events[-1]["type"] == "job.finished"
    assert events[-1]["state"] == "succeeded"
    assert events[-1]["progress"] == 100
    progress = [event["progress"] for event in events]
    assert progress == sorted(progress)


def test_websocket_with_authorization_header_resumes_with_after(api: Harness) -> None:
    job_id = api.submit("t_api_ticker", {"steps": 30, "delay": 0.03})["id"]
    headers = api.headers()
    baseline = api.vigia.bus.subscriber_count
    with api.client.websocket_connect(ws_url(job_id), headers=headers) as ws:
        first = [ws.receive_json() for _ in range(4)]
        drop(api, ws, baseline)
    assert first[-1]["type"] != "job.finished"
    assert api.job(job_id)["state"] in ("queued", "running"), "the drop should happen mid-job"

    last_seen = first[-1]["seq"]
    with api.client.websocket_connect(ws_url(job_id, after=last_seen), headers=headers) as ws:
        rest, code = receive_until_close(ws)
    assert code == 1000
    assert rest[0]["seq"] == last_seen + 1
    assert rest[-1]["type"] == "job.finished"
    job = api.job(job_id)
    assert job["state"] == "succeeded"
    assert_gap_free([event["seq"] for event in first + rest], job["last_event"])

    # A finished job: the backlog after `after`, then a clean close; nothing after the last.
    with api.client.websocket_connect(ws_url(job_id, key=api.keys["viewer"], after=5)) as ws:
        replay, code = receive_until_close(ws)
    assert code == 1000
    assert [event["seq"] for event in replay] == list(range(6, job["last_event"] + 1))
    with api.client.websocket_connect(ws_url(job_id, key=api.keys["viewer"], after=job["last_event"])) as ws:
        assert receive_until_close(ws) == ([], 1000)


def test_websocket_refuses_missing_invalid_revoked_keys_and_other_tenants(sqlite_api: Harness) -> None:
    api = sqlite_api
    job_id = api.submit("t_api_quick", {"x": 1})["id"]
    refusals = [
        (ws_url(job_id), {}, 4401),
        (ws_url(job_id, key="vigia_000000000000_" + "A" * 43), {}, 4401),
        (ws_url(job_id, key="nonsense"), {}, 4401),
        (ws_url(job_id, key=api.keys["revoked"]), {}, 4401),
        (ws_url(job_id), {"Authorization": f"Bearer {api.keys['revoked']}"}, 4401),
        (ws_url(job_id, key=api.keys["other"]), {}, 4404),
        (ws_url(job_id), api.headers("other_admin"), 4404),
        (ws_url("0" * 32, key=api.keys["admin"]), {}, 4404),
    ]
    for url, headers, expected in refusals:
        # Accepted, then closed with the code (a close in the handshake would be an HTTP 403).
        with api.client.websocket_connect(url, headers=headers) as ws, pytest.raises(WebSocketDisconnect) as refused:
            ws.receive_text()
        assert refused.value.code == expected, (url, headers)
    # The job is untouched, and its own tenant can still follow it.
    job = api.wait(job_id)
    assert job["state"] == "succeeded"
    with api.client.websocket_connect(ws_url(job_id), headers={"X-API-Key": api.keys["viewer"]}) as ws:
        events, code = receive_until_close(ws)
    assert code == 1000
    assert [event["seq"] for event in events] == list(range(1, job["last_event"] + 1))
