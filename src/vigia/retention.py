"""Job retention: finished jobs are purged, with their events, stage outputs, reviews and
the files nothing else names, once they are older than `VIGIA_JOB_RETENTION_DAYS` (or their
pipeline's own `VIGIA_PIPELINE_RETENTION_DAYS`). Dead jobs stay until retried or purged from
the dead-letter queue; a job with a review still waiting stays; the audit log has its own
retention. A batch at a time, each batch one short transaction and one audit entry, so that
purging a million jobs never holds the store for more than a moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vigia.blobs import BlobStore
from vigia.coordinator import Coordinator
from vigia.expiry import Expiry

#: Jobs purged per transaction.
BATCH = 500


@dataclass(slots=True)
class Purged:
    jobs: int = 0
    files: int = 0
    batches: int = 0
    seconds: float = 0.0


def purge(
    coordinator: Coordinator,
    blobs: BlobStore,
    expiry: Expiry,
    *,
    batch: int = BATCH,
    actor: str = "system",
    progress: Callable[[Purged], None] = lambda purged: None,
    pause: float = 0.0,
) -> Purged:
    """Purge every expired job, ``batch`` at a time (``pause`` seconds between batches
    leaves the store to others), then the files none of the rest names."""
    started = time.monotonic()
    purged = Purged()
    while True:
        job_ids, orphaned = coordinator.purge_expired(expiry, batch, actor)
        purged.jobs += len(job_ids)
        purged.batches += 1 if job_ids else 0
        purged.files += _delete_files(coordinator, blobs, orphaned)
        purged.seconds = time.monotonic() - started
        progress(purged)
        if len(job_ids) < batch:
            return purged
        if pause:
            time.sleep(pause)


def _delete_files(coordinator: Coordinator, blobs: BlobStore, orphaned: set[str]) -> int:
    """Delete the files no job or document names; and what replaced each (a case's
    stripped photo), unless something names that too."""
    deleted = 0
    for digest in sorted(orphaned):
        replacement = blobs.replacement_of(digest)
        deleted += blobs.delete(digest)
        if replacement is not None and coordinator.unreferenced_files({replacement}):
            deleted += blobs.delete(replacement)
    return deleted
