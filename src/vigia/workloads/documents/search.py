"""Hybrid search over a tenant's documents: keyword ranking from the database's full-text
index fused with vector similarity by reciprocal rank fusion (Cormack et al., 2009), so that
a question in other words and an exact reference number both find their document.

Vectors are compared by brute force over a matrix each process keeps per tenant: a few
milliseconds for 10^5 chunks with NumPy. The matrix is brought up to date before each
search from the store's counters (only vectors written since are read; a deletion reloads
it), so no index is ever rebuilt by hand.
"""

from __future__ import annotations

import html
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vigia.store.documents import DocumentFilter, DocumentStore, VectorRows
from vigia.workloads.documents.cleaning import TOKEN, fold
from vigia.workloads.documents.embeddings import DIMENSION, Embedder
from vigia.workloads.documents.metadata import STOPWORDS

#: Words left out of keyword queries (folded, as the index holds them).
FUNCTION_WORDS = frozenset(fold(word) for word in STOPWORDS)
#: Reciprocal rank fusion's constant: results ranked r get 1 / (RRF_K + r).
RRF_K = 60
VECTOR_CANDIDATES = 50
#: Filters whose rows a tenant's matrix remembers.
MASKS_KEPT = 64
KEYWORD_CANDIDATES = 50
SNIPPET = 240
#: Query vectors a searcher remembers (a query asked again is not encoded again).
QUERY_VECTORS_KEPT = 1024


def query_terms(query: str) -> list[list[str]]:
    """A query as phrases of tokens: each word of the query one phrase (a reference number
    such as "123-2025-UGEL.09" is one phrase of its parts, matched in order). Function words
    ("de", "the", "con") are left out, unless the query has nothing else: they are in every
    chunk, and would make every chunk a keyword match."""
    phrases = [tokens for word in fold(query).split() if (tokens := TOKEN.findall(word))]
    content = [phrase for phrase in phrases if len(phrase) > 1 or phrase[0] not in FUNCTION_WORDS]
    return content or phrases


@dataclass(frozen=True, slots=True)
class Result:
    document_id: str
    page: int
    chunk_id: int
    score: float
    keyword_score: float | None
    vector_score: float | None
    snippet: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "page": self.page,
            "chunk_id": self.chunk_id,
            "score": round(self.score, 6),
            "keyword_score": None if self.keyword_score is None else round(self.keyword_score, 6),
            "vector_score": None if self.vector_score is None else round(self.vector_score, 6),
            "snippet": self.snippet,
        }


@dataclass
class _TenantVectors:
    seq: int = 0
    deletions: int = -1
    ids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    matrix: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, DIMENSION), dtype=np.float32))
    document_ids: NDArray[np.object_] = field(default_factory=lambda: np.zeros(0, dtype=object))
    doc_types: NDArray[np.object_] = field(default_factory=lambda: np.zeros(0, dtype=object))
    languages: NDArray[np.object_] = field(default_factory=lambda: np.zeros(0, dtype=object))
    doc_dates: NDArray[np.object_] = field(default_factory=lambda: np.zeros(0, dtype=object))
    job_ids: NDArray[np.object_] = field(default_factory=lambda: np.zeros(0, dtype=object))
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Rows kept by the filters searched with, by filter.
    masks: dict[tuple[str | None, ...], NDArray[np.bool_]] = field(default_factory=dict)

    def merge(self, rows: VectorRows) -> None:
        """Add or replace (a re-embedded chunk) the rows read."""
        if not rows.chunk_ids:
            return
        self.masks = {}
        new_ids = np.asarray(rows.chunk_ids, dtype=np.int64)
        vectors = np.frombuffer(b"".join(rows.vectors), dtype="<f4").reshape(len(rows.chunk_ids), -1)
        keep = ~np.isin(self.ids, new_ids)
        self.ids = np.concatenate([self.ids[keep], new_ids])
        self.matrix = np.vstack([self.matrix[keep], vectors.astype(np.float32)])
        for name in ("document_ids", "doc_types", "languages", "doc_dates", "job_ids"):
            added = np.empty(len(rows.chunk_ids), dtype=object)
            added[:] = getattr(rows, name)
            setattr(self, name, np.concatenate([getattr(self, name)[keep], added]))
        self.seq = max(self.seq, *rows.seqs)

    def mask(self, where: DocumentFilter) -> NDArray[np.bool_] | None:
        """The rows ``where`` keeps (None: all of them), remembered until the rows change."""
        key = (where.doc_type, where.language, where.job_id, where.date_from, where.date_to)
        if key == (None, None, None, None, None):
            return None
        mask = self.masks.get(key)
        if mask is None:
            mask = np.ones(len(self.ids), dtype=bool)
            for values, wanted in ((self.doc_types, where.doc_type), (self.languages, where.language),
                                   (self.job_ids, where.job_id)):  # fmt: skip
                if wanted is not None:
                    mask &= values == wanted
            if where.date_from is not None or where.date_to is not None:
                dates = np.array(["" if value is None else value for value in self.doc_dates], dtype=str)
                mask &= dates != ""
                if where.date_from is not None:
                    mask &= dates >= where.date_from
                if where.date_to is not None:
                    mask &= dates <= where.date_to
            if len(self.masks) >= MASKS_KEPT:
                self.masks.clear()
            self.masks[key] = mask
        return mask


