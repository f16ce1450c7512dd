"""Service fixtures for the whole suite: a fresh database (or Redis DB) for every test.

Services that cannot be reached make their tests skip on a developer's machine and fail in
CI, where ``VIGIA_REQUIRE_SERVICES=1`` says they must be there (the idea of dramatiq's
``check_redis``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy.engine import make_url

from vigia.store.database import Database
from vigia.store.jobs import SQLJobStore

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379"
#: The Redis database the tests own: emptied before and after each test that uses it.
TEST_REDIS_DB = 15
CONNECT_TIMEOUT = 3


def services_required() -> bool:
    return os.environ.get("VIGIA_REQUIRE_SERVICES", "").strip() == "1"


def service_missing(reason: str) -> NoReturn:
    """Skip the test, or fail it when the services are required to be there."""
    if services_required():
        pytest.fail(f"{reason} (VIGIA_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


# --- SQL job stores -------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/vigia.db"


def _admin_connection(admin_url: str) -> Any:
    import psycopg  # noqa: PLC0415 -- the driver is optional: the test skips (or fails in CI) without it

    try:
        return psycopg.connect(admin_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.OperationalError as error:
        service_missing(f"PostgreSQL is not reachable at {_safe(admin_url)}: {_one_line(error)}")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test only, dropped afterwards."""
    from psycopg import sql  # noqa: PLC0415 -- the driver is optional: the test skips (or fails in CI) without it

    admin_url = os.environ.get("VIGIA_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    name = f"vigia_test_{secrets.token_hex(6)}"
    with _admin_connection(admin_url) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin_connection(admin_url) as admin:
            # FORCE ends connections a failed test may have left open (PostgreSQL 13+).
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once per backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[SQLJobStore]:
    """A job store with its schema migrated to the latest revision."""
    job_store = SQLJobStore(Database(store_url))
    try:
        job_store.database.upgrade()
        yield job_store
    finally:
        job_store.database.close()


# --- Redis ------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The URL of Redis database 15, empty when the test starts and emptied when it ends."""
    if importlib.util.find_spec("redis") is None:
        service_missing("redis package not installed")
    import redis  # noqa: PLC0415 -- the driver is optional: the test skips (or fails in CI) without it

    url = make_url(os.environ.get("VIGIA_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL))
    url = url.set(database=str(TEST_REDIS_DB)).render_as_string(hide_password=False)
    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT)
    try:
        try:
            client.flushdb()
        except redis.ConnectionError as error:
            service_missing(f"Redis is not reachable at {_safe(url)}: {_one_line(error)}")
        yield url
        client.flushdb()
    finally:
        client.close()


# --- an S3-compatible server ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class S3Server:
    """moto's standalone server, speaking the S3 protocol on a local port."""

    endpoint: str

    def environment(self) -> dict[str, str]:
        """What boto3 reads to reach it (the variables a deployment would set)."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": "vigia-test",
            "AWS_SECRET_ACCESS_KEY": "vigia-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server_binary = Path(sys.executable).with_name("moto_server")
    if not server_binary.exists():
        service_missing("moto's S3 server is not installed (pip install 'moto[server]')")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(server_binary), "-H", "127.0.0.1", "-p", str(port)], stdout=output, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                service_missing(f"moto's S3 server did not start: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.1)
    try:
        yield S3Server(endpoint)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def s3_blob_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bucket of its own for the test, and boto3 pointed at the server; its VIGIA_BLOB_URL."""
    import boto3  # noqa: PLC0415 -- the S3 extra

    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    bucket = f"vigia-test-{secrets.token_hex(6)}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/jobs"
