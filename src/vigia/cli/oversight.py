"""`vigia reviews`, `vigia dlq`, `vigia audit` and `vigia monitor`: the commands of the
people who watch over the jobs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from vigia import alert_rules, wiring
from vigia.anchors import against_store
from vigia.api.schemas import DeadPageModel, DeadStatisticsModel, ReviewPageModel, dead_model, review_model
from vigia.app import Vigia
from vigia.audit import export_lines, verify
from vigia.cli import render
from vigia.cli.support import (
    ApiKeyOption,
    AsJson,
    DataDir,
    Limit,
    Url,
    client_of,
    console,
    either,
    epoch,
    errors,
    fail,
    iso_query,
    local_actor,
    locally,
    settings_of,
)
from vigia.client import Client
from vigia.escalation import ReviewStatus
from vigia.exceptions import VigiaError
from vigia.store.base import DeadFilter, ReviewFilter
from vigia.watch import WINDOW_SECONDS, thresholds_of

reviews_app = typer.Typer(help="Human-review items: list, acknowledge, resolve.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter queue: list, stats, retry, purge.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: verify its hash chain, export it, prune it.", no_args_is_help=True)

#: `vigia monitor`'s exit statuses: usable as a probe.
EXIT_BY_HEALTH = {"ok": 0, "warning": 1, "critical": 2}
EXIT_UNREACHABLE = 3

Pipeline = Annotated[str | None, typer.Option(help="Only this pipeline.")]
StageName = Annotated[str | None, typer.Option("--stage", help="Only jobs whose STAGE failed.")]
ErrorType = Annotated[str | None, typer.Option(help="Only this error type.")]
Since = Annotated[
    dt.datetime | None, typer.Option(help="Only jobs that died at or after this time (UTC unless given).")
]
Until = Annotated[dt.datetime | None, typer.Option(help="Only jobs that died before this time.")]


def _dead_filter(
    pipeline: str | None,
    stage: str | None,
    error_type: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> DeadFilter:
    return DeadFilter(
        pipeline=pipeline, stage=stage, error_type=error_type, died_after=epoch(since), died_before=epoch(until)
    )


def _remote_filters(where: DeadFilter) -> dict[str, Any]:
    return {
        "pipeline": where.pipeline,
        "stage": where.stage,
        "error_type": where.error_type,
        "died_after": iso_query(where.died_after),
        "died_before": iso_query(where.died_before),
    }


# --- reviews --------------------------------------------------------------------------------


@reviews_app.command("list")
def reviews_list(
    status: Annotated[list[ReviewStatus] | None, typer.Option(help="Only these statuses (repeatable).")] = None,
    role: Annotated[str | None, typer.Option(help="Only items for this role.")] = None,
    limit: Limit = 50,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """List human-review items, newest first.

    Open and acknowledged ones unless --status says otherwise."""
    statuses = tuple(status or (ReviewStatus.OPEN, ReviewStatus.ACKNOWLEDGED))

    async def listed(vigia: Vigia) -> dict[str, Any]:
        found = await vigia.list_reviews(ReviewFilter(statuses=statuses, role=role), limit=limit)
        return ReviewPageModel(reviews=[review_model(item) for item in found], next_cursor=None).model_dump(mode="json")

    def remote(client: Client) -> dict[str, Any]:
        return client.reviews(status=[s.value for s in statuses], role=role, limit=limit)

    page = either(settings_of(data_dir, url=url, api_key=api_key), remote, listed)
    if as_json:
        console.print_json(render.as_json(page))
    elif not page["reviews"]:
        console.print("no review items")
    else:
        console.print(render.reviews_table(page))


def _act_on_review(
    review_id: str, status: ReviewStatus, note: str | None, url: str | None, api_key: str | None, data_dir: Path | None
) -> dict[str, Any]:
    action = "acknowledge" if status is ReviewStatus.ACKNOWLEDGED else "resolve"

    async def act(vigia: Vigia) -> dict[str, Any]:
        return review_model(await vigia.review(review_id, status, local_actor(), note=note)).model_dump(mode="json")

    settings = settings_of(data_dir, url=url, api_key=api_key)
    return either(settings, lambda client: client.review(review_id, action, note), act)


@reviews_app.command("ack")
def reviews_ack(
    review_id: Annotated[str, typer.Argument(help="The review item's id.")],
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Acknowledge a review item: you are looking at it."""
    item = _act_on_review(review_id, ReviewStatus.ACKNOWLEDGED, None, url, api_key, data_dir)
    console.print(f"review {item['id']} acknowledged by {item['acknowledged_by']}")


