"""The scaling advice over a store that ran real jobs (the API's monitoring status and
`vigia scale advise`), and `vigia monitor rules` with the metrics its rules read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.harness import API, harness
from vigia import alert_rules, scaling
from vigia.cli import app as cli_app
from vigia.monitoring import Thresholds
from vigia.watch import WINDOW_SECONDS

PACE = 0.05
JOBS = 12


def test_the_advice_reasons_from_the_runs_the_store_saw(sqlite_url: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    with harness(sqlite_url, tmp_path, scale_target_wait=0.5) as api:
        ids = []
        for _ in range(JOBS):
            response = api.submit("t_chaos", {"journal": str(journal), "pace": PACE})
            ids.append(response["id"])
        assert {api.wait(job_id)["state"] for job_id in ids} == {"succeeded"}
        status = api.client.get(f"{API}/monitoring/status", headers=api.headers("admin"))
        assert status.status_code == 200, status.text
        advice = {item["queue"]: item for item in status.json()["scaling"]}
    default = advice["default"]
    # Two stages a job, each of at least PACE seconds, on the default queue.
    assert default["arrivals_per_minute"] == pytest.approx(2 * JOBS / 60, abs=1e-3)
    assert PACE <= default["mean_service_seconds"] < PACE + 0.5
    # The status rounds the service time to a millisecond: the advice it gives is the one for
    # a service time within half a millisecond of the figure shown.
    advised = [
        scaling.advise(
            scaling.QueueLoad("default", 2 * JOBS, 2 * JOBS, default["mean_service_seconds"] + shift, WINDOW_SECONDS),
            target_wait_seconds=0.5,
            slots_per_worker=4,
        )
        for shift in (-0.0005, 0.0, 0.0005)
    ]
    assert default["workers_needed"] == 1 and {item.workers_needed for item in advised} == {1}
    assert min(item.keda_list_length for item in advised) <= default["keda_list_length"]
    assert default["keda_list_length"] <= max(item.keda_list_length for item in advised)
    assert f"{2 * JOBS} runs in 3600 s" in default["reasoning"]
    # A queue nothing ran on has nothing to reason from, and says so.
    assert advice["coding"]["mean_service_seconds"] is None and "no service time" in advice["coding"]["reasoning"]

    # The same from the command line, on the same store.
    shown = CliRunner().invoke(
        cli_app,
        ["scale", "advise", "--json", "--target-wait", "0.5", "--data-dir", str(tmp_path / "data")],
        env={"VIGIA_DATABASE_URL": sqlite_url, "VIGIA_PIPELINES": "tests.pipelines:ALL"},
    )
    assert shown.exit_code == 0, shown.output
    from_cli = {item["queue"]: item for item in json.loads(shown.output)}
    assert from_cli["default"]["workers_needed"] == 1
    assert from_cli["default"]["arrivals_per_minute"] == default["arrivals_per_minute"]


def test_scale_advise_refuses_local_options_for_a_server() -> None:
    shown = CliRunner().invoke(
        cli_app, ["scale", "advise", "--url", "http://127.0.0.1:9", "--window", "600"], terminal_width=200
    )
    assert shown.exit_code == 1
    assert "apply to the local store" in shown.output


def test_monitor_rules_writes_the_rules_of_the_configured_thresholds_on_metrics_the_api_exports(
    sqlite_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "alerts.yml"
    written = CliRunner().invoke(
        cli_app,
        ["monitor", "rules", "--output", str(output)],
        env={"VIGIA_ALERT_QUEUE_DEPTH": "250", "VIGIA_REQUIRED_QUEUES": "default,coding"},
    )
    assert written.exit_code == 0, written.output
    text = output.read_text()
    assert text == alert_rules.render(Thresholds(queue_depth=250), ["coding", "default"], WINDOW_SECONDS)
    assert "vigia_queue_depth > 250" in text and 'queue=~\\"coding|default\\"' in text
    # Every metric a rule reads is one the API exports.
    with harness(sqlite_url, tmp_path) as api:
        # A finished job: the failure rate is exported only once there is one.
        submitted = api.submit("t_chaos", {"journal": str(tmp_path / "j")})
        assert api.wait(submitted["id"])["state"] == "succeeded"
        metrics = api.client.get(f"{API}/metrics", headers=api.headers("admin"))
        assert metrics.status_code == 200
    exported = set(re.findall(r"^# TYPE (vigia_\w+)", metrics.text, flags=re.MULTILINE))
    read = set(re.findall(r"\b(vigia_[a-z_]+)\b", " ".join(re.findall(r'expr: "(.*)"', text))))
    assert read and read <= exported, read - exported
