"""A small HTTP client for a Vigía server: what the `vigia` command uses with `--url`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from vigia.exceptions import VigiaError
from vigia.job import Event, EventType, JobState

API = "/api/v1"


class ServerError(VigiaError):
    """The server refused the request."""

    code = "server_error"


class Client:
    def __init__(self, url: str, api_key: str | None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self._http.request(method, API + path, **options)
        except httpx.HTTPError as error:
            raise VigiaError(f"cannot reach the server at {self._http.base_url}: {error}") from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def submit(
        self,
        pipeline: str,
        job_input: Any = None,
        *,
        file: Path | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if file is None:
            body = {"input": job_input, "priority": priority}
            return dict(self._call("POST", f"/pipelines/{pipeline}/jobs", json=body, headers=headers).json())
        with file.open("rb") as handle:
            form = {"priority": str(priority)}
            if job_input is not None:
                form["input"] = json.dumps(job_input)
            files = {"file": (file.name, handle, "application/octet-stream")}
            response = self._call("POST", f"/pipelines/{pipeline}/jobs", data=form, files=files, headers=headers)
        return dict(response.json())

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/jobs/{job_id}").json())

    def result(self, job_id: str) -> tuple[int, dict[str, Any]]:
        try:
            response = self._http.get(f"{API}/jobs/{job_id}/result")
        except httpx.HTTPError as error:
            raise VigiaError(f"cannot reach the server at {self._http.base_url}: {error}") from None
        return response.status_code, dict(response.json())

    def jobs(self, **filters: Any) -> dict[str, Any]:
        params = {name: value for name, value in filters.items() if value not in (None, [], ())}
        return dict(self._call("GET", "/jobs", params=params).json())

    def pipelines(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/pipelines").json())

    def pipeline(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/pipelines/{name}").json())

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/jobs/{job_id}/cancel").json())

    def retry(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/jobs/{job_id}/retry").json())

    def reviews(self, **filters: Any) -> dict[str, Any]:
        params = {name: value for name, value in filters.items() if value not in (None, [], ())}
        return dict(self._call("GET", "/reviews", params=params).json())

    def review(self, review_id: str, action: str, note: str | None = None) -> dict[str, Any]:
        body = {"note": note} if action == "resolve" else None
        return dict(self._call("POST", f"/reviews/{review_id}/{action}", json=body).json())

    def dead(self, **filters: Any) -> dict[str, Any]:
        params = {name: value for name, value in filters.items() if value is not None}
        return dict(self._call("GET", "/dlq", params=params).json())

    def dead_statistics(self, **filters: Any) -> dict[str, Any]:
        params = {name: value for name, value in filters.items() if value is not None}
        return dict(self._call("GET", "/dlq/statistics", params=params).json())

    def retry_dead(self, **filters: Any) -> int:
        body = {name: value for name, value in filters.items() if value is not None}
        return int(self._call("POST", "/dlq/retry", json=body).json()["count"])

    def purge_dead(self, *, everything: bool = False, **filters: Any) -> int:
        params = {name: value for name, value in filters.items() if value is not None}
        if everything:
            params["all"] = "true"
        return int(self._call("DELETE", "/dlq", params=params).json()["count"])

    def documents(self, **filters: Any) -> dict[str, Any]:
        params = {name: value for name, value in filters.items() if value is not None}
        return dict(self._call("GET", "/documents", params=params).json())

    def document(self, document_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/documents/{document_id}").json())

    def search_documents(self, query: str, **filters: Any) -> dict[str, Any]:
        params = {"q": query, **{name: value for name, value in filters.items() if value is not None}}
        return dict(self._call("GET", "/documents/search", params=params).json())

    def delete_document(self, document_id: str) -> None:
        self._call("DELETE", f"/documents/{document_id}")

    def monitoring_status(self) -> dict[str, Any]:
        return dict(self._call("GET", "/monitoring/status").json())

    def events(self, job_id: str, after: int = 0) -> Iterator[Event]:
        """The job's events over Server-Sent Events, reconnecting (from the last one seen)
        if the connection drops, until the job's final event."""
        last = after
        failures = 0
        while True:
            try:
                with self._http.stream(
                    "GET", f"{API}/jobs/{job_id}/events", headers={"Last-Event-ID": str(last)}, timeout=None
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise _error(response)
                    for event in _parse_sse(job_id, response.iter_lines()):
                        failures = 0
                        last = event.seq
                        yield event
                        if event.is_final:
                            return
            except httpx.HTTPError as error:
                failures += 1
                if failures > 5:
                    raise VigiaError(f"lost the event stream of job {job_id}: {error}") from None


def _parse_sse(job_id: str, lines: Iterator[str]) -> Iterator[Event]:
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event_from_json(job_id, json.loads("\n".join(data)))
            data = []


def event_from_json(job_id: str, body: dict[str, Any]) -> Event:
    created = dt.datetime.fromisoformat(body["created_at"].replace("Z", "+00:00")).timestamp()
    return Event(
        job_id=job_id,
        seq=int(body["seq"]),
        type=EventType(body["type"]),
        state=JobState(body["state"]),
        stage=body.get("stage"),
        progress=float(body["progress"]),
        message=body.get("message"),
        created_at=created,
        stage_progress=body.get("stage_progress"),
    )


def _error(response: httpx.Response) -> ServerError:
    try:
        error = response.json()["error"]
        return ServerError(f"{error['message']} ({response.status_code} {error['code']})", **error.get("details", {}))
    except (ValueError, KeyError, TypeError):
        return ServerError(f"the server answered {response.status_code}: {response.text[:200]}")
