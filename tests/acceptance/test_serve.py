"""`vigia serve` as a real process, used over real HTTP and by the real `vigia` command.

Every server and command here is a subprocess; nothing is mocked. Commands run without a
terminal (stdin from /dev/null, output to pipes), as in a script or a CI job.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from vigia.store.api_keys import ApiKeyStore
from vigia.store.database import Database
from vigia.store.jobs import SQLJobStore

API = "/api/v1"
KEY = re.compile(r"vigia_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
DEMO_STAGES = ("load", "words", "sentences", "language", "report")
TERMINAL_STATES = {"succeeded", "degraded", "failed", "dead", "cancelled"}
KEY_CREATED = "created a local admin API key"
#: Variables that would make the commands' output depend on the terminal of whoever runs the tests.
TERMINAL_VARIABLES = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
COMMAND_TIMEOUT = 60.0


# --- helpers (also used by test_cli.py) -----------------------------------------------


def vigia_env(**extra: str) -> dict[str, str]:
    """The environment of a `vigia` subprocess: none of the caller's VIGIA_* settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("VIGIA_") and name not in TERMINAL_VARIABLES
    }
    env["VIGIA_POLL_INTERVAL"] = "0.05"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def vigia_command() -> list[str]:
    """The installed `vigia` console script next to this Python, else `python -m vigia.cli`."""
    script = Path(sys.executable).with_name("vigia")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vigia.cli"]


def run_vigia(*args: object, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*vigia_command(), *(str(arg) for arg in args)],
        cwd=cwd,
        env=env or vigia_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {result.returncode}\n--- stdout:\n{result.stdout}\n--- stderr:\n{result.stderr}"


def assert_one_line_error(result: subprocess.CompletedProcess[str], mentions: str, status: int | None = None) -> None:
    """The command failed with a single `error: ...` line on stderr and no traceback."""
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    if status is None:
        assert result.returncode != 0, describe(result)
    else:
        assert result.returncode == status, describe(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{describe(result)}"
    assert lines[0].startswith("error:"), describe(result)
    assert mentions in lines[0], describe(result)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "admin.key"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def admin_key(self) -> str:
        return self.key_file.read_text().strip()

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url + API, headers=headers, timeout=10.0)


def start_server(data_dir: Path, log: Path, *, host: str | None = None, env: dict[str, str] | None = None) -> Server:
    """Start `vigia serve` and return once GET /api/v1/health answers."""
    port = free_port()
    args = [*vigia_command(), "serve", "--port", str(port), "--data-dir", str(data_dir)]
    if host is not None:
        args += ["--host", host]
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            args,
            cwd=log.parent,
            env=env or vigia_env(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, data_dir, log)
    try:
        wait_until_healthy(server)
    except BaseException:
        stop(process)
        raise
    return server


