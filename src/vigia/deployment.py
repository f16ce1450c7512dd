"""Kubernetes manifests for distributed mode, written from one description of the worker
groups (`vigia deploy kubernetes`): the API, a Deployment per group of queues with its
resources, a PodDisruptionBudget each, and a KEDA `ScaledObject` per group that scales it
on its queues' lengths, its `listLength` derived from the queueing arithmetic of
`vigia.scaling` (the target wait, the slots of a worker, a stage's service time)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigia import scaling
from vigia.yaml_text import documents

NAMESPACE = "vigia"
IMAGE = "vigia:latest"
API_PORT = 8000
#: Where a pod finds job files and the audit anchors (volumes every pod mounts).
DATA_DIR = "/var/lib/vigia"


@dataclass(frozen=True, slots=True)
class WorkerGroup:
    """Workers that serve some queues, sized for the work those queues carry."""

    name: str
    queues: tuple[str, ...]
    #: Stage runs one worker pod runs at once (Celery pool processes).
    slots: int
    #: The service time a stage run of these queues is planned at (seconds), and the mean
    #: wait aimed at: KEDA adds a replica when the backlog per replica exceeds what one
    #: clears within the wait. Measure with `vigia scale advise` and write them again.
    planned_service_seconds: float
    target_wait_seconds: float
    cpu: str
    memory: str
    cpu_limit: str
    memory_limit: str
    min_replicas: int = 2
    max_replicas: int = 20
    environment: Mapping[str, str] = field(default_factory=dict)

    @property
    def list_length(self) -> int:
        return scaling.keda_list_length(self.target_wait_seconds, self.slots, self.planned_service_seconds)


#: The worker groups of the workloads Vigía ships. The service times are planning figures
#: of the order the tests see on a 2-core machine (a triage stage well under a second, a
#: short document's extraction several seconds, an embedding or coding stage a second or
#: two), not measurements of a deployment: put `vigia scale advise`'s in their place.
WORKER_GROUPS: tuple[WorkerGroup, ...] = (
    WorkerGroup(
        "clinical",
        ("medical_priority", "image_processing", "audit_logging", "notifications", "default"),
        slots=4,
        planned_service_seconds=0.5,
        target_wait_seconds=5,
        cpu="500m",
        memory="1Gi",
        cpu_limit="2",
        memory_limit="2Gi",
    ),
    WorkerGroup(
        "documents",
        ("documents",),
        slots=2,
        planned_service_seconds=8,
        target_wait_seconds=60,
        cpu="2",
        memory="2Gi",
        cpu_limit="2",
        memory_limit="3Gi",
        environment={"VIGIA_DOC_OCR_WORKERS": "2"},
    ),
    WorkerGroup(
        "embeddings",
        ("embeddings",),
        slots=2,
        planned_service_seconds=2,
        target_wait_seconds=30,
        cpu="1",
        memory="2Gi",
        cpu_limit="2",
        memory_limit="3Gi",
    ),
    WorkerGroup(
        "coding",
        ("coding",),
        slots=2,
        planned_service_seconds=2,
        target_wait_seconds=30,
        cpu="1",
        memory="1536Mi",
        cpu_limit="2",
        memory_limit="2Gi",
    ),
)


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "vigia", "app.kubernetes.io/component": component}


def _metadata(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": _labels(component)}


def _container(name: str, command: Sequence[str], environment: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "command": list(command),
        "envFrom": [{"configMapRef": {"name": "vigia-config"}}],
        "env": [
            {
                "name": "VIGIA_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "vigia-secrets", "key": "database-url"}},
            },
            {"name": "VIGIA_AUDIT_KEY", "valueFrom": {"secretKeyRef": {"name": "vigia-secrets", "key": "audit-key"}}},
            *({"name": key, "value": value} for key, value in sorted(environment.items())),
        ],
        "volumeMounts": [
            {"name": "blobs", "mountPath": f"{DATA_DIR}/blobs"},
            {"name": "anchors", "mountPath": f"{DATA_DIR}/anchors"},
        ],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False},
    }


def _pod(component: str, container: dict[str, Any], grace_seconds: int) -> dict[str, Any]:
    return {
        "metadata": {"labels": _labels(component)},
        "spec": {
            "terminationGracePeriodSeconds": grace_seconds,
            "containers": [container],
            "volumes": [
                {"name": "blobs", "persistentVolumeClaim": {"claimName": "vigia-blobs"}},
                {"name": "anchors", "persistentVolumeClaim": {"claimName": "vigia-anchors"}},
            ],
        },
    }


def _run_once(component: str, command: Sequence[str], restart: str) -> dict[str, Any]:
    """The pod of a Job: runs ``command`` to its end."""
    pod = _pod(component, _container(component, command, {}), 30)
    pod["spec"]["restartPolicy"] = restart
    return pod


def _deployment(name: str, component: str, replicas: int, pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, component),
        "spec": {"replicas": replicas, "selector": {"matchLabels": _labels(component)}, "template": pod},
    }


def _disruption_budget(name: str, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(name, component),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": _labels(component)}},
    }


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": f"/api/v1/{path}", "port": API_PORT},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def base() -> list[dict[str, Any]]:
    """The namespace, the shared settings and the volumes."""
    claim = {"accessModes": ["ReadWriteMany"]}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata("vigia-config", "config"),
            "data": {
                "VIGIA_BROKER_URL": "redis://vigia-redis:6379/0",
                # The host:port KEDA's Redis scaler reads the queue lengths from.
                "REDIS_ADDRESS": "vigia-redis:6379",
                "VIGIA_TENANT_MAX_RUNNING": "8",
                "VIGIA_AUDIT_ANCHOR_FILE": f"{DATA_DIR}/anchors/audit-anchors.jsonl",
                "OMP_THREAD_LIMIT": "1",
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _metadata("vigia-blobs", "storage"),
            "spec": {**claim, "resources": {"requests": {"storage": "100Gi"}}},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _metadata("vigia-anchors", "storage"),
            "spec": {**claim, "resources": {"requests": {"storage": "1Gi"}}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _metadata("vigia-migrate", "migrate"),
            "spec": {"backoffLimit": 6, "template": _run_once("migrate", ["vigia", "db", "upgrade"], "OnFailure")},
        },
    ]


def api(replicas: int = 2) -> list[dict[str, Any]]:
    container = _container("api", ["vigia", "serve", "--host", "0.0.0.0", "--port", str(API_PORT)], {})
    container["ports"] = [{"name": "http", "containerPort": API_PORT}]
    container["livenessProbe"] = _http_probe("health", 10, 3)
    container["readinessProbe"] = _http_probe("ready", 5, 2)
    container["resources"] = {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }
    return [
        _deployment("vigia-api", "api", replicas, _pod("api", container, 30)),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata("vigia-api", "api"),
            "spec": {
                "selector": _labels("api"),
                "ports": [{"name": "http", "port": API_PORT, "targetPort": "http"}],
            },
        },
        _disruption_budget("vigia-api", "api"),
        # The alert rules evaluated and notified once a minute, from the store and the
        # broker (distributed mode); a failed run shows in the job's history.
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _metadata("vigia-monitor", "monitor"),
            "spec": {
                "schedule": "* * * * *",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 0,
                        "template": _run_once("monitor", ["vigia", "monitor", "--once"], "Never"),
                    }
                },
            },
        },
    ]


def workers(groups: Sequence[WorkerGroup] = WORKER_GROUPS) -> list[dict[str, Any]]:
    manifests: list[dict[str, Any]] = []
    for group in groups:
        name, component = f"vigia-worker-{group.name}", f"worker-{group.name}"
        command = ["vigia", "worker", "--queues", ",".join(group.queues), "--concurrency", str(group.slots)]
        container = _container("worker", command, group.environment)
        container["resources"] = {
            "requests": {"cpu": group.cpu, "memory": group.memory},
            "limits": {"cpu": group.cpu_limit, "memory": group.memory_limit},
        }
        # A worker told to stop finishes what it runs (up to the grace, then the lease
        # gives it to another worker): long enough for a stage of its queues.
        grace = max(30, round(4 * group.planned_service_seconds))
        manifests.append(_deployment(name, component, group.min_replicas, _pod(component, container, grace)))
        manifests.append(_disruption_budget(name, component))
        manifests.append(scaled_object(group, name))
    return manifests


def scaled_object(group: WorkerGroup, deployment: str) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            **_metadata(deployment, f"worker-{group.name}"),
            "annotations": {
                "vigia.dev/scaling": (
                    f"listLength = floor(target wait {group.target_wait_seconds:g} s × {group.slots} slots"
                    f" / service {group.planned_service_seconds:g} s) = {group.list_length}"
                )
            },
        },
        "spec": {
            "scaleTargetRef": {"name": deployment},
            "minReplicaCount": group.min_replicas,
            "maxReplicaCount": group.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "redis",
                    "metadata": {
                        "addressFromEnv": "REDIS_ADDRESS",
                        "listName": queue,
                        "listLength": str(group.list_length),
                    },
                }
                for queue in group.queues
            ],
        },
    }


#: The files `vigia deploy kubernetes` writes, and what each holds.
FILES: Mapping[str, Callable[[], list[dict[str, Any]]]] = {"base.yaml": base, "api.yaml": api, "workers.yaml": workers}


def render(name: str) -> str:
    """One of `FILES` as its text."""
    header = (
        "# Written by `vigia deploy kubernetes` (vigia.deployment): change the worker groups there\n"
        "# and write the files again rather than editing them here.\n"
    )
    return header + documents(FILES[name]())
