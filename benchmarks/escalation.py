"""How long from a CRITICAL stage's failure to the people being told.

    python benchmarks/escalation.py [--jobs 40]

Embedded mode (SQLite), notifications to a local HTTP receiver speaking the signed-webhook
protocol. Per job: a stage that fails at once (CRITICAL: escalated at the first failure);
measured from the moment the failure is stored (the `job.escalated` event's time) to the
moment the receiver has the notification, and from submission to receipt. The reference
reports ask for under 30 s for emergencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.receivers import webhook_receiver  # noqa: E402

from vigia import Pipeline, RetryPolicy, Settings, Severity, StageContext, Vigia  # noqa: E402

SECRET = "benchmark-secret"
urgent = Pipeline("bench_urgent")


@urgent.stage(severity=Severity.CRITICAL, retry=RetryPolicy(max_attempts=2, base_delay=30))
def vital(ctx: StageContext) -> None:
    raise ConnectionError("vital-sign service unreachable")


async def run(jobs: int) -> None:
    with webhook_receiver(SECRET) as receiver, tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            data_dir=Path(directory),
            poll_interval=0.05,
            notify_channels=json.dumps({"pager": {"type": "webhook", "url": receiver.url, "secret": SECRET}}),
            notify_routes=json.dumps({"*": ["pager"]}),
        )
        app = Vigia.from_settings(settings, pipelines=[urgent])
        async with app:
            submitted: dict[str, float] = {}
            for _ in range(jobs):
                job = await app.submit(urgent.name)
                submitted[job.id] = time.time()
                await asyncio.sleep(0.05)
            deadline = time.monotonic() + 120
            while len(receiver.accepted()) < jobs and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            arrivals = {delivery.json["job_id"]: delivery.arrived for delivery in receiver.accepted()}
            escalated = {}
            for job_id in submitted:
                events = app.store.events_after(job_id)
                escalated[job_id] = next(event.created_at for event in events if event.type.value == "job.escalated")
        after_failure = sorted(arrivals[job_id] - escalated[job_id] for job_id in arrivals)
        after_submit = sorted(arrivals[job_id] - submitted[job_id] for job_id in arrivals)

    def summary(values: list[float]) -> str:
        p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
        return f"p50 {statistics.median(values) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms"

    print(f"escalation of a CRITICAL failure, embedded mode, {len(arrivals)}/{jobs} notifications received")
    print(f"  failure stored -> webhook received: {summary(after_failure)}")
    print(f"  job submitted  -> webhook received: {summary(after_submit)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=40)
    asyncio.run(run(parser.parse_args().jobs))
