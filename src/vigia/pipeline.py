"""Pipeline and stage definitions: what runs, in which order, under which rules. No I/O."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from vigia import constants
from vigia.exceptions import PipelineDefinitionError
from vigia.retry import RetryPolicy

if TYPE_CHECKING:
    from pathlib import Path

    from vigia.config import Settings
    from vigia.context import StageContext

StageFunction: TypeAlias = Callable[["StageContext"], Any]
RunIn: TypeAlias = Literal["thread", "loop", "process"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")


class Severity(StrEnum):
    """What a stage's failure means for the patient, and so how hard Vigía tries."""

    LOW = "low"  # an inconvenience: retried, never escalated
    MEDIUM = "medium"  # slows the workflow
    HIGH = "high"  # affects a clinical analysis
    CRITICAL = "critical"  # compromises patient safety: escalated at once


#: Default attempts per severity (SPEC §4: CRITICAL 1 retry, HIGH 2, MEDIUM and LOW 3).
SEVERITY_ATTEMPTS: Mapping[Severity, int] = {
    Severity.CRITICAL: 2,
    Severity.HIGH: 3,
    Severity.MEDIUM: 4,
    Severity.LOW: 4,
}


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a pipeline.

    ``after`` names the stages this one waits for. ``None`` (the default) means "the stage
    defined just before me", so a plain list of stages runs in order; ``()`` makes a root
    that starts with the job.
    """

    name: str
    function: StageFunction
    after: tuple[str, ...] | None = None
    timeout: float = constants.DEFAULT_STAGE_TIMEOUT
    retry: RetryPolicy | None = None
    critical: bool = True
    queue: str = constants.DEFAULT_QUEUE
    severity: Severity = Severity.MEDIUM
    weight: float = constants.DEFAULT_STAGE_WEIGHT
    #: Where a synchronous function runs: a worker thread (default), on the event loop for
    #: functions known to be instant, or (embedded mode) in a process of its own, killed at
    #: the timeout: for CPU-bound work. Coroutine functions run on the loop unless "process".
    run_in: RunIn = "thread"
    description: str = ""
    #: The role that reviews this stage's failures (default: its severity policy's role).
    escalate_to: str | None = None

    def __post_init__(self) -> None:
        # Accept the obvious spellings (a stage name, a list, a severity as text), so that
        # a list-form stage reads like the decorator; values typed loosely arrive here.
        after: Any = self.after
        if isinstance(after, str):
            object.__setattr__(self, "after", (after,))
        elif after is not None:
            object.__setattr__(self, "after", tuple(after))
        severity: Any = self.severity
        if not isinstance(severity, Severity):
            try:
                object.__setattr__(self, "severity", Severity(str(severity).lower()))
            except ValueError:
                choices = ", ".join(member.value for member in Severity)
                raise PipelineDefinitionError(
                    f"stage {self.name!r}: severity {severity!r} is not one of {choices}"
                ) from None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The declared policy, or the default one for this stage's severity."""
        if self.retry is not None:
            return self.retry
        return RetryPolicy(max_attempts=SEVERITY_ATTEMPTS[self.severity])


@dataclass(frozen=True, slots=True)
class EscalationRule:
    """A rule on a stage's output that sends the job to human review when it matches,
    e.g. ``EscalationRule("detect", lambda out: out["confidence"] < 0.60, "confidence below 0.60")``.

    ``when`` must be a plain function of the output (it runs where outcomes are recorded,
    on every worker); ``reason`` is fixed wording shown to reviewers and kept in the audit
    log, so it never contains patient data."""

    stage: str
    when: Callable[[Any], bool]
    reason: str
    severity: Severity = Severity.HIGH
    #: Who must look (default: the severity policy's role).
    role: str | None = None
    #: "critical", "high" or "normal" (default: the severity policy's urgency).
    urgency: str | None = None


@dataclass(frozen=True, slots=True)
class StageNode:
    """A stage resolved inside its pipeline: its dependencies are final."""

    stage: Stage
    depends_on: tuple[str, ...]
    #: Every stage this one transitively depends on; their outputs are visible to it.
    ancestors: frozenset[str]

    @property
    def name(self) -> str:
        return self.stage.name


