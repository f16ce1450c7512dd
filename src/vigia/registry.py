"""Where pipelines are found: given in code, named by import path, or installed entry points."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points

from vigia import constants
from vigia.exceptions import ConfigurationError, UnknownPipeline
from vigia.pipeline import Pipeline


class Registry:
    def __init__(self, pipelines: Iterable[Pipeline] = ()) -> None:
        self._pipelines: dict[str, Pipeline] = {}
        for pipeline in pipelines:
            self.register(pipeline)

    def register(self, pipeline: Pipeline) -> Pipeline:
        existing = self._pipelines.get(pipeline.name)
        if existing is not None and existing is not pipeline:
            raise ConfigurationError(f"two pipelines are named {pipeline.name!r}")
        self._pipelines[pipeline.name] = pipeline
        return pipeline

    def get(self, name: str) -> Pipeline:
        try:
            return self._pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self._pipelines)) or "none"
            raise UnknownPipeline(f"no pipeline named {name!r} (registered: {known})", pipeline=name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._pipelines

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(sorted(self._pipelines.values(), key=lambda pipeline: pipeline.name))

    def __len__(self) -> int:
        return len(self._pipelines)

    @property
    def queues(self) -> list[str]:
        """Every queue some registered stage runs on."""
        return sorted({queue for pipeline in self._pipelines.values() for queue in pipeline.queues})

    @classmethod
    def discover(cls, import_paths: Iterable[str] = (), *, installed: bool = True) -> Registry:
        """Pipelines from ``module:attribute`` paths, plus those installed packages declare
        in the ``vigia.pipelines`` entry-point group."""
        registry = cls()
        for path in import_paths:
            for pipeline in load_pipelines(path):
                registry.register(pipeline)
        if installed:
            for entry_point in entry_points(group=constants.PIPELINE_ENTRY_POINT_GROUP):
                for pipeline in _as_pipelines(entry_point.load(), entry_point.value):
                    registry.register(pipeline)
        return registry


def load_pipelines(path: str) -> list[Pipeline]:
    """Import ``package.module:attribute`` (a pipeline or a list of them)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"pipeline path {path!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigurationError(f"cannot import {module_name!r} for pipeline path {path!r}: {error}") from error
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return _as_pipelines(target, path)


def _as_pipelines(target: object, where: str) -> list[Pipeline]:
    if isinstance(target, Pipeline):
        return [target]
    if isinstance(target, (list, tuple)) and all(isinstance(item, Pipeline) for item in target):
        return list(target)
    raise ConfigurationError(f"{where} is not a Pipeline nor a list of pipelines")
