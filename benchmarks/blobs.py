"""Blob storage throughput: the local directory against an S3-compatible server.

    python benchmarks/blobs.py [--files 200] [--size-kb 1024] [--rounds 3]

Starts moto's standalone S3 server on a free local port (a real HTTP server, so the figures
include the S3 protocol's cost, not a network's), then for each store: ``--files`` puts of
distinct ``--size-kb`` files (`put_bytes`), as many reads, and a 50 MB upload streamed in
64 KB chunks (`put`); medians of ``--rounds`` rounds, the stores alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import boto3

from vigia.blobs import BlobStore, LocalBlobStore
from vigia.blobs_s3 import S3BlobStore


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return process, endpoint
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("moto_server did not start") from None
            time.sleep(0.1)


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def one_round(store: BlobStore, files: list[bytes], big: bytes) -> dict[str, float]:
    started = time.perf_counter()
    refs = [store.put_bytes(data, "application/pdf") for data in files]
    put = time.perf_counter() - started
    started = time.perf_counter()
    for ref in refs:
        store.read(ref)
    read = time.perf_counter() - started
    started = time.perf_counter()
    asyncio.run(store.put(chunks(big), accepts=["application/pdf"], max_bytes=len(big), filename=None))
    stream = time.perf_counter() - started
    for ref in refs:
        store.delete(ref.sha256)
    megabytes = sum(len(data) for data in files) / 2**20
    return {
        "put MB/s": megabytes / put,
        "get MB/s": megabytes / read,
        "puts/s": len(files) / put,
        "50 MB stream s": stream,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-kb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()

    process, endpoint = start_moto()
    os.environ.update(
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        boto3.client("s3").create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory() as directory:
            stores: dict[str, Callable[[], BlobStore]] = {
                "local": lambda: LocalBlobStore(Path(directory) / "blobs"),
                "S3 (moto, local)": lambda: S3BlobStore("s3://bench/jobs", Path(directory) / "cache"),
            }
            results: dict[str, list[dict[str, float]]] = {name: [] for name in stores}
            for round_number in range(arguments.rounds):
                files = [b"%PDF-1.7\n" + os.urandom(arguments.size_kb * 1024) for _ in range(arguments.files)]
                big = b"%PDF-1.7\n" + os.urandom(50 * 2**20)
                for name, make in stores.items():
                    results[name].append(one_round(make(), files, big))
                print(
                    f"round {round_number + 1}: "
                    + "; ".join(
                        f"{name} " + ", ".join(f"{key} {value:.2f}" for key, value in figures[-1].items())
                        for name, figures in results.items()
                    )
                )
            print(f"\n{arguments.files} files of {arguments.size_kb} KB, medians of {arguments.rounds} rounds:")
            for name, rounds in results.items():
                medians = {key: statistics.median(item[key] for item in rounds) for key in rounds[0]}
                print(f"  {name:18} " + ", ".join(f"{key} {value:.1f}" for key, value in medians.items()))
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
