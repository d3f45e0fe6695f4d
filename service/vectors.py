"""The FAISS index over sentence vectors, chosen by size: exact search while a scan is cheap, an
inverted-file (IVF) index beyond that, or HNSW if asked. Every kind keeps the vectors themselves
(``reconstruct``), which the answerer and incremental re-indexing read back.

Inner product over unit vectors is cosine similarity in all three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

Kind = Literal["flat", "ivf", "hnsw"]


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
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    return "hnsw" if isinstance(index, faiss.IndexHNSW) else "flat"


def build(vectors: np.ndarray, dimension: int, spec: VectorIndexSpec) -> faiss.Index:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    kind = spec.kind_for(n)
    index: faiss.Index
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
    elif kind == "ivf" and n:
        # k-means wants ~39+ training points per list; the usual 4 x sqrt(n) lists otherwise.
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)
        index.train(vectors[np.sort(sample)])
        index.set_direct_map_type(faiss.DirectMap.Array)  # reconstruct(row)
    else:
        index = faiss.IndexFlatIP(dimension)
    if n:
        index.add(vectors)
    return index


def search(
    index: faiss.Index, query: np.ndarray, k: int, spec: VectorIndexSpec, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and rows of the ``k`` nearest vectors (rows -1 past the end), among ``allowed`` rows
    if given. With a filter, an approximate index searches in proportion more widely, so that
    about as many admitted vectors are seen as without one; a narrow filter becomes exact."""
    query = query.reshape(1, -1).astype(np.float32)
    kind = kind_of(index)
    selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
    widen = index.ntotal / max(len(allowed), 1) if allowed is not None else 1.0
    params: faiss.SearchParameters
    if kind == "ivf":
        params = faiss.SearchParametersIVF(sel=selector, nprobe=min(index.nlist, math.ceil(spec.nprobe * widen)))
    elif kind == "hnsw" and widen <= 16:
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(k, math.ceil(spec.ef_search * widen)))
    elif kind == "hnsw":  # HNSW's graph walk finds few members of a narrow filter; scan them instead
        scores, rows = faiss.downcast_index(index.storage).search(query, k, params=faiss.SearchParameters(sel=selector))
        return scores[0], rows[0]
    else:
        params = faiss.SearchParameters(sel=selector) if selector is not None else None
    scores, rows = index.search(query, k, params=params)
    return scores[0], rows[0]
