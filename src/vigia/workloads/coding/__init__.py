"""Clinical coding reports (`clinical_coding_report`): PHI redacted, ICD-10-CM codes with
their evidence, billed codes checked, documentation gaps, from an English or Spanish note."""

from importlib import resources
from pathlib import Path

from vigia.workloads.coding.pipeline import NAME, pipeline


def samples() -> list[Path]:
    """The sample notes `vigia demo --coding` codes (synthetic: invented people and numbers)."""
    folder = Path(str(resources.files(__package__) / "samples"))
    return sorted(path for path in folder.iterdir() if path.suffix == ".txt")


__all__ = ["NAME", "pipeline", "samples"]
