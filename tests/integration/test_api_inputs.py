"""Whatever a client sends, by JSON or by a form, to any endpoint that reads a body: a 4xx in
the one documented shape (`422 invalid_input` naming the field), never a 500, and nothing
stored. Found by hostile probing; each case failed before its fix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness import API, Harness, assert_error, tiny_png

pytestmark = pytest.mark.timeout(120)

#: (what, raw body, the field the error must name)
BAD_BODIES = [
    ("invalid UTF-8", b'{"input": "\xff\xfe"}', "body"),
    ("malformed JSON", b'{"input": ', "body"),
    ("NaN", b'{"input": {"x": NaN}}', "body"),
    ("Infinity", b'{"input": {"x": -Infinity}}', "body"),
    ("an overflowing number", b'{"input": {"x": 1e400}}', "body"),
    ("a 5,000-digit integer", b'{"input": {"x": ' + b"9" * 5000 + b"}}", "body"),
    ("a NUL character", b'{"input": {"note": "a\\u0000b"}}', "body.input.note"),
    ("a lone surrogate", b'{"input": {"note": "\\ud800"}}', "body.input.note"),
    ("a NUL in a key", b'{"input": {"a\\u0000": 1}}', "body.input"),
    ("nesting 10,000 deep", b'{"input": ' + b"[" * 10000 + b"]" * 10000 + b"}", "body"),
]


def problem_field(error: dict[str, Any]) -> str:
    return str(error["details"]["field"])


def stored_jobs(api: Harness) -> int:
    return len(api.client.get(f"{API}/jobs", params={"limit": 200}, headers=api.headers("admin")).json()["jobs"])


@pytest.mark.parametrize(("what", "raw", "field"), BAD_BODIES, ids=[case[0] for case in BAD_BODIES])
def test_a_bad_submission_body_is_a_422_naming_the_field(api: Harness, what: str, raw: bytes, field: str) -> None:
    before = stored_jobs(api)
    response = api.client.post(
        f"{API}/pipelines/t_api_quick/jobs", content=raw, headers={**api.headers(), "Content-Type": "application/json"}
    )
    error = assert_error(response, 422, "invalid_input")
    assert problem_field(error) == field, error
    assert stored_jobs(api) == before


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/batches", "submitter"),
        ("/dlq/retry", "admin"),
        ("/reviews/01a2000000000000000000000000aaaa/resolve", "admin"),
    ],
)
@pytest.mark.parametrize(("what", "raw", "field"), BAD_BODIES[:6], ids=[case[0] for case in BAD_BODIES[:6]])
def test_every_endpoint_that_reads_a_body_refuses_it_the_same_way(
    api: Harness, path: str, who: str, what: str, raw: bytes, field: str
) -> None:
    response = api.client.post(
        f"{API}{path}", content=raw, headers={**api.headers(who), "Content-Type": "application/json"}
    )
    error = assert_error(response, 422, "invalid_input")
    assert problem_field(error) == field, error


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": {}, "priority": True}, "priority"),
        ({"input": {}, "priority": "5"}, "priority"),
        ({"input": {}, "priority": 5.0}, "priority"),
        ({"input": {}, "priority": 101}, "priority"),
    ],
)
def test_a_boolean_or_a_string_is_not_a_priority(api: Harness, body: dict[str, Any], field: str) -> None:
    response = api.client.post(f"{API}/pipelines/t_api_quick/jobs", json=body, headers=api.headers())
    error = assert_error(response, 422, "invalid_input")
    assert problem_field(error) == field, error
    batch = api.client.post(
        f"{API}/batches",
        json={"pipeline": "t_api_quick", "inputs": [{}], "priority": body["priority"]},
        headers=api.headers(),
    )
    assert problem_field(assert_error(batch, 422, "invalid_input")) == field


def test_the_multipart_path_refuses_what_the_json_path_refuses(api: Harness) -> None:
    before = stored_jobs(api)
    for what, raw, _ in BAD_BODIES[1:8]:
        inner = raw.removeprefix(b'{"input": ').removesuffix(b"}") if raw.startswith(b'{"input": {') else raw
        response = api.client.post(
            f"{API}/pipelines/t_api_file/jobs",
            files={"file": ("a.png", tiny_png(), "image/png")},
            data={"input": inner.decode("utf-8", "surrogatepass")},
            headers=api.headers(),
        )
        error = assert_error(response, 422, "invalid_input")
        assert problem_field(error).startswith("input"), (what, error)
    for priority in ("true", " 5", "+5", "٥", "1e3", "5.0"):
        response = api.client.post(
            f"{API}/pipelines/t_api_file/jobs",
            files={"file": ("a.png", tiny_png(), "image/png")},
            data={"input": "{}", "priority": priority},
            headers=api.headers(),
        )
        assert problem_field(assert_error(response, 422, "invalid_input")) == "priority", priority
    assert stored_jobs(api) == before


@pytest.mark.parametrize("moment", ["0", "0.5", "1700000000", "yesterday", "2026-13-45"])
def test_dates_are_iso_8601_only(api: Harness, moment: str) -> None:
    for path, name in (("/jobs", "created_before"), ("/jobs", "created_after"), ("/dlq", "died_before")):
        response = api.client.get(f"{API}{path}", params={name: moment}, headers=api.headers("admin"))
        error = assert_error(response, 422, "invalid_input")
        assert name in problem_field(error), error
    retried = api.client.post(f"{API}/dlq/retry", json={"died_after": moment}, headers=api.headers("admin"))
    assert "died_after" in problem_field(assert_error(retried, 422, "invalid_input"))
    numeric = api.client.post(f"{API}/dlq/retry", json={"died_after": 0}, headers=api.headers("admin"))
    assert "died_after" in problem_field(assert_error(numeric, 422, "invalid_input"))


def test_iso_dates_still_work_with_and_without_a_zone(api: Harness) -> None:
    job = api.submit("t_api_quick", {"n": 1})
    api.wait(job["id"])
    for moment in ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00", "2000-01-01", "2000-01-01T01:00:00+01:00"):
        response = api.client.get(f"{API}/jobs", params={"created_after": moment}, headers=api.headers())
        assert response.status_code == 200, (moment, response.text)
        assert job["id"] in [item["id"] for item in response.json()["jobs"]]
    ok = api.client.post(f"{API}/dlq/retry", json={"died_after": "2000-01-01T00:00:00Z"}, headers=api.headers("admin"))
    assert ok.status_code == 200 and ok.json() == {"count": 0}, ok.text


def test_a_query_parameter_of_the_wrong_type_names_itself(api: Harness) -> None:
    error = assert_error(
        api.client.get(f"{API}/jobs", params={"limit": "many"}, headers=api.headers()), 422, "invalid_input"
    )
    assert problem_field(error) == "query.limit" and json.dumps(error["details"]["problems"])
