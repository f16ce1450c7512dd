"""The database every store shares: one engine, its SQLite settings, driver errors turned
into Vigía's once, read and write transactions, SQLite's write-ahead-log upkeep, and the
schema's revision.

The job store, the oversight store, the key store (and the stores of the workloads) each
take a `Database` rather than reaching into each other for an engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from vigia import constants
from vigia.exceptions import (
    DuplicateIdempotencyKey,
    InvalidValue,
    SchemaOutOfDate,
    StoreError,
    StoreUnavailable,
    TransientConflict,
    VigiaError,
)
from vigia.store import migrations

log = logging.getLogger("vigia.store")

T = TypeVar("T")

#: PostgreSQL error codes worth running a transaction again for.
_TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57")  # connection exceptions, operator intervention
#: How much of a SQLite file its connections read through memory mapping.
SQLITE_MMAP_BYTES = 1 << 30


def normalise_url(url: str) -> str:
    """Pick the drivers Vigía ships with when a URL names only the database."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _create_engine(url: str, *, sqlite_autocheckpoint: Callable[[], bool]) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )
        _configure_sqlite(engine, sqlite_autocheckpoint)
        return engine
    # No pre-ping (a round trip before every transaction): a connection that died with a
    # server restart fails its transaction once, SQLAlchemy then discards the pool's old
    # connections, and `Database.transact` runs the work again on a fresh one.
    return sa.create_engine(url, pool_size=10, max_overflow=10)


def _configure_sqlite(engine: Engine, autocheckpoint: Callable[[], bool]) -> None:
    @sa_event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that writers can BEGIN
        # IMMEDIATE: they queue for the write lock at the start instead of failing midway.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL never corrupts and survives a killed process; only an OS
        # crash or power loss may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Reads from the file mapped in memory (writes still go through write()): a page
        # read is a memory access, not a system call, which halves a keyword search over
        # many chunks. The operating system's page cache holds the pages, for every
        # connection at once; the size only bounds the address space.
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        # A commit that crosses the WAL's size threshold copies the WAL back into the
        # database file itself, adding milliseconds to that one commit. While a background
        # checkpointer runs (see `Database.keep_wal_short`) no commit does that.
        cursor.execute(f"PRAGMA wal_autocheckpoint={1000 if autocheckpoint() else 0}")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        mode = "BEGIN IMMEDIATE" if connection.get_execution_options().get("vigia_write") else "BEGIN"
        connection.exec_driver_sql(mode)


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver exceptions into Vigía's: unavailable, transient, or a plain store error."""
    try:
        yield
    except sa_exc.DBAPIError as error:
        raise _translate(error) from error


def _translate(error: sa_exc.DBAPIError) -> StoreError:
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    if sqlstate in _TRANSIENT_SQLSTATES:
        return TransientConflict(_one_line(error.orig))
    if error.connection_invalidated or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
        return StoreUnavailable(f"the job store cannot be reached: {_one_line(error.orig)}")
    if isinstance(error, sa_exc.OperationalError):
        text = _one_line(error.orig).lower()
        if "database is locked" in text:
            return TransientConflict(_one_line(error.orig))
        if "no such table" in text or ("relation" in text and "does not exist" in text):
            return SchemaOutOfDate()
        return StoreUnavailable(f"the job store cannot be reached: {_one_line(error.orig)}")
    if isinstance(error, sa_exc.ProgrammingError) and "does not exist" in _one_line(error.orig):
        return SchemaOutOfDate()
    if isinstance(error, sa_exc.DataError):
        # A value the database cannot hold (PostgreSQL refuses NUL in text): the caller's input.
        return InvalidValue(f"a value cannot be stored or searched for: {_one_line(error.orig)}")
    return StoreError(f"the job store failed: {_one_line(error.orig)}")


def _one_line(error: BaseException | None) -> str:
    """A driver's message on one line (psycopg's span several, with hints)."""
    return " ".join(str(error).split())


