"""Pipeline definitions: stage graphs, definition errors, defaults, describe() and the registry."""

from __future__ import annotations

import math
import re
import sys
import types
from typing import Any

import pytest

from vigia import constants
from vigia.context import StageContext
from vigia.exceptions import ConfigurationError, PipelineDefinitionError, UnknownPipeline
from vigia.pipeline import SEVERITY_ATTEMPTS, Pipeline, Severity, Stage
from vigia.registry import Registry, load_pipelines
from vigia.retry import RetryPolicy


def noop(ctx: StageContext) -> None:
    return None


async def anoop(ctx: StageContext) -> None:
    return None


def stage(name: str, **kwargs: Any) -> Stage:
    return Stage(name=name, function=noop, **kwargs)


def deps(pipeline: Pipeline) -> dict[str, tuple[str, ...]]:
    return {name: node.depends_on for name, node in pipeline.nodes.items()}


# --- graph shapes -------------------------------------------------------------------------


def test_list_form_runs_in_order_by_default() -> None:
    pipeline = Pipeline("seq", stages=[stage("a"), stage("b"), stage("c")])

    assert deps(pipeline) == {"a": (), "b": ("a",), "c": ("b",)}
    assert pipeline.roots == ["a"]
    assert pipeline.execution_order == ["a", "b", "c"]
    assert pipeline.final_stage == "c"
    assert pipeline.nodes["c"].ancestors == frozenset({"a", "b"})


def test_decorator_form_runs_in_order_and_names_stages_after_functions() -> None:
    pipeline = Pipeline("deco")

    @pipeline.stage()
    def fetch(ctx: StageContext) -> str:
        """Fetch the thing."""
        return "x"

    @pipeline.stage("second", timeout=5.0)
    def parse(ctx: StageContext) -> str:
        return "y"

    assert list(pipeline.nodes) == ["fetch", "second"]
    assert deps(pipeline) == {"fetch": (), "second": ("fetch",)}
    assert pipeline.nodes["fetch"].stage.function is fetch
    assert pipeline.nodes["fetch"].stage.description == "Fetch the thing."
    assert pipeline.nodes["second"].stage.timeout == 5.0
    # The decorator hands back the function untouched.
    assert fetch(None) == "x"  # type: ignore[arg-type]


def test_decorator_after_accepts_a_single_name_or_several() -> None:
    pipeline = Pipeline("deco_after")
    pipeline.stage("a")(noop)
    pipeline.stage("b", after=())(noop)
    pipeline.stage("c", after="a")(noop)
    pipeline.stage("d", after=["b", "c"])(noop)

    assert deps(pipeline) == {"a": (), "b": (), "c": ("a",), "d": ("b", "c")}


def test_empty_after_makes_a_root() -> None:
    pipeline = Pipeline("roots", stages=[stage("a"), stage("b", after=()), stage("c")])

    assert pipeline.roots == ["a", "b"]
    assert deps(pipeline)["c"] == ("b",)  # "the previous stage" is b, not a


def test_parallel_branches_and_a_join() -> None:
    pipeline = Pipeline(
        "diamond",
        stages=[
            stage("intake"),
            stage("image", after=("intake",)),
            stage("risk", after=("intake",)),
            stage("assess", after=("image", "risk")),
            stage("notify"),
        ],
    )

    assert deps(pipeline) == {
        "intake": (),
        "image": ("intake",),
        "risk": ("intake",),
        "assess": ("image", "risk"),
        "notify": ("assess",),
    }
    assert pipeline.nodes["assess"].ancestors == frozenset({"intake", "image", "risk"})
    assert pipeline.nodes["image"].ancestors == frozenset({"intake"})
    assert pipeline.nodes["notify"].ancestors == frozenset({"intake", "image", "risk", "assess"})
    order = pipeline.execution_order
    assert order[0] == "intake"
    assert set(order[1:3]) == {"image", "risk"}
    assert order[3:] == ["assess", "notify"]