def wait_until_healthy(server: Server, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as http:
        while True:
            if server.process.poll() is not None:
                pytest.fail(
                    f"vigia serve exited with {server.process.returncode} before answering; its log:\n"
                    + server.output()
                )
            try:
                response = http.get(f"{server.url}{API}/health")
                if response.status_code == 200:
                    assert response.json() == {"status": "ok"}
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vigia serve did not answer {API}/health within {timeout} s; its log:\n{server.output()}")
            time.sleep(0.05)


def stop(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, then SIGKILL if it is still there after ``timeout``; the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def wait_for_job(http: httpx.Client, location: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the job's URL until it is in a terminal state, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(location.removeprefix(API))
        assert response.status_code == 200, response.text
        job = dict(response.json())
        if job["state"] in TERMINAL_STATES:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job still {job['state']} after {timeout} s: {job}")
        time.sleep(0.05)


def submit_and_wait(http: httpx.Client, job_input: Any) -> dict[str, Any]:
    response = http.post("/pipelines/demo/jobs", json={"input": job_input})
    assert response.status_code == 202, response.text
    return wait_for_job(http, response.headers["Location"])


def read_sse(http: httpx.Client, job_id: str, last_event_id: int) -> list[dict[str, str]]:
    """Every event of a job's Server-Sent Events stream, until the server ends it."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    with http.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(last_event_id)}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "data" in fields:
                    events.append(fields)
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value
    return events


def result_json(stdout: str) -> dict[str, Any]:
    """The JSON object a command printed last (after any progress bars)."""
    lines = stdout.splitlines()
    start = max(index for index, line in enumerate(lines) if line == "{")
    return dict(json.loads("\n".join(lines[start:])))


# --- one server for the tests that only use it ------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve")
    running = start_server(root / "data", root / "serve.log")
    try:
        yield running
    finally:
        stop(running.process)


@pytest.fixture(scope="module")
def finished_job(server: Server) -> dict[str, Any]:
    with server.http(server.admin_key()) as http:
        job = submit_and_wait(http, {"pace": 0.01})
    assert job["state"] == "succeeded", job
    return job


def test_first_start_on_loopback_creates_prints_and_saves_an_admin_key(server: Server) -> None:
    assert server.key_file.exists(), server.output()
    key = server.admin_key()
    assert KEY.fullmatch(key), key
    assert server.key_file.stat().st_mode & 0o777 == 0o600
    output = server.output()
    assert KEY_CREATED in output
    assert KEY.findall(output) == [key], output
    with server.http(key) as http:
        response = http.get("/jobs")
    assert response.status_code == 200, response.text


def test_cli_submit_follow_prints_progress_per_stage_and_the_result(server: Server) -> None:
    result = run_vigia(
        "submit",
        "demo",
        "--input",
        '{"pace":0.01}',
        "--follow",
        "--url",
        server.url,
        "--data-dir",
        server.data_dir,
        cwd=server.log.parent,
    )
    assert result.returncode == 0, describe(result)
    lines = result.stdout.splitlines()
    assert JOB_ID.match(lines[0]), describe(result)
    for stage in DEMO_STAGES:
        assert re.search(rf"^\s+{stage}\s.*100%.*succeeded", result.stdout, re.MULTILINE), describe(result)
    report = result_json(result.stdout)
    assert report["sentences"] > 0
    assert report["words"] > 0
    assert report["language"] == "en"
    with server.http(server.admin_key()) as http:
        assert http.get(f"/jobs/{lines[0]}").json()["state"] == "succeeded"


def test_http_submit_poll_result_and_event_stream(server: Server) -> None:
    with server.http(server.admin_key()) as http:
        response = http.post("/pipelines/demo/jobs", json={"input": {"pace": 0.01, "flaky": True}})
        assert response.status_code == 202, response.text
        submitted = response.json()
        assert JOB_ID.match(submitted["id"])
        assert response.headers["Location"] == f"{API}/jobs/{submitted['id']}"

        job = wait_for_job(http, response.headers["Location"])
        assert job["state"] == "succeeded", job
        assert job["progress"] == 100
        assert {stage["stage"]: stage["state"] for stage in job["stages"]} == dict.fromkeys(DEMO_STAGES, "succeeded")
        assert {stage["stage"]: stage["attempts"] for stage in job["stages"]}["words"] == 2  # flaky: one retry

        response = http.get(f"/jobs/{job['id']}/result")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["state"] == "succeeded"
        assert body["degraded_stages"] == []
        assert body["result"]["sentences"] > 0

        events = read_sse(http, job["id"], 0)
        seqs = [int(event["id"]) for event in events]
        assert seqs == list(range(1, job["last_event"] + 1))
        data = [json.loads(event["data"]) for event in events]
        assert [item["seq"] for item in data] == seqs
        assert [item["type"] for item in data] == [event["event"] for event in events]
        assert events[-1]["event"] == "job.finished"
        assert [event["event"] for event in events].count("job.finished") == 1
        assert data[-1]["state"] == "succeeded"
        assert {item["stage"] for item in data if item["type"] == "stage.succeeded"} == set(DEMO_STAGES)
        assert "stage.retrying" in [event["event"] for event in events]

        resumed = read_sse(http, job["id"], seqs[-3])
        assert [int(event["id"]) for event in resumed] == seqs[-2:]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"Authorization": "Bearer not-a-key"}, id="malformed-key"),
        pytest.param({"X-API-Key": "vigia_000000000000_" + "A" * 43}, id="unknown-key"),
    ],
)
def test_requests_without_a_valid_key_get_a_401_json_error(server: Server, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=server.url + API, headers=headers, timeout=10.0) as http:
        for response in (http.get("/jobs"), http.post("/pipelines/demo/jobs", json={"input": {"pace": 0}})):
            assert response.status_code == 401, response.text
            assert response.headers["content-type"].startswith("application/json")
            assert response.headers["WWW-Authenticate"] == "Bearer"
            error = response.json()["error"]
            assert error["code"] == "unauthenticated"
            assert error["message"]


def test_cli_status_and_jobs_show_the_job(server: Server, finished_job: dict[str, Any]) -> None:
    job_id = finished_job["id"]
    status = run_vigia("status", job_id, "--url", server.url, "--data-dir", server.data_dir, cwd=server.log.parent)
    assert status.returncode == 0, describe(status)
    assert job_id in status.stdout
    assert "succeeded" in status.stdout
    for stage in DEMO_STAGES:
        assert re.search(rf"│ {stage}\s+│ succeeded", status.stdout), describe(status)

    jobs = run_vigia(
        "jobs", "list", "--url", server.url, "--data-dir", server.data_dir, "--json", cwd=server.log.parent
    )
    assert jobs.returncode == 0, describe(jobs)
    listed = {job["id"]: job for job in json.loads(jobs.stdout)["jobs"]}
    assert listed[job_id]["state"] == "succeeded"
    assert listed[job_id]["pipeline"] == "demo"


def test_cli_reads_the_server_and_key_from_the_environment(server: Server, finished_job: dict[str, Any]) -> None:
    env = vigia_env(VIGIA_URL=server.url, VIGIA_API_KEY=server.admin_key())
    # No --data-dir: the key can only come from VIGIA_API_KEY.
    result = run_vigia("status", finished_job["id"], "--json", cwd=server.log.parent, env=env)
    assert result.returncode == 0, describe(result)
    body = json.loads(result.stdout)
    assert body["id"] == finished_job["id"]
    assert body["state"] == "succeeded"
    assert [stage["stage"] for stage in body["stages"]] == list(DEMO_STAGES)


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        pytest.param(["submit", "demo", "--input", '{"pace": 99}'], "pace", id="invalid-input"),
        pytest.param(["submit", "nosuchpipeline"], "nosuchpipeline", id="unknown-pipeline"),
        pytest.param(["status", "0" * 32], "0" * 32, id="unknown-job"),
        pytest.param(["jobs", "list", "--api-key", "vigia_000000000000_" + "A" * 43], "API key", id="unknown-key"),
    ],
)
def test_cli_bad_requests_fail_with_one_error_line(server: Server, args: list[str], mentions: str) -> None:
    result = run_vigia(*args, "--url", server.url, "--data-dir", server.data_dir, cwd=server.log.parent)
    assert_one_line_error(result, mentions, status=1)
    assert result.stdout.strip() == "", describe(result)


def test_cli_with_an_unreachable_server_fails_with_one_error_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_vigia("submit", "demo", "--url", url, "--api-key", "vigia_000000000000_" + "A" * 43, cwd=tmp_path)
    assert_one_line_error(result, "cannot reach the server", status=1)


@pytest.mark.slow
def test_a_second_data_dir_on_loopback_gets_its_own_key(server: Server, tmp_path: Path) -> None:
    other = start_server(tmp_path / "data", tmp_path / "serve.log", host="127.0.0.1")
    try:
        assert other.key_file.exists(), other.output()
        key = other.admin_key()
        assert KEY.fullmatch(key)
        assert key != server.admin_key()
        assert KEY.findall(other.output()) == [key]
        with other.http(key) as http:
            assert http.get("/jobs").status_code == 200
        with other.http(server.admin_key()) as http:
            assert http.get("/jobs").status_code == 401
    finally:
        stop(other.process)


@pytest.mark.slow
def test_serving_on_all_interfaces_creates_no_key(tmp_path: Path) -> None:
    exposed = start_server(tmp_path / "data", tmp_path / "serve.log", host="0.0.0.0")
    try:
        assert not exposed.key_file.exists()
        output = exposed.output()
        assert KEY_CREATED not in output
        assert not KEY.findall(output)
        assert "no API keys exist" in output
        with exposed.http() as http:
            assert http.get("/jobs").status_code == 401
    finally:
        stop(exposed.process)


@pytest.mark.slow
def test_sigterm_stops_the_server_with_exit_status_0(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data", tmp_path / "serve.log")
    try:
        with running.http(running.admin_key()) as http:
            assert submit_and_wait(http, {"pace": 0})["state"] == "succeeded"
        running.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            running.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"vigia serve still running {STOP_TIMEOUT} s after SIGTERM; its log:\n{running.output()}")
        elapsed = time.monotonic() - started
    finally:
        stop(running.process)
    assert "Traceback" not in running.output()
    assert running.process.returncode == 0, (
        f"vigia serve exited with {running.process.returncode} after SIGTERM ({elapsed:.1f} s); "
        f"its log:\n{running.output()}"
    )


@pytest.mark.slow
def test_sigterm_stops_the_server_while_a_client_follows_a_running_job(tmp_path: Path) -> None:
    # A client following a job (as `vigia submit --follow` or a dashboard does) must not
    # keep a stopping server alive until the job ends (this one would run about 40 s).
    running = start_server(tmp_path / "data", tmp_path / "serve.log", env=vigia_env(VIGIA_SHUTDOWN_GRACE="1"))
    try:
        with running.http(running.admin_key()) as http:
            response = http.post("/pipelines/demo/jobs", json={"input": {"pace": 1.0}})
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            with http.stream("GET", f"/jobs/{job_id}/events", timeout=5.0) as stream:
                assert stream.status_code == 200
                lines = stream.iter_lines()
                for line in lines:
                    if line == "event: stage.started":
                        break
                running.process.send_signal(signal.SIGTERM)
                started = time.monotonic()
                # Go on reading, as a client does, until the server ends the stream.
                with contextlib.suppress(httpx.HTTPError):
                    for _ in lines:
                        if time.monotonic() - started > STOP_TIMEOUT:
                            break
                try:
                    running.process.wait(max(0.1, STOP_TIMEOUT - (time.monotonic() - started)))
                except subprocess.TimeoutExpired:
                    pytest.fail(
                        f"vigia serve still running {STOP_TIMEOUT} s after SIGTERM while a client followed "
                        f"a running job; its log:\n{running.output()}"
                    )
    finally:
        stop(running.process)
    assert "Traceback" not in running.output()


@pytest.mark.slow
def test_restart_on_the_same_data_dir_keeps_the_key_and_the_jobs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir, tmp_path / "first.log")
    try:
        key = first.admin_key()
        with first.http(key) as http:
            job = submit_and_wait(http, {"pace": 0})
            result = http.get(f"/jobs/{job['id']}/result").json()
        assert job["state"] == "succeeded", job
    finally:
        stop(first.process)
    assert KEY_CREATED in first.output()

    second = start_server(data_dir, tmp_path / "second.log")
    try:
        assert second.admin_key() == key
        assert KEY_CREATED not in second.output()
        assert not KEY.findall(second.output())
        with second.http(key) as http:
            again = http.get(f"/jobs/{job['id']}")
            assert again.status_code == 200, again.text
            assert again.json()["state"] == "succeeded"
            assert again.json()["finished_at"] == job["finished_at"]
            assert http.get(f"/jobs/{job['id']}/result").json() == result
            assert job["id"] in [listed["id"] for listed in http.get("/jobs").json()["jobs"]]
    finally:
        stop(second.process)

    store = SQLJobStore(Database(f"sqlite:///{data_dir / 'vigia.db'}"))
    try:
        keys = ApiKeyStore(store.database).list()
    finally:
        store.database.close()
    assert [(item.role.value, item.name) for item in keys] == [("admin", "local admin")]


def test_a_refused_websocket_gets_its_documented_close_code_over_the_network(
    server: Server, finished_job: dict[str, Any]
) -> None:
    """Through uvicorn and a real client, not the test client: the handshake completes and the
    socket closes with 4401 (no valid key) or 4404 (no such job), not an HTTP 403."""
    from websockets.exceptions import ConnectionClosed  # noqa: PLC0415 -- uvicorn's WebSocket library, test only
    from websockets.sync.client import connect  # noqa: PLC0415 -- uvicorn's WebSocket library, test only

    base = server.url.replace("http://", "ws://") + API
    cases = [
        (f"{base}/ws/jobs/{finished_job['id']}", 4401),
        (f"{base}/ws/jobs/{finished_job['id']}?api_key=vigia_000000000000_{'A' * 43}", 4401),
        (f"{base}/ws/jobs/{'0' * 32}?api_key={server.admin_key()}", 4404),
    ]
    for url, expected in cases:
        with connect(url, open_timeout=10) as socket_, pytest.raises(ConnectionClosed) as closed:
            socket_.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == expected, (url, closed.value)
    with connect(f"{base}/ws/jobs/{finished_job['id']}?api_key={server.admin_key()}", open_timeout=10) as socket_:
        first = json.loads(socket_.recv(timeout=10))
    assert first["seq"] == 1 and first["job_id"] == finished_job["id"]


def test_a_request_the_server_cannot_parse_gets_a_json_error(server: Server) -> None:
    """Before any app code runs (uvicorn's own 400): still the API's one error shape."""
    for garbage in (b"GARBAGE\r\n\r\n", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(garbage)
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), answer
        assert b"content-type: application/json" in head.lower(), answer
        error = json.loads(body)["error"]
        assert error["code"] == "malformed_request" and error["message"].startswith("the HTTP request cannot be read")
