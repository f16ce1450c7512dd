"""The pressure-injury case workload (SPEC §7.1): see `pipeline`."""

from vigia.workloads.pressure_injury.pipeline import NAME, pipeline

__all__ = ["NAME", "pipeline"]