def test_forward_reference_is_resolved_in_topological_order() -> None:
    pipeline = Pipeline("forward", stages=[stage("report", after=("load",)), stage("load", after=())])

    assert deps(pipeline) == {"report": ("load",), "load": ()}
    assert pipeline.execution_order == ["load", "report"]
    assert list(pipeline.nodes) == ["report", "load"]  # definition order is kept


def test_repeated_dependency_is_recorded_once() -> None:
    pipeline = Pipeline("dupdep", stages=[stage("a"), stage("b", after=("a", "a"))])

    assert deps(pipeline)["b"] == ("a",)


def test_list_form_after_as_a_plain_string_names_one_stage() -> None:
    # Like the decorator, a single name given as a string must not be read letter by letter.
    pipeline = Pipeline("str_after", stages=[stage("load"), stage("b", after=()), stage("c", after="load")])

    assert deps(pipeline)["c"] == ("load",)


def test_add_and_list_form_build_the_same_graph() -> None:
    listed = Pipeline("one", stages=[stage("a"), stage("b"), stage("c", after=("a",))])
    added = Pipeline("two")
    for item in (stage("a"), stage("b"), stage("c", after=("a",))):
        added.add(item)

    assert deps(listed) == deps(added)
    assert added.definition == listed.definition


def test_total_weight_and_queues() -> None:
    pipeline = Pipeline(
        "weights",
        stages=[stage("a", weight=2.0), stage("b", weight=0.5, queue="gpu"), stage("c", queue="notifications")],
    )

    assert pipeline.total_weight == 3.5
    assert pipeline.queues == [constants.DEFAULT_QUEUE, "gpu", "notifications"]


def test_node_lookup_of_unknown_stage_names_it() -> None:
    pipeline = Pipeline("lookup", stages=[stage("a")])

    with pytest.raises(PipelineDefinitionError, match="'nope'"):
        pipeline.node("nope")


def test_empty_pipeline_has_no_final_stage() -> None:
    pipeline = Pipeline("empty")

    assert pipeline.roots == []
    with pytest.raises(PipelineDefinitionError, match="no stages"):
        _ = pipeline.final_stage


def test_async_stage_is_detected() -> None:
    pipeline = Pipeline("asyncs", stages=[Stage("a", anoop), stage("b")])

    assert pipeline.nodes["a"].stage.is_async is True
    assert pipeline.nodes["b"].stage.is_async is False


# --- definition errors --------------------------------------------------------------------


def test_cycle_is_rejected_and_named() -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline(
            "cyclic",
            stages=[stage("a", after=("c",)), stage("b", after=("a",)), stage("c", after=("b",))],
        )

    message = str(raised.value)
    assert "cycle" in message
    assert "'cyclic'" in message
    assert "a -> c -> b -> a" in message


def test_cycle_behind_a_valid_root_is_named_without_the_root() -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline(
            "cyclic2",
            stages=[stage("root"), stage("x", after=("root", "y")), stage("y", after=("x",))],
        )

    message = str(raised.value)
    assert "cycle" in message
    cycle = message.split("cycle:")[1].strip()
    assert cycle in ("x -> y -> x", "y -> x -> y")


def test_two_stage_cycle_is_named() -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline("cyc2", stages=[stage("p", after=("q",)), stage("q", after=("p",))])

    assert "cycle: p -> q -> p" in str(raised.value)


def test_unknown_dependency_is_named() -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline("unknown_dep", stages=[stage("a"), stage("b", after=("ghost",))])

    message = str(raised.value)
    assert "unknown stage 'ghost'" in message
    assert "'b'" in message


def test_unknown_dependency_in_decorator_is_named() -> None:
    pipeline = Pipeline("unknown_dep2")

    with pytest.raises(PipelineDefinitionError, match="unknown stage 'ghost'"):
        pipeline.stage("a", after="ghost")(noop)

    assert list(pipeline.nodes) == []


def test_duplicate_stage_name_is_named() -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline("dups", stages=[stage("a"), stage("b"), stage("a")])

    message = str(raised.value)
    assert "'a'" in message
    assert "twice" in message


