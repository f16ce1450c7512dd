"""The deployment files: the Kubernetes manifests against the Kubernetes schemas
(kubernetes-validate) and as `vigia deploy kubernetes` writes them, KEDA's ScaledObjects
against the scaling arithmetic, the compose file parsed and its commands understood by the
real CLI, and the alert rules checked and unit-tested by Prometheus's own promtool."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import service_missing
from vigia import alert_rules, deployment, wiring
from vigia.cli import app as cli_app
from vigia.config import Settings
from vigia.monitoring import Thresholds
from vigia.watch import WINDOW_SECONDS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.30.0"
#: The fields of a ScaledObject and of its Redis trigger that KEDA documents (2.x).
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "minReplicaCount",
    "maxReplicaCount",
    "pollingInterval",
    "cooldownPeriod",
    "idleReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
REDIS_TRIGGER = {
    "address",
    "addressFromEnv",
    "host",
    "port",
    "usernameFromEnv",
    "passwordFromEnv",
    "listName",
    "listLength",
    "activationListLength",
    "enableTLS",
    "databaseIndex",
}


def manifests() -> list[dict[str, Any]]:
    return [
        doc for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
    ]


def installed_queues() -> set[str]:
    return set(wiring.registry_for(Settings(), []).queues)


def test_the_manifests_are_what_vigia_deploy_kubernetes_writes() -> None:
    written = {path.name for path in (DEPLOY / "kubernetes").glob("*.yaml")}
    assert written == set(deployment.FILES)
    for name in deployment.FILES:
        assert (DEPLOY / "kubernetes" / name).read_text() == deployment.render(name), (
            f"deploy/kubernetes/{name} differs: run `vigia deploy kubernetes --output deploy/kubernetes`"
        )


def test_vigia_deploy_kubernetes_writes_them(tmp_path: Path) -> None:
    written = CliRunner().invoke(cli_app, ["deploy", "kubernetes", "--output", str(tmp_path / "k8s")])
    assert written.exit_code == 0, written.output
    for name in deployment.FILES:
        assert (tmp_path / "k8s" / name).read_text() == (DEPLOY / "kubernetes" / name).read_text()
    (tmp_path / "file").write_text("")
    refused = CliRunner().invoke(cli_app, ["deploy", "kubernetes", "--output", str(tmp_path / "file")])
    assert refused.exit_code == 1 and "cannot write to" in refused.output


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    checked = []
    for manifest in manifests():
        if manifest["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: checked against KEDA's documented fields below
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        checked.append(manifest["kind"])
    assert {"Deployment", "Service", "PodDisruptionBudget", "CronJob", "Job", "ConfigMap"} <= set(checked)
    # The validator does refuse what Kubernetes would: an unknown field, a wrong type.
    broken = next(manifest for manifest in manifests() if manifest["kind"] == "Deployment")
    broken["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_queue_has_a_worker_group_with_probes_a_budget_and_a_scaler() -> None:
    found = manifests()
    deployments = {m["metadata"]["name"]: m for m in found if m["kind"] == "Deployment"}
    budgets = {m["metadata"]["name"] for m in found if m["kind"] == "PodDisruptionBudget"}
    scalers = {m["metadata"]["name"]: m for m in found if m["kind"] == "ScaledObject"}
    served: list[str] = []
    for group in deployment.WORKER_GROUPS:
        name = f"vigia-worker-{group.name}"
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"] == {"cpu": group.cpu, "memory": group.memory}
        assert name in budgets and name in scalers
        scaler = scalers[name]["spec"]
        assert set(scaler) <= SCALED_OBJECT_SPEC and scaler["scaleTargetRef"]["name"] == name
        assert (scaler["minReplicaCount"], scaler["maxReplicaCount"]) == (2, 20)
        for trigger in scaler["triggers"]:
            assert trigger["type"] == "redis" and set(trigger["metadata"]) <= REDIS_TRIGGER
            # KEDA reads the address from the target container's environment.
            assert trigger["metadata"]["addressFromEnv"] == "REDIS_ADDRESS"
            assert int(trigger["metadata"]["listLength"]) == group.list_length
        assert [trigger["metadata"]["listName"] for trigger in scaler["triggers"]] == list(group.queues)
        served += group.queues
    assert sorted(served) == sorted(installed_queues()), "each queue served by exactly one worker group"
    api = deployments["vigia-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/v1/ready"
    config = next(m for m in found if m["kind"] == "ConfigMap")
    assert "REDIS_ADDRESS" in config["data"]


def test_the_documents_list_length_follows_from_its_planned_wait() -> None:
    documents_group = next(group for group in deployment.WORKER_GROUPS if group.name == "documents")
    # Two slots at 8 s a document clear one every 4 s: 60 s of waiting is 15 documents.
    assert documents_group.list_length == 15


def vigia_commands() -> list[list[str]]:
    """Every `vigia ...` command line the deployment files run."""
    commands = []
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for service in compose["services"].values():
        command = service.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        if command and command[0] == "vigia":
            commands.append(command)
    for manifest in manifests():
        for container in _containers(manifest):
            if container.get("command", [""])[0] == "vigia":
                commands.append(container["command"])
    return commands


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template") or {}
    return list(template.get("spec", {}).get("containers", []))


def test_every_command_the_deployment_runs_is_one_the_cli_understands() -> None:
    runner = CliRunner()
    commands = vigia_commands()
    assert {tuple(line[:2]) for line in commands} >= {("vigia", "serve"), ("vigia", "worker"), ("vigia", "db")}
    for line in commands:
        options_from = next((index for index, word in enumerate(line) if word.startswith("-")), len(line))
        path = line[1:options_from]
        shown = runner.invoke(cli_app, [*path, "--help"], terminal_width=200)
        # The command exists and documents every option the line gives it.
        assert shown.exit_code == 0, (line, shown.output)
        for option in (word.split("=")[0] for word in line if word.startswith("--")):
            assert option in shown.output, f"{shlex.join(line)}: `vigia {' '.join(path)}` has no {option}"


def test_the_compose_file_runs_every_group_on_persistent_redis_and_postgres() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"api", "postgres", "redis", "migrate", "flower", "prometheus"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    served = set()
    for name, service in services.items():
        command = service.get("command") or []
        if name.startswith("worker-"):
            served |= set(command[command.index("--queues") + 1].split(","))
            assert service["environment"]["VIGIA_BROKER_URL"] == "redis://redis:6379/0"
    assert served == installed_queues()
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert prometheus["scrape_configs"][0]["metrics_path"] == "/api/v1/metrics"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        service_missing("promtool is not on PATH (Debian: prometheus)")
    return found


def test_the_alert_rules_are_what_vigia_monitor_rules_writes_and_promtool_accepts_them(tmp_path: Path) -> None:
    rules = DEPLOY / "prometheus" / "alerts.yml"
    expected = alert_rules.render(Thresholds(), sorted(installed_queues()), WINDOW_SECONDS)
    assert rules.read_text() == expected, "run `vigia monitor rules --output deploy/prometheus/alerts.yml`"
    checked = subprocess.run([_promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text(expected.replace("vigia_queue_depth > 100", "vigia_queue_depth >"))
    refused = subprocess.run([_promtool(), "check", "rules", str(broken)], capture_output=True, text=True, check=False)
    assert refused.returncode != 0


def test_the_alert_rules_fire_at_the_monitors_thresholds(tmp_path: Path) -> None:
    """promtool's rule unit tests: series in, alerts out, at the built-in monitor's points."""
    rules = tmp_path / "alerts.yml"
    rules.write_text(alert_rules.render(Thresholds(), ["default", "documents"], WINDOW_SECONDS))
    cases = tmp_path / "cases.yml"
    cases.write_text(
        textwrap.dedent(
            """\
            rule_files: [alerts.yml]
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: 'vigia_queue_depth{queue="documents"}'
                    values: '150x10'
                  - series: 'vigia_queue_depth{queue="default"}'
                    values: '100x10'
                  - series: 'vigia_queue_consumers{queue="documents"}'
                    values: '0x10'
                  - series: 'vigia_queue_consumers{queue="default"}'
                    values: '1x10'
                  - series: 'vigia_failure_rate'
                    values: '0.06x10'
                  - series: 'vigia_throughput_per_minute'
                    values: '0.2x10'
                  - series: 'vigia_processing_seconds{pipeline="document_ingest",quantile="0.95"}'
                    values: '61x10'
                  - series: 'vigia_processing_jobs{pipeline="document_ingest"}'
                    values: '5x10'
                  - series: 'vigia_notifications_failed'
                    values: '0x10'
                alert_rule_test:
                  # Over 100 for 5 minutes: pending at 4, firing at 5; exactly 100 never.
                  - eval_time: 4m
                    alertname: VigiaQueueDepth
                    exp_alerts: []
                  - eval_time: 5m
                    alertname: VigiaQueueDepth
                    exp_alerts:
                      - exp_labels: {severity: warning, rule: queue_depth, queue: documents}
                        exp_annotations:
                          description: "Queue documents holds 150 waiting messages (limit 100) for 300s."
                  - eval_time: 1m
                    alertname: VigiaNoWorkers
                    exp_alerts:
                      - exp_labels: {severity: critical, rule: no_workers, queue: documents}
                        exp_annotations:
                          description: "No worker consumes queue documents: its work will not run."
                  # 6 % failed, and 12 jobs finished in the hour (0.2/min): over both limits.
                  - eval_time: 1m
                    alertname: VigiaFailureRate
                    exp_alerts:
                      - exp_labels: {severity: critical, rule: failure_rate}
                        exp_annotations:
                          description: "6% of the jobs finished in the last 3600 s failed (limit 5.0%)."
                  - eval_time: 1m
                    alertname: VigiaSlowPipeline
                    exp_alerts:
                      - exp_labels:
                          {severity: warning, rule: slow_pipeline, pipeline: document_ingest, quantile: "0.95"}
                        exp_annotations:
                          description: "Pipeline document_ingest took 61 s at p95 (limit 60 s)."
                  - eval_time: 1m
                    alertname: VigiaNotificationsUndelivered
                    exp_alerts: []
              - interval: 1m
                input_series:
                  # 6 % failed but only 6 jobs in the hour: under the monitor's minimum of 10.
                  - series: 'vigia_failure_rate'
                    values: '0.06x10'
                  - series: 'vigia_throughput_per_minute'
                    values: '0.1x10'
                  - series: 'vigia_processing_seconds{pipeline="document_ingest",quantile="0.95"}'
                    values: '61x10'
                  - series: 'vigia_processing_jobs{pipeline="document_ingest"}'
                    values: '4x10'
                alert_rule_test:
                  - eval_time: 1m
                    alertname: VigiaFailureRate
                    exp_alerts: []
                  - eval_time: 1m
                    alertname: VigiaSlowPipeline
                    exp_alerts: []
            """
        )
    )
    tested = subprocess.run(
        [_promtool(), "test", "rules", str(cases)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
