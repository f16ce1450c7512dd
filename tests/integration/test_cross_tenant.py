"""Every path of the OpenAPI document, tried with another tenant's real ids and every role
of the other tenant: generated from the schema, so a new endpoint is covered the day it is
added. Nothing of the first tenant is read, changed or even confirmed to exist."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.harness import API, TENANT, Harness, harness, tiny_png
from vigia.access import Role, issue
from vigia.store.documents import NewChunk, PageRow

pytestmark = pytest.mark.timeout(180)

ROLES = [Role.VIEWER, Role.SUBMITTER, Role.REVIEWER, Role.ADMIN]
#: Answers that reveal nothing: not authenticated, not allowed, no such thing, not a method
#: of the path, or a refusal of the request itself.
REVEALS_NOTHING = {401, 403, 404, 405, 409, 415, 422}


def test_no_path_gives_another_tenant_anything(store_url: str, tmp_path: Any) -> None:
    with harness(store_url, tmp_path) as api:
        ids = _their_things(api)
        before = _snapshot(api, ids)
        spec = api.client.get(f"{API}/openapi.json").json()
        keys = {}
        for role in ROLES:
            issued = issue()
            api.vigia.keys.create(issued, tenant="intruder", role=role, name=role.value, now=0.0)
            keys[role.value] = issued.plaintext
        leaks: list[str] = []
        tried = 0
        for path, methods in spec["paths"].items():
            names = re.findall(r"{(\w+)}", path)
            if not names or names == ["name"]:
                # Listings: their tenant filters are checked below. Pipelines are the
                # installation's, not a tenant's: every key may read them.
                continue
            concrete = path
            for name in names:
                concrete = concrete.replace(f"{{{name}}}", ids.get(name, ids["job_id"]))
            for method in methods:
                for role, key in keys.items():
                    tried += 1
                    response = api.client.request(
                        method.upper(), concrete, headers={"Authorization": f"Bearer {key}"}, json=_body(method, path)
                    )
                    text = response.text
                    if response.status_code not in REVEALS_NOTHING or TENANT in text or "ulcer" in text:
                        leaks.append(f"{method.upper()} {concrete} as {role}: {response.status_code} {text[:160]}")
        # Listings of the intruder show none of it.
        for listing in ("/jobs", "/reviews", "/dlq", "/documents", "/notifications"):
            body = api.client.get(f"{API}{listing}", headers={"Authorization": f"Bearer {keys['admin']}"}).json()
            found = next(value for value in body.values() if isinstance(value, list))
            if found:
                leaks.append(f"GET {listing} as admin of another tenant lists {len(found)}")
        after = _snapshot(api, ids)
    print(f"{tried} requests with another tenant's ids")
    assert tried >= 12 * len(ROLES)  # every operation on an id, by every role
    assert leaks == [], "\n".join(leaks)
    assert after == before


def _their_things(api: Harness) -> dict[str, str]:
    job = api.submit("t_confidence", {"patient_code": "PT-1", "confidence": 0.3, "note": "ulcer"})
    api.wait(job["id"])
    batch = api.client.post(
        f"{API}/batches", json={"pipeline": "t_api_quick", "inputs": [{"n": 1}]}, headers=api.headers()
    ).json()
    reviews = api.client.get(f"{API}/reviews", params={"job_id": job["id"]}, headers=api.headers()).json()["reviews"]
    assert reviews, "the low-confidence job opens a review"
    # The job the paths name carries a file, so that its file's path has something to leak.
    uploaded = api.client.post(
        f"{API}/pipelines/t_api_file/jobs",
        files={"file": ("ulcer.png", tiny_png(), "image/png")},
        data={"input": "{}"},
        headers=api.headers(),
    ).json()
    api.wait(uploaded["id"])
    document_id = api.vigia.documents.save(
        tenant=TENANT, sha256="ab" * 32, job_id=job["id"], media_type="application/pdf", size=1,
        fields={"title": "ulcer report"}, details={}, pages=[PageRow(1, "text_layer", None, None, "ulcer")],
        chunks=[NewChunk(0, 1, 1, 0, 5, "ulcer", "ulcer")], status="indexed",
    )  # fmt: skip
    return {
        "job_id": uploaded["id"],
        "reviewed_job": job["id"],
        "batch_id": batch["id"],
        "review_id": reviews[0]["id"],
        "document_id": document_id,
    }


def _body(method: str, path: str) -> Any:
    if method == "post" and path.endswith("/resolve"):
        return {"note": "closed by an intruder"}
    if method == "post":
        return {}
    return None


def _snapshot(api: Harness, ids: dict[str, str]) -> str:
    job = api.vigia.store.get_job(ids["job_id"])
    reviews = api.client.get(f"{API}/reviews", params={"job_id": ids["reviewed_job"]}, headers=api.headers()).json()
    document = api.client.get(f"{API}/documents/{ids['document_id']}", headers=api.headers()).json()
    return json.dumps([job.state.value, job.last_seq, reviews, document["status"]], sort_keys=True, default=str)