def test_duplicate_stage_via_decorator_leaves_the_pipeline_unchanged() -> None:
    pipeline = Pipeline("dups2")
    pipeline.stage("a")(noop)

    with pytest.raises(PipelineDefinitionError, match="stage 'a' twice"):
        pipeline.stage("a")(noop)

    assert list(pipeline.nodes) == ["a"]
    assert len(pipeline.definition) == 1


def test_self_dependency_is_named() -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline("selfish", stages=[stage("a"), stage("b", after=("b",))])

    assert "stage 'b' depends on itself" in str(raised.value)


@pytest.mark.parametrize("weight", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_bad_weight_is_rejected(weight: float) -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline("weighty", stages=[stage("a", weight=weight)])

    message = str(raised.value)
    assert "weight" in message
    assert "'a'" in message
    assert repr(weight) in message


@pytest.mark.parametrize("timeout", [0.0, -5.0, math.nan, math.inf])
def test_bad_timeout_is_rejected(timeout: float) -> None:
    pipeline = Pipeline("timed")

    with pytest.raises(PipelineDefinitionError) as raised:
        pipeline.stage("slow", timeout=timeout)(noop)

    message = str(raised.value)
    assert "timeout" in message
    assert "'slow'" in message


@pytest.mark.parametrize("name", ["", "has space", "1starts_with_digit", "slash/name", "x" * 101, "ñandú"])
def test_bad_pipeline_name_is_rejected(name: str) -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline(name)

    assert "pipeline name" in str(raised.value)
    assert "not valid" in str(raised.value)


@pytest.mark.parametrize("name", ["a", "_private", "doc.ingest-v2", "x" * 100])
def test_good_pipeline_names_are_accepted(name: str) -> None:
    assert Pipeline(name).name == name


@pytest.mark.parametrize("name", ["", "two words", "9lives", "a:b"])
def test_bad_stage_name_is_rejected(name: str) -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline("named", stages=[stage(name)])

    assert "name is not valid" in str(raised.value)


@pytest.mark.parametrize("queue", ["", "has space", "q/ueue", "-leading"])
def test_bad_queue_name_is_rejected(queue: str) -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        Pipeline("queued", stages=[stage("a", queue=queue)])

    message = str(raised.value)
    assert "queue name" in message
    assert repr(queue) in message


def test_bad_run_in_is_rejected() -> None:
    with pytest.raises(PipelineDefinitionError, match="run_in"):
        Pipeline("runin", stages=[stage("a", run_in="fork")])  # type: ignore[arg-type]


def test_non_callable_function_is_rejected() -> None:
    with pytest.raises(PipelineDefinitionError, match="not callable"):
        Pipeline("nofn", stages=[Stage("a", function="noop")])  # type: ignore[arg-type]


def test_unknown_severity_in_decorator_is_a_definition_error() -> None:
    pipeline = Pipeline("sev")

    with pytest.raises(PipelineDefinitionError) as raised:
        pipeline.stage("a", severity="urgent")(noop)

    assert "urgent" in str(raised.value)


def test_failed_add_keeps_the_previous_definition() -> None:
    pipeline = Pipeline("keep", stages=[stage("a"), stage("b")])

    with pytest.raises(PipelineDefinitionError):
        pipeline.add(stage("c", weight=-1.0))

    assert list(pipeline.nodes) == ["a", "b"]
    assert pipeline.execution_order == ["a", "b"]
    assert pipeline.final_stage == "b"


# --- severity and retry defaults ----------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "attempts"),
    [(Severity.CRITICAL, 2), (Severity.HIGH, 3), (Severity.MEDIUM, 4), (Severity.LOW, 4)],
)
def test_severity_sets_the_default_attempts(severity: Severity, attempts: int) -> None:
    pipeline = Pipeline("sev_defaults", stages=[stage("a", severity=severity)])

    assert pipeline.nodes["a"].stage.retry_policy.max_attempts == attempts
    assert SEVERITY_ATTEMPTS[severity] == attempts


