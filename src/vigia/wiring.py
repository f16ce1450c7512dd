"""The composition root: builds Vigía's parts from `Settings` and a `Registry`.

Every process builds the same parts the same way here, and only here: the app (the Python
API, and through it `vigia serve` and the local commands) and the Celery worker's pool and
housekeeping processes. Importing this module does nothing; each function builds what it
names when called.

    settings ─┬─ registry_for ──────────────── Registry (+ the built-in vigia.notify)
              ├─ open_database ─────────────── Database ─┬─ SQLJobStore
              │                                          ├─ OversightStore
              │                                          └─ ApiKeyStore
              ├─ safeguards_for ───────────── Safeguards ─┐
              │                                           └─ coordinator_for ─ Coordinator
              ├─ event_bus_for ────────────── LocalEventBus | RedisEventBus
              └─ blobs_for ────────────────── LocalBlobStore | S3BlobStore
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vigia import constants
from vigia.anchors import AnchorFile
from vigia.audit import Pseudonymiser, chain_key, load_or_create_key
from vigia.blobs import BlobStore, LocalBlobStore
from vigia.config import Settings
from vigia.coordinator import Coordinator
from vigia.escalation import Policies, Safeguards
from vigia.events import EventBus, LocalEventBus, RedisEventBus
from vigia.exceptions import ConfigurationError
from vigia.executors.base import Executor
from vigia.executors.embedded import EmbeddedExecutor
from vigia.notify.pipeline import NOTIFY_PIPELINE, notification_pipeline
from vigia.notify.routing import Routing
from vigia.pipeline import Pipeline
from vigia.registry import Registry
from vigia.store.api_keys import ApiKeyStore
from vigia.store.database import Database
from vigia.store.documents import DocumentStore
from vigia.store.history import HistoryStore
from vigia.store.jobs import SQLJobStore
from vigia.store.oversight import OversightStore
from vigia.watch import Watch


def registry_for(settings: Settings, pipelines: Iterable[Pipeline] = ()) -> Registry:
    """The pipelines named in settings and installed, ``pipelines`` given in code, and the
    built-in notification pipeline over the configured channels."""
    registry = Registry.discover(settings.pipelines)
    for pipeline in pipelines:
        registry.register(pipeline)
    if NOTIFY_PIPELINE not in registry:
        registry.register(notification_pipeline(routing_for(settings), attempts=settings.notify_attempts))
    return registry


def routing_for(settings: Settings) -> Routing:
    return Routing.from_config(settings.notify_channels, settings.notify_routes)


def served_queues(settings: Settings, registry: Registry) -> tuple[str, ...]:
    """The queues this process works on: those it was told, else every registered one."""
    return settings.queues or tuple(registry.queues) or (constants.DEFAULT_QUEUE,)


def open_database(settings: Settings, *, upgrade: bool | None = None) -> Database:
    """The database at ``settings.database_url`` (a SQLite file's directory is made).

    ``upgrade`` brings its schema up to date; by default only for a local SQLite file (a
    shared database is upgraded on purpose, with `vigia db upgrade`)."""
    url = settings.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    database = Database(url)
    # Every process opening the installation's database signs the audit chain with the
    # same key (see vigia.audit): a worker, a command, the server.
    database.audit_chain_key = chain_key(audit_key_of(settings))
    if upgrade if upgrade is not None else database.is_local_file:
        database.upgrade()
    return database


def audit_key_of(settings: Settings) -> bytes:
    """The pseudonymisation key: VIGIA_AUDIT_KEY, else the one kept in the data directory."""
    if not settings.audit_key:
        return load_or_create_key(settings.audit_key_file)
    try:
        return bytes.fromhex(settings.audit_key)
    except ValueError:
        raise ConfigurationError("VIGIA_AUDIT_KEY must be hexadecimal (e.g. 64 hex digits)") from None


def safeguards_for(settings: Settings, registry: Registry) -> Safeguards:
    """Severity policies, notification routing and pseudonymisation from ``settings``."""
    return Safeguards(
        policies=Policies.from_json(settings.severity_policies),
        channels_for=routing_for(settings).names_for,
        notification_pipeline=registry.get(NOTIFY_PIPELINE) if NOTIFY_PIPELINE in registry else None,
        pseudonymise=Pseudonymiser(audit_key_of(settings)),
    )


def coordinator_for(
    settings: Settings,
    registry: Registry,
    database: Database,
    *,
    store: SQLJobStore | None = None,
    safeguards: Safeguards | None = None,
) -> Coordinator:
    """The coordinator of any process, API or worker: the same safeguards and tenant cap
    everywhere (a worker's housekeeping process dispatches too)."""
    return Coordinator(
        store or SQLJobStore(database),
        registry,
        safeguards=safeguards or safeguards_for(settings, registry),
        tenant_cap=settings.tenant_max_running,
    )


def event_bus_for(settings: Settings) -> EventBus:
    """Redis pub/sub in distributed mode (every API process hears every worker), else in-process."""
    return RedisEventBus(settings.broker_url) if settings.broker_url else LocalEventBus()


def blobs_for(settings: Settings) -> BlobStore:
    if settings.blob_url:
        from vigia.blobs_s3 import S3BlobStore  # noqa: PLC0415 -- boto3 only where S3 is configured

        return S3BlobStore(settings.blob_url, settings.blob_cache_dir)
    return LocalBlobStore(settings.blob_dir)


@dataclass(frozen=True, slots=True)
class Parts:
    """Everything an installation's process works with, built once."""

    settings: Settings
    registry: Registry
    database: Database
    store: SQLJobStore
    coordinator: Coordinator
    oversight: OversightStore
    keys: ApiKeyStore
    documents: DocumentStore
    history: HistoryStore
    bus: EventBus
    blobs: BlobStore


def build(settings: Settings, pipelines: Iterable[Pipeline] = (), *, upgrade: bool | None = None) -> Parts:
    """Every part, from ``settings`` and the pipelines it names, is installed or is given."""
    registry = registry_for(settings, pipelines)
    safeguards = safeguards_for(settings, registry)  # a bad setting fails here, before anything opens
    database = open_database(settings, upgrade=upgrade)
    store = SQLJobStore(database)
    return Parts(
        settings=settings,
        registry=registry,
        database=database,
        store=store,
        coordinator=coordinator_for(settings, registry, database, store=store, safeguards=safeguards),
        oversight=OversightStore(database),
        keys=ApiKeyStore(database),
        documents=DocumentStore(database),
        history=HistoryStore(database),
        bus=event_bus_for(settings),
        blobs=blobs_for(settings),
    )


def broker_problem(settings: Settings) -> str | None:
    """Why the broker does not answer (None: it does, or there is none: embedded mode)."""
    if not settings.broker_url:
        return None
    from vigia.executors.celery import ping  # noqa: PLC0415 -- Celery only in distributed mode

    return ping(settings.broker_url)


def executor_for(parts: Parts, *, writes: ThreadPoolExecutor) -> Executor:
    """Celery workers in distributed mode (this process dispatches to them), else embedded
    workers in this process on every queue it serves."""
    settings = parts.settings
    if settings.distributed:
        from vigia.executors.celery import CeleryExecutor, make_celery  # noqa: PLC0415 -- Celery only in distributed mode

        return CeleryExecutor(parts.coordinator, parts.bus, make_celery(settings, parts.registry), settings)
    return EmbeddedExecutor(
        parts.coordinator,
        parts.bus,
        queues={queue: settings.concurrency_for(queue) for queue in served_queues(settings, parts.registry)},
        lease_seconds=settings.lease_seconds,
        poll_interval=settings.poll_interval,
        shutdown_grace=settings.shutdown_grace,
        writes=writes,
        files=parts.blobs,
        settings=settings,
        database=parts.database,
    )


def watch_for(parts: Parts, executor: Callable[[], Executor | None]) -> Watch:
    """Monitoring over the installation: in distributed mode the workers are Celery's, as
    they answer; embedded, the workers of this process's ``executor`` only (embedded
    workers in other processes sharing the store are not seen: see the README)."""
    settings = parts.settings
    if settings.distributed:
        from vigia.executors.celery import consumers_of, make_celery  # noqa: PLC0415 -- Celery only in distributed mode

        consumers = consumers_of(make_celery(settings, parts.registry))
    else:

        def consumers() -> dict[str, list[str]]:
            running = executor()
            return running.consumers() if isinstance(running, EmbeddedExecutor) else {}

    return Watch(
        settings,
        parts.registry,
        parts.coordinator,
        parts.oversight,
        consumers,
        history=parts.history,
        anchors=AnchorFile(settings.audit_anchors, parts.database.audit_chain_key)
        if parts.database.audit_chain_key is not None
        else None,
        sees_workers=lambda: settings.distributed or executor() is not None,
        blobs=parts.blobs,
    )
