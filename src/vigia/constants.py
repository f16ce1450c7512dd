"""Defaults and names in one place, so that a reader finds every tunable here."""

from __future__ import annotations

#: Queue a stage runs on unless it names another.
DEFAULT_QUEUE = "default"
#: Hard limit on one attempt of a stage, in seconds.
DEFAULT_STAGE_TIMEOUT = 300.0
#: Share of overall progress a stage has unless it declares a weight.
DEFAULT_STAGE_WEIGHT = 1.0

#: Backoff of the default retry policy: first delay, growth factor, cap and jitter share.
DEFAULT_RETRY_BASE_DELAY = 1.0
DEFAULT_RETRY_FACTOR = 2.0
DEFAULT_RETRY_MAX_DELAY = 300.0
DEFAULT_RETRY_JITTER = 0.25

#: Where the embedded default keeps its SQLite database and blobs.
DEFAULT_DATA_DIR = ".vigia"
DEFAULT_DATABASE_FILE = "vigia.db"

#: Embedded executor: concurrent stage runs per queue, and how long a lease lasts before
#: the reaper may take the stage run back. A worker renews its leases every third of it.
DEFAULT_CONCURRENCY = 8
DEFAULT_LEASE_SECONDS = 30.0
#: How often an idle embedded executor looks for work submitted by other processes and
#: for delayed retries that came due.
DEFAULT_POLL_INTERVAL = 0.5
#: How long a stopping executor waits for running stages before leaving them to the reaper.
DEFAULT_SHUTDOWN_GRACE = 10.0

#: The audit log's actor for what the engine decides itself.
SYSTEM_ACTOR = "system"
#: The tenant of jobs submitted without one (the Python API, the local CLI).
DEFAULT_TENANT = "default"

#: Entry-point group where installed packages register their pipelines.
PIPELINE_ENTRY_POINT_GROUP = "vigia.pipelines"

#: Prefix of every environment variable Vigía reads.
ENV_PREFIX = "VIGIA_"
#: How often a running app copies SQLite's write-ahead log back into the database: often, so that
#: each copy is short (a long one delays the commits that wait on the disk meanwhile).
SQLITE_CHECKPOINT_INTERVAL = 0.2
#: Largest file a job may carry (VIGIA_MAX_UPLOAD_BYTES).
DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: `vigia serve` listens here by default.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Server-Sent Events: a comment line this often keeps proxies from closing idle streams.
SSE_HEARTBEAT_SECONDS = 15.0
#: Attempts per notification before it counts as undelivered (VIGIA_NOTIFY_ATTEMPTS).
DEFAULT_NOTIFY_ATTEMPTS = 5
#: Audit entries are kept seven years (medical records practice), apart from jobs.
DEFAULT_AUDIT_RETENTION_DAYS = 7 * 365.25
#: Seconds between two evaluations of the alert rules by a serving process.
DEFAULT_MONITOR_INTERVAL = 30.0
#: The role alerts about the service itself go to.
DEFAULT_ALERT_ROLE = "operations"
#: The built-in pipeline that delivers notifications; its jobs stay out of job listings
#: unless asked for by name.
NOTIFY_PIPELINE = "vigia.notify"
NOTIFICATIONS_QUEUE = "notifications"
#: The document workload: most pages a document may have (VIGIA_DOC_MAX_PAGES), the time
#: limit of OCR on one page in seconds, and the size of a search chunk in characters.
DEFAULT_DOC_MAX_PAGES = 2000
DEFAULT_DOC_OCR_TIMEOUT = 120.0
DEFAULT_DOC_CHUNK_SIZE = 1000
#: The longest clinical note the coding workload accepts, in characters (a long discharge
#: summary is 20,000–40,000).
DEFAULT_CODING_MAX_CHARS = 200_000
