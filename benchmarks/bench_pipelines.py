"""Pipelines the benchmarks load into a `vigia serve` process (VIGIA_PIPELINES)."""

from __future__ import annotations

import asyncio
import time

from vigia import Pipeline, StageContext

noop = Pipeline("bench_noop")


@noop.stage()
async def only(ctx: StageContext) -> None:
    return None


ticker = Pipeline("bench_ticker")


@ticker.stage()
async def tick(ctx: StageContext) -> None:
    """Report progress every 20 ms with the wall-clock time of the call in the message."""
    ticks = int((ctx.input or {}).get("ticks", 200))
    for number in range(1, ticks + 1):
        ctx.progress(number / ticks, f"t={time.time():.6f}")
        await asyncio.sleep(0.02)


PIPELINES = [noop, ticker]