@reviews_app.command("resolve")
def reviews_resolve(
    review_id: Annotated[str, typer.Argument(help="The review item's id.")],
    note: Annotated[str, typer.Option("--note", help="What was decided (required).")],
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Resolve a review item with a note saying what was decided."""
    item = _act_on_review(review_id, ReviewStatus.RESOLVED, note, url, api_key, data_dir)
    console.print(f"review {item['id']} resolved by {item['resolved_by']}")


# --- the dead-letter queue ------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(
    pipeline: Pipeline = None,
    stage: StageName = None,
    error_type: ErrorType = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """List dead jobs, newest first, with the stage that failed.

    Each with its attempts and its last error."""
    where = _dead_filter(pipeline, stage, error_type, since, until)

    async def listed(vigia: Vigia) -> dict[str, Any]:
        found = await vigia.list_dead(where, limit=limit)
        return DeadPageModel(jobs=[dead_model(dead) for dead in found], next_cursor=None).model_dump(mode="json")

    def remote(client: Client) -> dict[str, Any]:
        return client.dead(**_remote_filters(where), limit=limit)

    page = either(settings_of(data_dir, url=url, api_key=api_key), remote, listed)
    if as_json:
        console.print_json(render.as_json(page))
    elif not page["jobs"]:
        console.print("the dead-letter queue is empty")
    else:
        console.print(render.dead_table(page))


@dlq_app.command("stats")
def dlq_stats(
    pipeline: Pipeline = None,
    stage: StageName = None,
    error_type: ErrorType = None,
    since: Since = None,
    until: Until = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Dead jobs counted by pipeline, failed stage, error type and hour."""
    where = _dead_filter(pipeline, stage, error_type, since, until)

    async def counted(vigia: Vigia) -> dict[str, Any]:
        return DeadStatisticsModel(**await vigia.dlq_statistics(where)).model_dump(mode="json")

    settings = settings_of(data_dir, url=url, api_key=api_key)
    stats = either(settings, lambda client: client.dead_statistics(**_remote_filters(where)), counted)
    if as_json:
        console.print_json(render.as_json(stats))
    else:
        console.print(render.dead_statistics(stats))


@dlq_app.command("retry")
def dlq_retry(
    job_ids: Annotated[
        list[str] | None, typer.Argument(help="Jobs to retry; none: every dead job the filters select.")
    ] = None,
    pipeline: Pipeline = None,
    stage: StageName = None,
    error_type: ErrorType = None,
    since: Since = None,
    until: Until = None,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Retry dead jobs from the stage that failed.

    Each resumes there, keeping what earlier stages produced."""
    where = _dead_filter(pipeline, stage, error_type, since, until)
    if job_ids and where.describe():
        raise fail("give job ids or filters, not both", 2)

    def remote(client: Client) -> int:
        if job_ids:
            return len([client.retry(job_id) for job_id in job_ids])
        return client.retry_dead(**_remote_filters(where))

    async def retried(vigia: Vigia) -> int:
        if job_ids:
            for job_id in job_ids:
                await vigia.retry(job_id, actor=local_actor())
            return len(job_ids)
        return await vigia.retry_dead(where, local_actor())

    count = either(settings_of(data_dir, url=url, api_key=api_key), remote, retried)
    console.print(f"retried {count} job(s)")


@dlq_app.command("purge")
def dlq_purge(
    pipeline: Pipeline = None,
    stage: StageName = None,
    error_type: ErrorType = None,
    since: Since = None,
    until: Until = None,
    everything: Annotated[bool, typer.Option("--all", help="Purge every dead job (no filter).")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Delete dead jobs for good; the audit log keeps who did it.

    Their stages, events and reviews go with them."""
    where = _dead_filter(pipeline, stage, error_type, since, until)
    if not everything and not where.describe():
        raise fail("name what to purge (--pipeline, --stage, --error-type, --since, --until) or pass --all", 2)
    if not yes and not typer.confirm("Delete the selected dead jobs for good?", default=False):
        raise typer.Exit(1)

    async def purged(vigia: Vigia) -> int:
        return await vigia.purge_dead(where, local_actor())

    count = either(
        settings_of(data_dir, url=url, api_key=api_key),
        lambda client: client.purge_dead(everything=everything, **_remote_filters(where)),
        purged,
    )
    console.print(f"purged {count} job(s)")


# --- the audit log --------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = None) -> None:
    """Check the audit log: the keyed hash chain, and the store against every signed
    checkpoint in the anchor file; say exactly what is missing or altered.

    Exit 0 intact, 1 broken. What it proves and what it cannot: see the README."""

    async def checked(vigia: Vigia) -> tuple[Any, Any, list[str], int]:
        key = vigia.database.audit_chain_key
        anchor = await asyncio.to_thread(vigia.oversight.audit_anchor)
        last_hash: list[str] = []

        def upto_head() -> Iterator[Any]:
            # Entries written while this runs lie beyond the head read first: not checked.
            for entry in vigia.oversight.audit_entries(after_seq=anchor.first_seq - 1):
                if entry.seq > anchor.last_seq:
                    return
                last_hash[:] = [entry.hash]
                yield entry

        def walk() -> Any:
            return verify(
                upto_head(),
                first_prev_hash=anchor.first_prev_hash,
                first_seq=anchor.first_seq,
                key=key,
                keyed_from=anchor.keyed_from,
            )

        result = await asyncio.to_thread(walk)
        problems: list[str] = []
        if not result.ok:
            problems.append(f"entry {result.first_broken}: {result.problem}")
        elif result.checked != anchor.last_seq - anchor.first_seq + 1:
            problems.append(
                f"the chain ends at entry {anchor.first_seq + result.checked - 1}, its head says "
                f"{anchor.last_seq}: entries were removed from the end"
            )
        elif result.checked and last_hash[0] != anchor.last_hash:
            problems.append(f"entry {anchor.last_seq} is not the one the head recorded: the chain was rewritten")
        anchors = vigia.watch.anchors
        count = 0
        if anchors is not None:
            reading = await asyncio.to_thread(anchors.read)
            problems.extend(reading.problems)
            count = len(reading.checkpoints)
            hashes = await asyncio.to_thread(vigia.oversight.audit_hashes, [point.seq for point in reading.checkpoints])
            problems.extend(
                against_store(
                    reading.checkpoints,
                    first_seq=anchor.first_seq,
                    first_prev_hash=anchor.first_prev_hash,
                    last_seq=anchor.last_seq,
                    hashes=hashes,
                )
            )
        return anchor, result, problems, count

    anchor, result, problems, checkpoints = locally(settings_of(data_dir), checked)
    if problems:
        for problem in problems:
            errors.print(f"[red]audit log broken:[/] {problem}")
        raise typer.Exit(1)
    console.print(
        f"audit log intact: {result.checked} entries, {anchor.first_seq}–{anchor.last_seq}, "
        f"against {checkpoints} signed checkpoint(s)"
    )
    if not checkpoints:
        errors.print(
            "[yellow]note:[/] no signed checkpoints yet (`vigia serve` writes them): entries removed from "
            "the end could not be told from a shorter log"
        )


@audit_app.command("export")
def audit_export(
    since: Annotated[dt.datetime | None, typer.Option(help="Only entries at or after this time (UTC).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Write audit entries as JSON lines, with their hashes.

    Verifiable elsewhere, with the chain's rules."""
    moment = epoch(since)

    async def exported(vigia: Vigia) -> int:
        def write() -> int:
            count = 0
            handle = output.open("w", encoding="utf-8") if output else sys.stdout
            try:
                for line in export_lines(vigia.oversight.audit_entries(since=moment)):
                    handle.write(line + "\n")
                    count += 1
            finally:
                if output:
                    handle.close()
            return count

        return await asyncio.to_thread(write)

    count = locally(settings_of(data_dir), exported)
    if output:
        console.print(f"wrote {count} entries to {output}")


@audit_app.command("prune")
def audit_prune(data_dir: DataDir = None) -> None:
    """Remove entries older than the retention.

    VIGIA_AUDIT_RETENTION_DAYS, 7 years by default."""

    async def pruned(vigia: Vigia) -> int:
        before = time.time() - vigia.settings.audit_retention_days * 86400
        return await asyncio.to_thread(vigia.watch.prune_audit, before)

    console.print(f"removed {locally(settings_of(data_dir), pruned)} entries older than the retention")


# --- monitor -------------------------------------------------------------------------------


monitor_app = typer.Typer(help="Health, queues, workers and alerts; the alert rules for Prometheus.")
scale_app = typer.Typer(help="How many workers each queue needs.", no_args_is_help=True)


@monitor_app.callback(invoke_without_command=True)
def monitor(
    context: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit with the health as status.")] = False,
    as_json: AsJson = False,
    interval: Annotated[float, typer.Option(min=1, help="Seconds between checks.")] = 30.0,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Health, queues, workers and alerts (the exit status: health).

    Exit status: 0 healthy, 1 warning, 2 critical, 3 unreachable (so `--once` serves as a
    probe). With --url it asks a server. Without, in distributed mode it evaluates the alert
    rules itself and notifies new alerts once per incident; in embedded mode it only reads
    the store (the workers, and the alerting, are in `vigia serve`). `vigia monitor rules`
    writes the same alert rules for Prometheus."""
    if context.invoked_subcommand is not None:
        return
    settings = settings_of(data_dir, url=url, api_key=api_key)
    client = client_of(settings)

    def check() -> dict[str, Any]:
        if client is not None:
            return client.monitoring_status()

        async def checked(vigia: Vigia) -> dict[str, Any]:
            if not settings.distributed:
                # Embedded workers live in `vigia serve` and are not visible from here:
                # read the facts, leave alerting to the server (ask it with --url).
                return (await asyncio.to_thread(vigia.watch.observe)).status()
            return (await asyncio.to_thread(vigia.watch.check)).status()

        async def main() -> dict[str, Any]:
            vigia = Vigia.from_settings(settings)
            try:
                return await checked(vigia)
            finally:
                vigia.close()

        return asyncio.run(main())

    status = EXIT_UNREACHABLE
    try:
        while True:
            try:
                document = check()
            except VigiaError as error:
                errors.print(f"[red]unreachable:[/] {error.message}")
                status = EXIT_UNREACHABLE
            else:
                status = EXIT_BY_HEALTH.get(str(document["health"]), EXIT_UNREACHABLE)
                if as_json:
                    # One line per check, unwrapped, for whatever reads it.
                    sys.stdout.write(json.dumps(document, default=str) + "\n")
                    sys.stdout.flush()
                else:
                    console.print(render.monitoring_summary(document))
            if once:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if client is not None:
            client.close()
    raise typer.Exit(status)


@monitor_app.command("rules")
def monitor_rules(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the rules to this file (default: print them).")
    ] = None,
) -> None:
    """Prometheus alert rules from the thresholds the built-in monitor applies (VIGIA_ALERT_*)
    and the queues that need workers (VIGIA_REQUIRED_QUEUES, or every pipeline's)."""
    settings = settings_of()
    try:
        registry = wiring.registry_for(settings, [])
    except VigiaError as error:
        raise fail(error.message) from None
    text = alert_rules.render(
        thresholds_of(settings), sorted(settings.required_queues or registry.queues), WINDOW_SECONDS
    )
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text)
    except OSError as error:
        raise fail(f"cannot write {output}: {error.strerror or error}") from None
    console.print(f"wrote {len(alert_rules.ALERT_NAMES)} alert rules to {output}")


@scale_app.command("advise")
def scale_advise(
    target_wait: Annotated[
        float | None,
        typer.Option(min=0.001, help="Mean wait for a slot to aim at, seconds (default VIGIA_SCALE_TARGET_WAIT)."),
    ] = None,
    window: Annotated[float, typer.Option(min=60, help="Seconds of history the load is measured over.")] = 3600.0,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Per queue, the workers the observed load needs for a target wait, with the reasoning
    (queueing arithmetic: M/M/c, Erlang C) and the KEDA listLength that follows.

    Slots per worker are VIGIA_CONCURRENCY (or VIGIA_QUEUE_CONCURRENCY's). With --url, the
    server's advice for its own target and the last hour (--target-wait and --window are
    then refused)."""
    settings = settings_of(data_dir, url=url, api_key=api_key)
    remote = bool(settings.url)
    if remote and (target_wait is not None or window != 3600.0):
        raise fail("--target-wait and --window apply to the local store; a server advises for its own settings")
    wait = settings.scale_target_wait if target_wait is None else target_wait

    async def local(vigia: Vigia) -> list[dict[str, Any]]:
        found = await asyncio.to_thread(vigia.watch.scaling, time.time(), window=window, target_wait=wait)
        return [advice.to_dict() for advice in found]

    advice = either(settings, lambda server: list(server.monitoring_status()["scaling"]), local)
    if as_json:
        sys.stdout.write(json.dumps(advice) + "\n")
    else:
        console.print(render.scaling_advice(advice, None if remote else wait))


def register(app: typer.Typer) -> None:
    app.add_typer(reviews_app, name="reviews")
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(audit_app, name="audit")
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(scale_app, name="scale")