class Database:
    """One SQLite file or PostgreSQL database, and how Vigía reads and writes it."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = normalise_url(url)
        self._background_checkpoints = False
        self.engine = engine or _create_engine(self.url, sqlite_autocheckpoint=lambda: not self._background_checkpoints)
        self._sqlite = self.engine.dialect.name == "sqlite"
        #: Whether transactions lock the rows they load (PostgreSQL); SQLite has one
        #: writer at a time instead, holding the whole database.
        self.row_locks = not self._sqlite
        self._read_engine = self.engine if self._sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # SQLite has one writer at a time; queueing our own threads on a lock is far
        # quicker than SQLite's sleeping busy handler (other processes still use that).
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._sqlite else contextlib.nullcontext()
        )
        #: SQLite: the connection every write uses, in turn (see `writing`).
        self._writer: Connection | None = None
        #: The key the audit chain is signed with (`vigia.audit.chain_key`): held by this
        #: process, never written to the database. None: entries are hashed unkeyed.
        self.audit_chain_key: bytes | None = None

    @property
    def is_local_file(self) -> bool:
        """A SQLite file on this machine (the embedded default), not a shared server."""
        return self._sqlite and ":memory:" not in self.url

    # --- transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction: our own threads queue on the lock, SQLite's BEGIN IMMEDIATE
        makes other processes queue, and driver errors come out as ours."""
        if not self._sqlite:
            with (
                translate_errors(),
                self.engine.connect().execution_options(vigia_write=True) as connection,
                connection.begin(),
            ):
                yield connection
            return
        with self._write_lock, translate_errors():
            # SQLite writes one at a time, under the lock: they share one connection rather
            # than each taking one from the pool and giving it back (a tenth of a lone
            # submission's cost).
            if self._writer is None or self._writer.closed or self._writer.invalidated:
                self._writer = self.engine.connect().execution_options(vigia_write=True)
            with self._writer.begin():
                yield self._writer

    def transact(self, work: Callable[[Connection], T], attempts: int = 5) -> T:
        """Run ``work`` in a write transaction, again if it collided with another one (a
        conflict, or a unique key taken meanwhile)."""
        for attempt in range(1, attempts + 1):
            try:
                with self.writing() as connection:
                    return work(connection)
            except (TransientConflict, DuplicateIdempotencyKey):
                if attempt == attempts:
                    raise
                log.info("store.transaction_retried", extra={"attempt": attempt})
            except StoreUnavailable:
                # Once: the connection may have died with a server restart (the pool now
                # replaces its old connections); if the server is down, this fails again.
                if attempt > 1:
                    raise
                log.info("store.reconnecting")
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads. On PostgreSQL it runs each statement on its own (no BEGIN
        and ROLLBACK round trips); a read that needs one snapshot makes a single statement."""
        with translate_errors(), self._read_engine.connect() as connection:
            yield connection

    # --- SQLite's write-ahead log -------------------------------------------------------

    async def keep_wal_short(self) -> None:
        """Until cancelled, copy SQLite's write-ahead log back into the database from a thread
        of its own, often, so that no commit (a submission, a settlement) pays for it. Returns
        at once on PostgreSQL, which needs nothing of the kind."""
        if not self._sqlite:
            return
        self._set_background_checkpoints(True)
        try:
            while True:
                try:
                    await asyncio.to_thread(self.checkpoint)
                except VigiaError as error:
                    log.warning("checkpoint.failed", extra={"error": str(error)})
                await asyncio.sleep(constants.SQLITE_CHECKPOINT_INTERVAL)
        finally:
            self._set_background_checkpoints(False)

    def _set_background_checkpoints(self, enabled: bool) -> None:
        if enabled != self._background_checkpoints:
            self._background_checkpoints = enabled
            with self._write_lock:
                self._close_writer()
                self.engine.dispose()  # pooled connections pick up the new setting

    def _close_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                self._writer.close()
            self._writer = None

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking readers or writers."""
        if self._sqlite:
            with translate_errors(), self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    # --- the schema ---------------------------------------------------------------------

    def check(self) -> None:
        """Raise `StoreUnavailable` or `SchemaOutOfDate` unless the database is usable."""
        with self.reading() as connection:
            current = migrations.current_revision(connection)
        if current != migrations.head_revision():
            raise SchemaOutOfDate(
                f"the job store's schema is at {current or 'nothing'}, this Vigía needs "
                f"{migrations.head_revision()}: run `vigia db upgrade`"
            )

    def upgrade(self) -> None:
        with translate_errors(), self.engine.begin() as connection:
            migrations.upgrade(connection)

    def close(self) -> None:
        with self._write_lock:
            self._close_writer()
        self.engine.dispose()
