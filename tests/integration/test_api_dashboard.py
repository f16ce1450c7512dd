"""What the dashboard asks of the API beyond the rest: who a key is, every job of a tenant
live, a job's file, filters by id and batch, the monitoring history, and the page itself.
On SQLite and PostgreSQL, through the real app."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import API, OTHER_TENANT, TENANT, Harness, assert_error, harness, tiny_png
from vigia.web import SECURITY_HEADERS

pytestmark = pytest.mark.timeout(120)


def test_me_says_the_keys_tenant_role_and_permissions(api: Harness) -> None:
    expected = {
        "viewer": (TENANT, ["read"]),
        "submitter": (TENANT, ["read", "submit"]),
        "reviewer": (TENANT, ["read", "review"]),
        "admin": (TENANT, ["admin", "read", "review", "submit"]),
        "other": (OTHER_TENANT, ["read", "submit"]),
    }
    for who, (tenant, permissions) in expected.items():
        me = api.client.get(f"{API}/me", headers=api.headers(who)).json()
        assert (me["tenant"], me["permissions"], me["key_id"]) == (tenant, permissions, api.key_ids[who]), me
        assert api.keys[who] not in json.dumps(me)
    assert_error(api.client.get(f"{API}/me"), 401)
    assert_error(api.client.get(f"{API}/me", headers=api.headers("revoked")), 401)


def test_the_tenant_stream_carries_every_job_of_the_tenant_and_no_other(api: Harness) -> None:
    ours: list[str] = []

    def submit_jobs() -> None:
        # Another tenant's job first, finished before ours start: had its events leaked,
        # they would be read before ours end.
        theirs = api.submit("t_api_quick", {"n": "theirs"}, who="other")
        deadline = time.monotonic() + 30
        while not api.vigia.store.get_job(theirs["id"]).state.is_terminal:
            assert time.monotonic() < deadline, "the other tenant's job never finished"
            time.sleep(0.02)
        ours.extend(api.submit("t_api_quick", {"n": n})["id"] for n in (1, 2))

    seen: list[dict[str, Any]] = []
    with api.client.stream("GET", f"{API}/events", headers=api.headers("viewer")) as response:
        assert response.status_code == 200
        fields: dict[str, str] = {}
        finished: set[str] = set()
        for number, line in enumerate(response.iter_lines()):
            if number == 0:  # the stream is open (its first line is the retry hint)
                submit_jobs()
            if line == "" and "data" in fields:
                event = json.loads(fields["data"])
                assert fields["id"] == f"{event['job_id']}:{event['seq']}"
                seen.append(event)
                if event["type"] == "job.finished":
                    finished.add(event["job_id"])
                if ours and set(ours) <= finished:
                    break
            if line == "":
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    assert {event["job_id"] for event in seen} == set(ours), "another tenant's job reached this tenant's stream"
    for job_id in ours:
        types = [event["type"] for event in seen if event["job_id"] == job_id]
        assert types[0] == "job.queued" and types[-1] == "job.finished", types
        assert [event["seq"] for event in seen if event["job_id"] == job_id] == list(range(1, len(types) + 1))
    assert_error(api.client.get(f"{API}/events"), 401)


def test_a_jobs_file_is_served_to_its_tenant_only(api: Harness) -> None:
    png = tiny_png()
    response = api.client.post(
        f"{API}/pipelines/t_api_file/jobs",
        files={"file": ("Maria Lopez wound.png", png, "image/png")},
        data={"input": "{}"},
        headers=api.headers(),
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    api.wait(job_id)
    served = api.client.get(f"{API}/jobs/{job_id}/file", headers=api.headers("viewer"))
    assert served.status_code == 200 and served.content == png
    assert served.headers["content-type"] == "image/png"
    assert "Maria" not in json.dumps(dict(served.headers))
    assert_error(api.client.get(f"{API}/jobs/{job_id}/file", headers=api.headers("other")), 404, "job_not_found")
    without = api.submit("t_api_quick", {"n": 1})
    assert_error(api.client.get(f"{API}/jobs/{without['id']}/file", headers=api.headers()), 404, "job_file_not_found")


def test_jobs_are_found_by_the_start_of_their_id_and_by_batch(api: Harness) -> None:
    alone = [api.submit("t_api_quick", {"n": n})["id"] for n in range(3)]
    batch = api.client.post(
        f"{API}/batches", json={"pipeline": "t_api_quick", "inputs": [{"i": 0}, {"i": 1}]}, headers=api.headers()
    ).json()

    def listed(**params: Any) -> list[str]:
        response = api.client.get(f"{API}/jobs", params=params, headers=api.headers())
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["jobs"]]

    for job_id in alone:
        # Ids share their time prefix: enough of the id to be unique finds the one job.
        unique = next(
            job_id[:length]
            for length in range(8, 33)
            if sum(other.startswith(job_id[:length]) for other in alone + [j["id"] for j in batch["jobs"]]) == 1
        )
        assert listed(id_prefix=unique) == [job_id]
        assert listed(id_prefix=unique.upper()) == [job_id]
    assert set(listed(id_prefix=alone[0][:4])) >= set(alone)
    assert sorted(listed(batch=batch["id"])) == sorted(job["id"] for job in batch["jobs"])
    assert listed(id_prefix=alone[0], batch=batch["id"]) == []
    other = api.client.get(f"{API}/jobs", params={"id_prefix": alone[0]}, headers=api.headers("other")).json()
    assert other["jobs"] == []
    for bad in ({"id_prefix": "xyz"}, {"id_prefix": ""}, {"batch": "nope"}):
        error = assert_error(api.client.get(f"{API}/jobs", params=bad, headers=api.headers()), 422)
        assert next(iter(bad)) in json.dumps(error["details"])


def test_the_monitoring_history_counts_the_last_hour_and_outlives_the_server(store_url: str, tmp_path: Path) -> None:
    with harness(store_url, tmp_path) as api:
        done = [api.submit("t_api_quick", {"n": n})["id"] for n in range(4)]
        for job_id in done:
            api.wait(job_id)
        api.vigia.watch.check()
        history = api.client.get(f"{API}/monitoring/history", headers=api.headers("admin")).json()
        assert_error(api.client.get(f"{API}/monitoring/history", headers=api.headers("viewer")), 403)
    assert history["step_seconds"] == 60 and len(history["buckets"]) == 60
    assert history["buckets"] == sorted(history["buckets"]) and history["buckets"][-1] <= time.time()
    quick = history["pipelines"]["t_api_quick"]
    assert sum(quick["finished"]) == 4 and sum(quick["failed"]) == 0
    minute = max(range(60), key=lambda index: quick["finished"][index])
    assert quick["failure_rate"][minute] == 0.0 and quick["p95_seconds"][minute] is not None
    assert all(rate is None for rate, count in zip(quick["failure_rate"], quick["finished"], strict=True) if not count)
    assert "default" in history["queues"]
    sampled = [value for value in history["queues"]["default"]["depth"] if value is not None]
    assert sampled == [0], history["queues"]["default"]

    # Another server over the same store draws the same hour.
    with harness(store_url, tmp_path) as again:
        later = again.client.get(f"{API}/monitoring/history", headers=again.headers("admin")).json()
    assert sum(later["pipelines"]["t_api_quick"]["finished"]) == 4
    assert [value for value in later["queues"]["default"]["depth"] if value is not None] == [0]


def test_the_page_is_served_with_its_policy_and_nothing_outside_it(sqlite_api: Harness) -> None:
    client = sqlite_api.client
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/ui/assets/js/main.js">' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    script = client.get("/ui/assets/js/main.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for module in ("api", "dom", "graph", "charts", "results", "views/jobs", "views/job", "views/submit"):
        assert client.get(f"/ui/assets/js/{module}.js").status_code == 200, module
    for outside in (
        "/ui/assets/../__init__.py",
        "/ui/assets/%2e%2e/__init__.py",
        "/ui/assets/js/nothing.js",
        "/ui/assets/",
    ):
        assert client.get(outside).status_code == 404, outside
