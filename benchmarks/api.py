"""HTTP API: submit latency at 1, 16 and 128 concurrent clients, and the time from a stage's
progress call to the event reaching a WebSocket client.

    python benchmarks/api.py [--submissions 1000]

Starts `vigia serve` (embedded workers, SQLite) as a subprocess on a free port; the clients
run in this process. Submitted jobs are no-op jobs that the server's workers run meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def start_server(data_dir: Path, port: int, log: Path, *, workers: bool = True) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VIGIA_DATA_DIR": str(data_dir),
        "VIGIA_PIPELINES": "bench_pipelines:PIPELINES",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "VIGIA_CONCURRENCY": "32",
    }
    env.pop("VIGIA_DATABASE_URL", None)
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "vigia.cli", "serve", "--port", str(port), *([] if workers else ["--no-workers"])],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for a POST.

    httpx costs about a millisecond of client CPU per request; with 128 clients in one
    process the client, not the server, would set the figures."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, key: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def submit_round(port: int, key: str, clients: int, total: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    per_client = max(1, total // clients)
    connections = [await Connection.open(port) for _ in range(clients)]

    async def client(number: int, connection: Connection) -> None:
        for item in range(per_client):
            body = json.dumps({"input": {"c": number, "i": item}}).encode()
            began = time.perf_counter()
            status, answer = await connection.post("/api/v1/pipelines/bench_noop/jobs", key, body)
            latencies.append(time.perf_counter() - began)
            if status != 202:
                raise SystemExit(f"submit failed: {status} {answer[:200]!r}")

    began = time.perf_counter()
    await asyncio.gather(*(client(number, connection) for number, connection in enumerate(connections)))
    elapsed = time.perf_counter() - began
    for connection in connections:
        connection.close()
    return latencies, len(latencies) / elapsed


async def progress_latency(base: str, port: int, key: str, ticks: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
        response = await http.post("/api/v1/pipelines/bench_ticker/jobs", json={"input": {"ticks": ticks}})
        job_id = response.json()["id"]
    delays: list[float] = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws/jobs/{job_id}?api_key={key}") as socket_:
        async for raw in socket_:
            arrived = time.time()
            event = json.loads(raw)
            message = event.get("message") or ""
            # Only live events: the backlog sent on connect says nothing about latency.
            if event["type"] == "stage.progress" and message.startswith("t=") and event["seq"] > 4:
                delays.append(arrived - float(message[2:]))
    return delays


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def submit_rounds(port: int, key: str, server: subprocess.Popen[bytes], submissions: int) -> None:
    await submit_round(port, key, 4, 100)  # warm-up
    header = (
        f"{'concurrent clients':<20}{'submits/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'server CPU ms/submit':>22}"
    )
    print(header)
    for clients in (1, 16, 128):
        cpu = cpu_seconds(server.pid)
        latencies, rate = await submit_round(port, key, clients, submissions)
        await asyncio.sleep(1)  # the server finishes what the submissions started
        per_submit = 1000 * (cpu_seconds(server.pid) - cpu) / len(latencies)
        print(
            f"{clients:<20}{rate:>11,.0f}{1000 * statistics.median(latencies):>9.2f}"
            f"{1000 * percentile(latencies, 0.99):>9.2f}{1000 * max(latencies):>9.2f}{per_submit:>22.2f}"
        )


async def main(submissions: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        data_dir = Path(directory) / "api-only"
        port = free_port()
        server = start_server(data_dir, port, Path(directory) / "api-only.log", workers=False)
        try:
            key = (data_dir / "admin.key").read_text().strip()
            print("vigia serve --no-workers (API only, SQLite); clients in this process")
            await submit_rounds(port, key, server, submissions)
        finally:
            server.terminate()
            server.wait(30)

        data_dir = Path(directory) / "embedded"
        port = free_port()
        log = Path(directory) / "embedded.log"
        server = start_server(data_dir, port, log)
        try:
            key = (data_dir / "admin.key").read_text().strip()
            base = f"http://127.0.0.1:{port}"
            print("\nvigia serve with embedded workers running each submitted no-op job")
            await submit_rounds(port, key, server, submissions)
            await asyncio.sleep(2)  # let the workers finish the submitted jobs
            delays = await progress_latency(base, port, key, 300)
            print(
                f"\nprogress call -> WebSocket client ({len(delays)} events, one every 20 ms): "
                f"p50 {1000 * statistics.median(delays):.2f} ms, p99 {1000 * percentile(delays, 0.99):.2f} ms, "
                f"max {1000 * max(delays):.2f} ms"
            )
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=1000)
    asyncio.run(main(parser.parse_args().submissions))
