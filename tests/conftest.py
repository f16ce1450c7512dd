"""Service fixtures for the whole suite: a fresh database (or Redis DB) for every test.

Services that cannot be reached make their tests skip on a developer's machine and fail in
CI, where ``VIGIA_REQUIRE_SERVICES=1`` says they must be there (the idea of dramatiq's
``check_redis``).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
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