def test_default_severity_is_medium_with_four_attempts() -> None:
    pipeline = Pipeline("sev_default", stages=[stage("a")])

    assert pipeline.nodes["a"].stage.severity is Severity.MEDIUM
    assert pipeline.nodes["a"].stage.retry_policy.max_attempts == 4


def test_decorator_accepts_severity_as_text() -> None:
    pipeline = Pipeline("sev_text")
    pipeline.stage("a", severity="critical")(noop)

    assert pipeline.nodes["a"].stage.severity is Severity.CRITICAL
    assert pipeline.nodes["a"].stage.retry_policy.max_attempts == 2


def test_explicit_retry_policy_wins_over_severity() -> None:
    policy = RetryPolicy(max_attempts=7, base_delay=0.5)
    pipeline = Pipeline("sev_explicit", stages=[stage("a", severity=Severity.CRITICAL, retry=policy)])

    assert pipeline.nodes["a"].stage.retry_policy is policy
    assert pipeline.nodes["a"].stage.retry_policy.max_attempts == 7


def test_stage_defaults() -> None:
    pipeline = Pipeline("defaults", stages=[stage("a")])
    a = pipeline.nodes["a"].stage

    assert a.timeout == constants.DEFAULT_STAGE_TIMEOUT
    assert a.queue == constants.DEFAULT_QUEUE
    assert a.weight == constants.DEFAULT_STAGE_WEIGHT
    assert a.critical is True
    assert a.run_in == "thread"


# --- describe -----------------------------------------------------------------------------


def test_describe_gives_the_graph_as_plain_data() -> None:
    pipeline = Pipeline("described", version="3", description="A test pipeline.")

    @pipeline.stage(queue="intake", severity=Severity.HIGH, weight=2.0, timeout=30.0)
    def load(ctx: StageContext) -> None:
        """Load the input."""

    @pipeline.stage(critical=False, severity=Severity.LOW, retry=RetryPolicy(max_attempts=9))
    def enrich(ctx: StageContext) -> None:
        pass

    @pipeline.stage(after=["load", "enrich"], severity="critical")
    def report(ctx: StageContext) -> None:
        pass

    assert pipeline.describe() == {
        "name": "described",
        "version": "3",
        "description": "A test pipeline.",
        "accepts": [],
        "stages": [
            {
                "name": "load",
                "depends_on": [],
                "queue": "intake",
                "timeout": 30.0,
                "critical": True,
                "severity": "high",
                "weight": 2.0,
                "max_attempts": 3,
                "description": "Load the input.",
            },
            {
                "name": "enrich",
                "depends_on": ["load"],
                "queue": constants.DEFAULT_QUEUE,
                "timeout": constants.DEFAULT_STAGE_TIMEOUT,
                "critical": False,
                "severity": "low",
                "weight": constants.DEFAULT_STAGE_WEIGHT,
                "max_attempts": 9,
                "description": "",
            },
            {
                "name": "report",
                "depends_on": ["load", "enrich"],
                "queue": constants.DEFAULT_QUEUE,
                "timeout": constants.DEFAULT_STAGE_TIMEOUT,
                "critical": True,
                "severity": "critical",
                "weight": constants.DEFAULT_STAGE_WEIGHT,
                "max_attempts": 2,
                "description": "",
            },
        ],
    }


def test_describe_of_list_form_stage_with_text_severity() -> None:
    # The decorator accepts severity as text; a Stage given the same text must not break describe().
    pipeline = Pipeline("described2", stages=[stage("a", severity="high")])  # type: ignore[arg-type]

    described = pipeline.describe()

    assert described["stages"][0]["severity"] == "high"
    assert described["stages"][0]["max_attempts"] == 3


# --- registry -----------------------------------------------------------------------------


def test_registry_register_and_get() -> None:
    first = Pipeline("first", stages=[stage("a")])
    second = Pipeline("second", stages=[stage("a")])
    registry = Registry([second])
    registry.register(first)

    assert registry.get("first") is first
    assert registry.get("second") is second
    assert "first" in registry
    assert "third" not in registry
    assert len(registry) == 2
    assert [pipeline.name for pipeline in registry] == ["first", "second"]