class Searcher:
    """Search for one process: its per-tenant vector matrices and the embedder it queries with."""

    def __init__(self, store: DocumentStore, embedder: Callable[[], Embedder | None]) -> None:
        self.store = store
        self._embedder = embedder
        self._tenants: dict[str, _TenantVectors] = {}
        self._guard = threading.Lock()
        self._queries: OrderedDict[tuple[str, str], NDArray[np.float32]] = OrderedDict()
        # The keyword query runs here while this thread encodes the query: SQLite, PostgreSQL's
        # driver and PyTorch all let go of the GIL.
        self._keywords = ThreadPoolExecutor(max_workers=4, thread_name_prefix="vigia-keywords")

    def _vectors(self, tenant: str) -> _TenantVectors:
        with self._guard:
            held = self._tenants.setdefault(tenant, _TenantVectors())
        with held.lock:
            generation, deletions = self.store.index_state(tenant)
            if deletions != held.deletions:
                fresh = _TenantVectors()
                fresh.merge(self.store.vectors_after(tenant, 0))
                fresh.deletions = deletions
                fresh.seq = max(fresh.seq, 0)
                held.ids, held.matrix, held.seq, held.deletions = fresh.ids, fresh.matrix, fresh.seq, deletions
                held.masks = {}
                for name in ("document_ids", "doc_types", "languages", "doc_dates", "job_ids"):
                    setattr(held, name, getattr(fresh, name))
            elif generation > held.seq:
                held.merge(self.store.vectors_after(tenant, held.seq))
        return held

    def query_vector(self, embedder: Embedder, query: str) -> NDArray[np.float32]:
        """The query's unit vector: remembered, or encoded."""
        key = (embedder.identity, query)
        with self._guard:
            vector = self._queries.get(key)
            if vector is not None:
                self._queries.move_to_end(key)
                return vector
        vector = embedder.encode_one(query)
        with self._guard:
            self._queries[key] = vector
            while len(self._queries) > QUERY_VECTORS_KEPT:
                self._queries.popitem(last=False)
        return vector

    def vector_ranking(self, where: DocumentFilter, query: str, limit: int) -> list[tuple[int, float]]:
        embedder = self._embedder()
        if embedder is None:
            return []
        held = self._vectors(where.tenant)
        if not len(held.ids):
            return []
        vector = self.query_vector(embedder, query)
        with held.lock:  # a merge replaces the arrays: read one consistent set
            ids, matrix, mask = held.ids, held.matrix, held.mask(where)
        scores = matrix @ vector
        if mask is not None:
            scores[~mask] = -np.inf
        count = min(limit, len(ids) if mask is None else int(np.count_nonzero(mask)))
        if count == 0:
            return []
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(ids[index]), float(scores[index])) for index in top]

    def search(self, where: DocumentFilter, query: str, *, k: int = 10) -> list[Result]:
        terms = query_terms(query)
        keywords = self._keywords.submit(self.store.keyword_search, where, terms, KEYWORD_CANDIDATES)
        vector = self.vector_ranking(where, query, VECTOR_CANDIDATES)
        keyword = keywords.result()
        fused: dict[int, float] = {}
        for ranking in (keyword, vector):
            for rank, (chunk_id, _) in enumerate(ranking, start=1):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
        keyword_scores: dict[int, float] = dict(keyword)
        vector_scores: dict[int, float] = dict(vector)
        best = sorted(fused, key=lambda chunk_id: (-fused[chunk_id], chunk_id))[:k]
        chunks = self.store.chunks_by_id(best)
        words = [token for phrase in terms for token in phrase]
        return [
            Result(
                document_id=chunks[chunk_id].document_id,
                page=chunks[chunk_id].page_start,
                chunk_id=chunk_id,
                score=fused[chunk_id],
                keyword_score=keyword_scores.get(chunk_id),
                vector_score=vector_scores.get(chunk_id),
                snippet=snippet(chunks[chunk_id].text, words),
            )
            for chunk_id in best
            if chunk_id in chunks
        ]


def snippet(text: str, words: Sequence[str], width: int = SNIPPET) -> str:
    """A window of ``text`` around the first query word it holds, HTML-escaped, each query
    word found marked with <mark>…</mark>."""
    folded = fold(text)
    if len(folded) != len(text):  # a character folded into several: offsets differ, fold per char
        folded = "".join(fold(char)[:1] or " " for char in text)
    spans: list[tuple[int, int]] = []
    for word in set(words):
        if len(word) < 2 and not word.isdigit():
            continue
        for match in re.finditer(rf"(?<![0-9a-z]){re.escape(word)}(?![0-9a-z])", folded):
            spans.append(match.span())
    spans.sort()
    centre = spans[0][0] if spans else 0
    start = max(0, centre - width // 3)
    if start:
        start = text.find(" ", start) + 1 or start
    end = min(len(text), start + width)
    if end < len(text):
        end = text.rfind(" ", start, end) if text.rfind(" ", start, end) > start else end
    pieces = []
    cursor = start
    for span_start, span_end in spans:
        if span_start < cursor or span_end > end:
            continue
        pieces.append(html.escape(text[cursor:span_start]))
        pieces.append("<mark>" + html.escape(text[span_start:span_end]) + "</mark>")
        cursor = span_end
    pieces.append(html.escape(text[cursor:end]))
    return ("…" if start > 0 else "") + "".join(pieces).replace("\n", " ") + ("…" if end < len(text) else "")
