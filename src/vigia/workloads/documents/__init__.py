"""Document ingestion and semantic search (`document_ingest`)."""

from importlib import resources
from pathlib import Path

from vigia.workloads.documents.pipeline import NAME, pipeline


def samples() -> list[Path]:
    """The sample documents `vigia demo --documents` ingests (made by tests/document_corpus.py)."""
    folder = Path(str(resources.files(__package__) / "samples"))
    return sorted(path for path in folder.iterdir() if path.suffix in (".pdf", ".png", ".jpg", ".tif"))


__all__ = ["NAME", "pipeline", "samples"]
