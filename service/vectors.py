"""FAISS indexes over sentence vectors, keyed by sentence id, chosen by size: exact search while a
scan is cheap, an inverted-file (IVF) index beyond that, or HNSW if asked. The vectors themselves
live in the store's table; these indexes only find them.

Inner product over unit vectors is cosine similarity in all three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import faiss
import numpy as np

Kind = Literal["flat", "ivf", "hnsw"]
# faiss's bundled stubs predate search parameters and selectors; those calls go through this.
_faiss: Any = faiss


@dataclass(frozen=True)
class VectorIndexSpec:
    kind: Literal["auto", "flat", "ivf", "hnsw"] = "auto"
    exact_limit: int = 200_000
    """``auto`` keeps exact search up to this many vectors."""
    nprobe: int = 128
    """IVF lists searched per question (of about 4 x sqrt(n))."""
    hnsw_m: int = 32
    ef_search: int = 256
    """HNSW candidate list per question."""

    def kind_for(self, n: int) -> Kind:
        if self.kind != "auto":
            return self.kind
        return "flat" if n <= self.exact_limit else "ivf"


def kind_of(index: faiss.Index) -> Kind:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"


def nlist_for(n: int) -> int:
    # k-means wants ~39+ training points per list; the usual 4 x sqrt(n) lists otherwise.
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def empty_index(kind: Kind, dimension: int, spec: VectorIndexSpec, total: int, sample: np.ndarray) -> faiss.Index:
    """An index to ``add_with_ids`` ``total`` vectors into; IVF is trained on ``sample`` of them."""
    if kind == "ivf" and len(sample):
        nlist = min(nlist_for(total), max(1, len(sample) // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return index
    if kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dimension, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        return faiss.IndexIDMap2(hnsw)
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def training_size(total: int) -> int:
    """How many vectors an IVF index over ``total`` is trained on."""
    return min(total, 64 * nlist_for(total))


def build(vectors: np.ndarray, spec: VectorIndexSpec, ids: np.ndarray | None = None) -> faiss.Index:
    """An index of the kind ``spec`` picks for this many vectors, ids ``0..n-1`` unless given."""
    n = len(vectors)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    sample = vectors[np.sort(np.random.default_rng(0).choice(n, training_size(n), replace=False))] if n else vectors
    index = empty_index(spec.kind_for(n), vectors.shape[1], spec, n, sample)
    if n:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
    return index


def flat(ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, np.int64))
    return index


def search(
    index: faiss.Index, query: np.ndarray, k: int, spec: VectorIndexSpec,
    selector: faiss.IDSelector | None = None, widen: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and ids of the ``k`` nearest vectors (ids -1 past the end), among the ids
    ``selector`` admits. With a filter admitting 1/``widen`` of the vectors, an approximate index
    searches that much more widely, so that about as many admitted vectors are seen as without
    one; a narrow filter becomes an exact search of the IVF lists."""
    if index.ntotal == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    query = query.reshape(1, -1).astype(np.float32)
    kind = kind_of(index)
    params: Any
    if kind == "ivf":
        nlist = _faiss.downcast_index(index).nlist
        params = _faiss.SearchParametersIVF(sel=selector, nprobe=min(nlist, math.ceil(spec.nprobe * widen)))
    elif kind == "hnsw":
        params = _faiss.SearchParametersHNSW(sel=selector, efSearch=max(k, math.ceil(spec.ef_search * min(widen, 64))))
    else:
        params = _faiss.SearchParameters(sel=selector) if selector is not None else None
    scores, ids = index.search(query, min(k, index.ntotal), params=params)
    return scores[0], ids[0]