@dataclass(eq=False)
class Pipeline:
    """A named, versioned graph of stages.

    Stages come as a list or through the :meth:`stage` decorator. Every change is checked
    at once, so a bad definition fails where it is written, with a message naming the
    problem.
    """

    name: str
    version: str = "1"
    description: str = ""
    stages: Sequence[Stage] = ()
    #: Job input validation, called at submission: raise `InvalidInput` to refuse a job.
    validate_input: Callable[[Any], None] | None = None
    #: Media types of the file a job may carry (sniffed from content); none: no file.
    accepts: tuple[str, ...] = ()
    #: The file's check at submission, once it is stored: ``check_file(path, media_type,
    #: settings)`` raises `InvalidInput` (a 422) or `PayloadTooLarge` (a 413) to refuse it.
    check_file: Callable[[Path, str, Settings], None] | None = None
    #: Rules on stage outputs that send a job to human review.
    escalations: Sequence[EscalationRule] = ()
    #: The input field holding the patient identifier: the audit log records its keyed hash.
    subject_field: str | None = None
    _nodes: dict[str, StageNode] = field(default_factory=dict, init=False, repr=False)
    _order: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise PipelineDefinitionError(
                f"pipeline name {self.name!r} is not valid: use letters, digits, '_', '-' or '.'"
            )
        initial = list(self.stages)
        self.stages = ()
        self._resolve(initial)
        rules = list(self.escalations)
        self.escalations = ()
        for rule in rules:
            self.escalate_when(rule)

    def escalate_when(self, rule: EscalationRule) -> EscalationRule:
        """Add a result-driven escalation rule (its stage must exist by now)."""
        if rule.stage not in self._nodes:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: escalation rule {rule.reason!r} names unknown stage {rule.stage!r}"
            )
        if not callable(rule.when):
            raise PipelineDefinitionError(f"pipeline {self.name!r}: escalation rule {rule.reason!r} is not callable")
        if not rule.reason.strip() or len(rule.reason) > 120 or "\n" in rule.reason:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: an escalation rule's reason must be one short line (at most 120 characters)"
            )
        if rule.urgency is not None and rule.urgency not in ("critical", "high", "normal"):
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: escalation rule {rule.reason!r} has urgency {rule.urgency!r}"
                " (critical, high or normal)"
            )
        self.escalations = (*self.escalations, rule)
        return rule

    # --- definition ---------------------------------------------------------------------

    def add(self, stage: Stage) -> Stage:
        self._resolve([*self.definition, stage])
        return stage

    def stage(
        self,
        name: str | None = None,
        *,
        after: Iterable[str] | str | None = None,
        timeout: float = constants.DEFAULT_STAGE_TIMEOUT,
        retry: RetryPolicy | None = None,
        critical: bool = True,
        queue: str = constants.DEFAULT_QUEUE,
        severity: Severity | str = Severity.MEDIUM,
        weight: float = constants.DEFAULT_STAGE_WEIGHT,
        run_in: RunIn = "thread",
        escalate_to: str | None = None,
    ) -> Callable[[StageFunction], StageFunction]:
        """Decorator form of :meth:`add`; the stage is named after the function by default."""

        def register(function: StageFunction) -> StageFunction:
            self.add(
                Stage(
                    name=name or function.__name__,
                    function=function,
                    after=(after,) if isinstance(after, str) else None if after is None else tuple(after),
                    timeout=timeout,
                    retry=retry,
                    critical=critical,
                    queue=queue,
                    severity=severity,  # type: ignore[arg-type]  # Stage converts and checks it
                    weight=weight,
                    run_in=run_in,
                    description=inspect.getdoc(function) or "",
                    escalate_to=escalate_to,
                )
            )
            return function

        return register

    def _resolve(self, stages: list[Stage]) -> None:
        nodes: dict[str, StageNode] = {}
        names = [stage.name for stage in stages]
        known = set(names)
        previous: str | None = None
        for stage in stages:
            problem = _stage_problem(stage)
            if problem:
                raise PipelineDefinitionError(f"pipeline {self.name!r}, stage {stage.name!r}: {problem}")
            if stage.name in nodes:
                raise PipelineDefinitionError(f"pipeline {self.name!r} defines stage {stage.name!r} twice")
            if stage.after is None:
                depends_on: tuple[str, ...] = () if previous is None else (previous,)
            else:
                depends_on = tuple(dict.fromkeys(stage.after))
            for dependency in depends_on:
                if dependency not in known:
                    raise PipelineDefinitionError(
                        f"pipeline {self.name!r}: stage {stage.name!r} depends on unknown stage {dependency!r}"
                    )
                if dependency == stage.name:
                    raise PipelineDefinitionError(f"pipeline {self.name!r}: stage {stage.name!r} depends on itself")
            nodes[stage.name] = StageNode(stage, depends_on, frozenset())
            previous = stage.name
        order = _topological_order(self.name, nodes)
        resolved: dict[str, StageNode] = {}
        for stage_name in order:
            node = nodes[stage_name]
            ancestors: set[str] = set(node.depends_on)
            for dependency in node.depends_on:
                ancestors |= resolved[dependency].ancestors
            resolved[stage_name] = StageNode(node.stage, node.depends_on, frozenset(ancestors))
        self._nodes = {stage_name: resolved[stage_name] for stage_name in names}
        self._order = order
        self.stages = tuple(stages)

    # --- reading ------------------------------------------------------------------------

    @property
    def definition(self) -> tuple[Stage, ...]:
        return tuple(self.stages)

    @property
    def nodes(self) -> Mapping[str, StageNode]:
        """Stages by name, in definition order."""
        return self._nodes

    @property
    def execution_order(self) -> list[str]:
        """A topological order of the stages (definition order where the graph allows)."""
        return list(self._order)

    def node(self, stage_name: str) -> StageNode:
        try:
            return self._nodes[stage_name]
        except KeyError:
            raise PipelineDefinitionError(f"pipeline {self.name!r} has no stage {stage_name!r}") from None

    @property
    def roots(self) -> list[str]:
        return [name for name, node in self._nodes.items() if not node.depends_on]

    @property
    def final_stage(self) -> str:
        """The stage whose output is the job's result: the last one defined."""
        if not self._nodes:
            raise PipelineDefinitionError(f"pipeline {self.name!r} has no stages")
        return next(reversed(self._nodes))

    @property
    def total_weight(self) -> float:
        return sum(node.stage.weight for node in self._nodes.values())

    @property
    def queues(self) -> list[str]:
        return list(dict.fromkeys(node.stage.queue for node in self._nodes.values()))

    def describe(self) -> dict[str, Any]:
        """The pipeline's graph as plain data (for listings and the API)."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "accepts": list(self.accepts),
            "stages": [
                {
                    "name": node.name,
                    "depends_on": list(node.depends_on),
                    "queue": node.stage.queue,
                    "timeout": node.stage.timeout,
                    "critical": node.stage.critical,
                    "severity": node.stage.severity.value,
                    "weight": node.stage.weight,
                    "max_attempts": node.stage.retry_policy.max_attempts,
                    "description": node.stage.description,
                }
                for node in self._nodes.values()
            ],
        }


def _stage_problem(stage: Stage) -> str | None:
    if not _NAME.match(stage.name):
        return "the name is not valid: use letters, digits, '_', '-' or '.'"
    if not callable(stage.function):
        return "the function is not callable"  # type: ignore[unreachable]  # untyped callers
    if not math.isfinite(stage.weight) or stage.weight <= 0:
        return f"weight must be a finite number > 0, got {stage.weight!r}"
    if not math.isfinite(stage.timeout) or stage.timeout <= 0:
        return f"timeout must be a finite number of seconds > 0, got {stage.timeout!r}"
    if not stage.queue or not _NAME.match(stage.queue):
        return f"queue name {stage.queue!r} is not valid"
    if stage.run_in not in ("thread", "loop", "process"):
        return f"run_in must be 'thread', 'loop' or 'process', got {stage.run_in!r}"
    if stage.run_in == "process" and "<locals>" in getattr(stage.function, "__qualname__", "<locals>"):
        return "run_in='process' needs a module-level function (a child process imports it by name)"
    return None


def _topological_order(pipeline_name: str, nodes: Mapping[str, StageNode]) -> list[str]:
    """Kahn's algorithm, taking ready stages in definition order; names a cycle if any."""
    remaining = {name: set(node.depends_on) for name, node in nodes.items()}
    order: list[str] = []
    while remaining:
        ready = [name for name, deps in remaining.items() if not deps]
        if not ready:
            raise PipelineDefinitionError(
                f"pipeline {pipeline_name!r} has a dependency cycle: {' -> '.join(_find_cycle(remaining))}"
            )
        for name in ready:
            del remaining[name]
            order.append(name)
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


def _find_cycle(remaining: Mapping[str, set[str]]) -> list[str]:
    start = next(iter(remaining))
    path = [start]
    seen = {start: 0}
    current = start
    while True:
        current = sorted(remaining[current])[0]
        if current in seen:
            return [*path[seen[current] :], current]
        seen[current] = len(path)
        path.append(current)
