"""Rendering for the terminal: live per-stage progress bars, and tables of the API's JSON
shapes (`vigia.api.schemas`), whether a server or the local store produced them."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from rich.console import Console, Group
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from vigia.access import ApiKey
from vigia.job import Event, EventType, Job, JobState

STATE_STYLES = {
    "queued": "grey62",
    "pending": "grey62",
    "running": "cyan",
    "retrying": "yellow",
    "succeeded": "green",
    "degraded": "yellow",
    "skipped": "yellow",
    "failed": "red",
    "dead": "bold red",
    "cancelled": "magenta",
}


def styled(state: str) -> str:
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"


def when(moment: float | str | None) -> str:
    """A time for people, from epoch seconds or the API's ISO 8601 text, in local time."""
    if moment is None:
        return "-"
    if isinstance(moment, str):
        try:
            parsed = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return moment
        moment = parsed.timestamp()
    return dt.datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")


async def follow_progress(
    console: Console, title: str, stages: Iterable[str], state: str, events: AsyncIterator[Event]
) -> Event | None:
    """Draw one bar for the job and one per stage until the job's final event."""
    final: Event | None = None
    with Progress(
        TextColumn("{task.fields[label]:<14}"),
        BarColumn(bar_width=32),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bars:
        overall = bars.add_task("job", total=100, label=f"[bold]{title}[/]", status=styled(state))
        stage_bars: dict[str, TaskID] = {
            name: bars.add_task(name, total=1.0, label=f"  {name}", status=styled("pending"), start=False)
            for name in stages
        }
        async for event in events:
            bars.update(overall, completed=event.progress, status=styled(event.state.value))
            bar = stage_bars.get(event.stage or "")
            if bar is not None:
                _update_stage(bars, bar, event)
            if event.is_final:
                final = event
                if event.state in (JobState.SUCCEEDED, JobState.DEGRADED):
                    bars.update(overall, completed=100)
                break
    return final


def _update_stage(bars: Progress, bar: TaskID, event: Event) -> None:
    status = {
        EventType.STAGE_STARTED: "running",
        EventType.STAGE_PROGRESS: "running",
        EventType.STAGE_SUCCEEDED: "succeeded",
        EventType.STAGE_RETRYING: "retrying",
        EventType.STAGE_FAILED: "failed",
        EventType.STAGE_SKIPPED: "skipped",
        EventType.STAGE_CANCELLED: "cancelled",
    }.get(event.type)
    if status is None:
        return
    if event.type is EventType.STAGE_STARTED:
        bars.start_task(bar)
    text = styled(status)
    if event.message and event.type is not EventType.STAGE_SUCCEEDED:
        text += f" [dim]{short(event.message)}[/]"
    fields: dict[str, Any] = {"status": text}
    if event.stage_progress is not None:
        fields["completed"] = event.stage_progress
    elif event.type is EventType.STAGE_RETRYING:
        fields["completed"] = 0
    bars.update(bar, **fields)


def short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def jobs_table(page: dict[str, Any]) -> Table:
    """A `JobPageModel`."""
    table = Table(show_edge=False)
    for column in ("id", "pipeline", "state", "progress", "stage", "created"):
        table.add_column(column, no_wrap=column == "id")
    for job in page.get("jobs", []):
        table.add_row(
            job["id"],
            job["pipeline"],
            styled(job["state"]),
            f"{job['progress']:.0f}%",
            job.get("current_stage") or "-",
            when(job["created_at"]),
        )
    return table


def job_detail(body: dict[str, Any]) -> Table:
    """A `JobDetailModel`: the job and its stages."""
    table = Table(
        title=f"job {body['id']}  {body['pipeline']} v{body['pipeline_version']}  "
        f"{styled(body['state'])}  {body['progress']:.0f}%"
    )
    for column in ("stage", "state", "queue", "attempts", "duration", "error"):
        table.add_column(column)
    for run in body.get("stages", []):
        table.add_row(
            run["stage"],
            styled(run["state"]),
            run["queue"],
            str(run["attempts"]),
            "-" if run.get("duration") is None else f"{run['duration']:.2f} s",
            "" if not run.get("error_type") else f"{run['error_type']}: {short(run.get('error_message') or '', 80)}",
        )
    return table


def reviews_table(page: dict[str, Any]) -> Table:
    """A `ReviewPageModel`."""
    table = Table(show_edge=False)
    for column in ("id", "status", "severity", "role", "job", "stage", "reason", "created"):
        table.add_column(column)
    for item in page.get("reviews", []):
        table.add_row(
            item["id"],
            item["status"],
            item["severity"],
            item["role"],
            item["job_id"],
            item.get("stage") or "-",
            item["reason"],
            when(item["created_at"]),
        )
    return table


def dead_table(page: dict[str, Any]) -> Table:
    """A `DeadPageModel`."""
    table = Table(show_edge=False)
    for column in ("job", "pipeline", "failed stage", "attempts", "error", "died"):
        table.add_column(column)
    for item in page.get("jobs", []):
        failure = f"{item['error_type']}: {item['error_message'] or ''}"
        table.add_row(
            item["job"]["id"],
            item["job"]["pipeline"],
            item["failed_stage"] or "-",
            str(item["attempts"]),
            failure[:80],
            when(item["job"]["finished_at"]),
        )
    return table


def dead_statistics(stats: dict[str, Any]) -> str:
    """A `DeadStatisticsModel` as lines."""
    lines = [f"dead jobs: {stats['total']}"]
    for title, key in (("by pipeline", "by_pipeline"), ("by failed stage", "by_stage"), ("by error", "by_error_type")):
        if stats[key]:
            lines.append(f"{title}: " + ", ".join(f"{name} {count}" for name, count in stats[key].items()))
    lines.extend(f"  {iso(bucket['hour'])}  {bucket['count']}" for bucket in stats["by_hour"])
    return "\n".join(lines)


def keys_table(keys: Iterable[ApiKey]) -> Table:
    table = Table(show_edge=False)
    for column in ("id", "tenant", "role", "name", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(key.id, key.tenant, key.role.value, key.name, when(key.created_at), when(key.revoked_at))
    return table


def iso(moment: float | None) -> str:
    if moment is None:
        return "-"
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def monitoring_summary(document: dict[str, Any]) -> Table:
    """`GET /monitoring/status` (or the local equivalent) as a table for people."""
    health = str(document["health"])
    colour = {"ok": "green", "warning": "yellow", "critical": "red"}.get(health, "white")
    table = Table(title=f"[{colour}]{health}[/]  {iso(float(document['at']))}", show_edge=False)
    table.add_column("queue")
    table.add_column("depth", justify="right")
    table.add_column("consumers")
    for queue in document["queues"]:
        table.add_row(queue["name"], str(queue["depth"]), ", ".join(queue["consumers"]) or "[red]none[/]")
    rate = document.get("failure_rate")
    table.caption = (
        f"last hour: {document['finished']} finished, {document['failed']} failed"
        f" ({'-' if rate is None else f'{rate:.1%}'}), {document['throughput_per_minute']:.1f}/min;"
        f" dead {document['dlq_size']}, reviews waiting {document['open_reviews']},"
        f" notifications undelivered {document['notifications_failed']}"
        + "".join(
            f"\n[{'red' if alert['severity'] == 'critical' else 'yellow'}]{alert['severity']}[/] "
            f"{alert['rule']} {alert['key']}: {alert['message']}{'' if alert['firing'] else ' (pending)'}"
            for alert in document["alerts"]
        )
    )
    return table


def scaling_advice(advice: Iterable[dict[str, Any]], target_wait: float | None) -> Table:
    """`vigia scale advise`: per queue, the workers its load needs, and why."""
    wanted = "" if target_wait is None else f" for a mean wait within {target_wait:g} s"
    table = Table(title=f"workers needed{wanted}", show_edge=False, title_justify="left")
    for name, justify in (
        ("queue", "left"),
        ("arrivals/min", "right"),
        ("service s", "right"),
        ("busy slots", "right"),
        ("workers", "right"),
        ("mean wait s", "right"),
        ("KEDA listLength", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    reasons = []
    for item in advice:

        def shown(value: Any) -> str:
            return "-" if value is None else f"{value:g}"

        table.add_row(
            item["queue"],
            f"{item['arrivals_per_minute']:.2f}",
            shown(item["mean_service_seconds"]),
            f"{item['offered_load']:.2f}",
            str(item["workers_needed"]),
            shown(item["expected_wait_seconds"]),
            shown(item["keda_list_length"]),
        )
        reasons.append(f"[dim]{item['queue']}:[/] {item['reasoning']}")
    table.caption = "\n".join(reasons)
    return table


def case_summary(name: str, job: Job, reviews: Iterable[Any]) -> Table:
    """One pressure-injury case: its triage, findings and the reviews it opened."""
    result = job.result if isinstance(job.result, dict) else {}
    triage = result.get("triage") or {}
    level = str(triage.get("level", job.state.value))
    colour = {"emergency": "red", "urgent": "yellow", "routine": "green"}.get(level, "white")
    table = Table(
        title=f"{name}: [{colour}]{level.upper()}[/]", show_header=False, show_edge=False, title_justify="left"
    )
    table.add_column(style="dim")
    table.add_column()
    risk = (result.get("risk") or {}).get("braden") or {}
    grade = result.get("grade") or ("not graded" if not result.get("graded") else "no injury found")
    quality = result.get("quality") or {}
    table.add_row("job", f"{job.id} ({styled(job.state.value)})")
    table.add_row(
        "grade", f"{grade}" + (f" (confidence {result['confidence']:.2f})" if result.get("confidence") else "")
    )
    table.add_row("Braden", f"{risk.get('total', '-')} ({str(risk.get('band', '-')).replace('_', ' ')} risk)")
    table.add_row("photo", "assessable" if quality.get("assessable") else "; ".join(quality.get("problems", [])) or "-")
    for reason in triage.get("reasons", []):
        table.add_row("why", reason)
    for review in reviews:
        table.add_row("review", f"{review.role} ({review.severity.value}): {review.reason}")
    if result and not result.get("escalated"):
        table.add_row("notified", "medical_team (routine)")
    return table


def document_detail(body: dict[str, Any]) -> Table:
    """A `DocumentDetailModel`: its metadata, each field with the words it came from, and
    how each page was read."""
    table = Table(title=f"document {body['id']}  {styled(body['status'])}", show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column()
    found = body.get("metadata") or {}

    def sourced(item: Any) -> str:
        if not isinstance(item, dict):
            return "-"
        source = item.get("source") or {}
        where = f" [dim](page {source['page']}: {short(source.get('text') or '', 50)!r})[/]" if source else ""
        return f"{item.get('value')}{where}"

    table.add_row("title", sourced(found.get("title")))
    table.add_row("type", sourced(found.get("document_type")))
    table.add_row("date", sourced(found.get("date")))
    table.add_row("language", str(body.get("language") or "-"))
    for reference in found.get("references") or []:
        table.add_row("reference", sourced(reference))
    keywords = ", ".join(str(item.get("value")) for item in found.get("keywords") or [])
    table.add_row("keywords", keywords or "-")
    table.add_row("file", f"{body.get('filename') or '-'} ({body['media_type']}, {body['size']:,} bytes)")
    table.add_row("chunks", f"{body['chunks']} ({body['chunks_embedded']} embedded)")
    if body.get("degraded"):
        table.add_row("degraded", ", ".join(body["degraded"]))
    for page in body.get("pages", []):
        confidence = "" if page.get("ocr_confidence") is None else f", confidence {page['ocr_confidence']:.0f}"
        reason = f" [dim]({page['reason']})[/]" if page.get("reason") else ""
        table.add_row(f"page {page['number']}", f"{page['method']}{confidence}{reason}")
    return table


def marked(snippet: str) -> str:
    """A search snippet (HTML-escaped, query words in <mark>) for the terminal."""
    escaped = snippet.replace("[", r"\[")
    return html.unescape(re.sub(r"<mark>(.*?)</mark>", r"[bold yellow]\1[/]", escaped))


def _evidence(items: list[dict[str, Any]]) -> str:
    """The first piece of evidence: its words, where they stand, what was said of them."""
    if not items:
        return ""
    first = items[0]
    context = f" [dim]({', '.join(first['context'])})[/]" if first.get("context") else ""
    more = f" [dim]+{len(items) - 1}[/]" if len(items) > 1 else ""
    return f"“{short(first['text'], 36)}” @{first['start']}{context}{more}"


def _titled_table(title: str, *columns: str) -> Table:
    table = Table(title=title, show_edge=False, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _codes(report: dict[str, Any]) -> Table:
    codes = _titled_table("codes the note supports", "code", "description", "conf.", "evidence")
    for item in report.get("codes", []):
        codes.add_row(
            f"[bold]{item['code']}[/]",
            short(item["description"], 56),
            f"{item['confidence']:.2f}",
            _evidence(item["evidence"]),
        )
    return codes


def _billed(analysis: dict[str, Any]) -> Table:
    billed = _titled_table("billed codes", "finding", "code", "reason", "suggested")
    for code in analysis.get("supported", []):
        billed.add_row("[green]supported[/]", code, "", "")
    for kind, style in (("unsupported", "red"), ("more_specific", "yellow"), ("missing", "cyan")):
        for item in analysis.get(kind, []):
            billed.add_row(
                f"[{style}]{kind.replace('_', ' ')}[/]", item["code"], item["reason"], item.get("suggested") or ""
            )
    return billed


def coding_report(report: dict[str, Any]) -> Group:
    """The report as tables: codes, exclusions, the billed-code analysis, queries."""
    phi = ", ".join(f"{kind} {count}" for kind, count in sorted(report.get("phi_counts", {}).items())) or "none"
    parts: list[Any] = [
        f"[bold]language[/] {report.get('language')} ({report.get('language_source')})   [bold]PHI redacted[/] {phi}"
    ]
    parts += [f"[yellow]degraded:[/] {item['stage']}: {item['reason']}" for item in report.get("degraded", [])]
    parts.append(_codes(report) if report.get("codes") else "[dim]no codes[/]")
    if report.get("excluded"):
        excluded = _titled_table("not coded", "code", "reason", "evidence")
        for item in report["excluded"]:
            excluded.add_row(item["code"], item["reason"], _evidence(item["evidence"]))
        parts.append(excluded)
    analysis = report.get("coding_analysis") or {}
    if analysis.get("billed"):
        parts.append(_billed(analysis))
    if analysis.get("not_analysed"):
        parts.append(f"[yellow]billed codes not analysed:[/] {analysis['not_analysed']}")
    parts += [
        f"[magenta]query:[/] {query['issue']}  {_evidence(query.get('evidence', []))}"
        for query in report.get("quality", [])
    ]
    return Group(*parts)