def test_registering_the_same_pipeline_twice_is_harmless() -> None:
    pipeline = Pipeline("same", stages=[stage("a")])
    registry = Registry([pipeline])

    assert registry.register(pipeline) is pipeline
    assert len(registry) == 1


def test_registry_get_unknown_lists_known_names() -> None:
    registry = Registry([Pipeline("beta", stages=[stage("a")]), Pipeline("alpha", stages=[stage("a")])])

    with pytest.raises(UnknownPipeline) as raised:
        registry.get("gamma")

    message = str(raised.value)
    assert "'gamma'" in message
    assert "alpha, beta" in message
    assert raised.value.details == {"pipeline": "gamma"}


def test_empty_registry_get_says_none_registered() -> None:
    with pytest.raises(UnknownPipeline, match="registered: none"):
        Registry().get("anything")


def test_two_pipelines_with_one_name_is_a_configuration_error() -> None:
    registry = Registry([Pipeline("twin", stages=[stage("a")])])

    with pytest.raises(ConfigurationError, match="'twin'"):
        registry.register(Pipeline("twin", stages=[stage("b")]))

    assert list(registry.get("twin").nodes) == ["a"]


def test_registry_queues_are_the_union_sorted() -> None:
    registry = Registry(
        [
            Pipeline("p1", stages=[stage("a", queue="zeta"), stage("b")]),
            Pipeline("p2", stages=[stage("a", queue="alpha"), stage("b", queue="zeta")]),
        ]
    )

    assert registry.queues == ["alpha", constants.DEFAULT_QUEUE, "zeta"]


@pytest.fixture
def pipelines_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("vigia_test_pipelines_module")
    module.single = Pipeline("mod_single", stages=[stage("a")])  # type: ignore[attr-defined]
    module.several = [  # type: ignore[attr-defined]
        Pipeline("mod_one", stages=[stage("a")]),
        Pipeline("mod_two", stages=[stage("a")]),
    ]
    module.not_a_pipeline = 42  # type: ignore[attr-defined]
    module.mixed = [Pipeline("mod_three", stages=[stage("a")]), "nope"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def test_load_pipelines_single_and_list(pipelines_module: types.ModuleType) -> None:
    single = load_pipelines("vigia_test_pipelines_module:single")
    several = load_pipelines("vigia_test_pipelines_module:several")

    assert [pipeline.name for pipeline in single] == ["mod_single"]
    assert single[0] is pipelines_module.single
    assert [pipeline.name for pipeline in several] == ["mod_one", "mod_two"]


def test_discover_from_import_paths(pipelines_module: types.ModuleType) -> None:
    registry = Registry.discover(
        ["vigia_test_pipelines_module:single", "vigia_test_pipelines_module:several"], installed=False
    )

    assert [pipeline.name for pipeline in registry] == ["mod_one", "mod_single", "mod_two"]


@pytest.mark.parametrize("path", ["no_colon_here", ":attribute", "module:", ""])
def test_load_pipelines_rejects_a_malformed_path(path: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape("must look like 'package.module:attribute'")):
        load_pipelines(path)


def test_load_pipelines_reports_a_missing_module() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_pipelines("vigia_no_such_module_xyz:pipeline")

    assert "cannot import 'vigia_no_such_module_xyz'" in str(raised.value)


def test_load_pipelines_reports_a_missing_attribute(pipelines_module: types.ModuleType) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_pipelines("vigia_test_pipelines_module:missing")

    assert "has no attribute 'missing'" in str(raised.value)


@pytest.mark.parametrize("attribute", ["not_a_pipeline", "mixed"])
def test_load_pipelines_rejects_something_that_is_not_a_pipeline(
    pipelines_module: types.ModuleType, attribute: str
) -> None:
    with pytest.raises(ConfigurationError, match="is not a Pipeline nor a list of pipelines"):
        load_pipelines(f"vigia_test_pipelines_module:{attribute}")
