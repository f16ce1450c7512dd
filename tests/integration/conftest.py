"""Fixtures shared by the API test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Harness, harness


@pytest.fixture
def api(store_url: str, tmp_path: Path) -> Iterator[Harness]:
    """The API over a store of each kind (SQLite and PostgreSQL), with workers running."""
    with harness(store_url, tmp_path) as running:
        yield running


@pytest.fixture
def sqlite_api(sqlite_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(sqlite_url, tmp_path) as running:
        yield running
