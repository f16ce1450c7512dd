"""Pipelines the dashboard's browser tests run in a real `vigia serve` (loaded with
VIGIA_PIPELINES=tests.dashboard_pipelines:ALL): the server is another process, so what a
test switches it does through a file, not a variable."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vigia import Pipeline, RetryPolicy, StageContext

# Dies while the file its input names exists; once the test removes it, a retry finishes.
switched = Pipeline("t_dash_switch", description="Fails while its switch file exists.")


@switched.stage(after=())
def prepare(ctx: StageContext) -> dict[str, Any]:
    return {"prepared": True}


@switched.stage(retry=RetryPolicy(max_attempts=1))
def analyse(ctx: StageContext) -> dict[str, Any]:
    if Path(str((ctx.input or {}).get("switch", ""))).exists():
        # Not `Permanent` (the job would fail, not die): its tries are used up, so it dies.
        raise ConnectionError("the analysis service refused the request")
    return {"analysed": True}


# Progress in small steps, so that a page of jobs has bars to move.
ticks = Pipeline("t_dash_ticks", description="Counts to its input's steps.")


@ticks.stage(after=())
def count(ctx: StageContext) -> dict[str, Any]:
    steps = int((ctx.input or {}).get("steps", 5))
    pace = float((ctx.input or {}).get("pace", 0.05))
    for step in range(1, steps + 1):
        time.sleep(pace)
        ctx.progress(step / steps, f"step {step} of {steps}")
    return {"steps": steps}


ALL = [switched, ticks]
