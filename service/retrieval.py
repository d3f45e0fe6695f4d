"""Hybrid retrieval: dense (FAISS inner product over unit vectors) and BM25, fused by weighted
reciprocal rank; plus a LangChain ``BaseRetriever`` over the same search."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import bm25s
import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from .chunking import Chunk
from .embedding import Embedder
from .store import IndexSnapshot
from .text import STOPWORDS, Analyzer, related


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    dense_rank: int | None
    keyword_rank: int | None


class SearchIndex:
    """A loaded snapshot plus what is derived from it in memory: BM25 and term statistics.
    Unchanged once built (but for a memo of IDF look-ups), so concurrent searches need no lock."""

    def __init__(self, snapshot: IndexSnapshot, analyzer: Analyzer) -> None:
        self.snapshot = snapshot
        self.analyzer = analyzer
        texts = [c.text for c in snapshot.chunks]
        self._tokenizer = bm25s.tokenization.Tokenizer(
            stemmer=analyzer.stemmer, stopwords=list(STOPWORDS), lower=True
        )
        self._bm25 = bm25s.BM25()
        if texts:
            ids = self._tokenizer.tokenize(texts, return_as="ids", show_progress=False)
            self._bm25.index(ids, show_progress=False)
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(analyzer.terms(text)))
        n = max(len(texts), 1)
        self._idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        # A term never seen is as informative as the rarest possible one.
        self.unseen_idf = math.log(1 + (n + 0.5) / 0.5)
        # Terms in 40% or more of the chunks (the corpus's own topic words) identify nothing.
        common = 0.4 * n
        self.common_idf = math.log(1 + (n - common + 0.5) / (common + 0.5))
        self._kin_idf: dict[str, float] = {}

    def idf(self, term: str) -> float:
        """IDF of a stem, or of its closest relative in the corpus (korean -> korea)."""
        if term in self._idf:
            return self._idf[term]
        if term not in self._kin_idf:  # a scan of the vocabulary, so done once per unknown stem
            kin = [v for t, v in self._idf.items() if related(term, t)]
            self._kin_idf[term] = min(kin) if kin else self.unseen_idf
        return self._kin_idf[term]

    def dense(self, query: np.ndarray, k: int) -> list[int]:
        k = min(k, len(self.snapshot.chunks))
        if k == 0:
            return []
        _, rows = self.snapshot.vectors.search(query.reshape(1, -1).astype(np.float32), k)
        return [int(r) for r in rows[0] if r >= 0]

    def keyword(self, question: str, k: int) -> list[int]:
        k = min(k, len(self.snapshot.chunks))
        if k == 0:
            return []
        ids = self._tokenizer.tokenize([question], update_vocab=False, return_as="ids", show_progress=False)
        if not ids or not ids[0]:
            return []
        rows, scores = self._bm25.retrieve(ids, k=k, show_progress=False, n_threads=1)
        return [int(r) for r, s in zip(rows[0], scores[0]) if s > 0]


def fuse(rankings: list[tuple[list[int], float]], rrf_k: int) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion; ties broken by row for determinism."""
    scores: dict[int, float] = {}
    for rows, weight in rankings:
        for rank, row in enumerate(rows, start=1):
            scores[row] = scores.get(row, 0.0) + weight / (rrf_k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


class HybridRetriever:
    def __init__(
        self,
        embedder: Embedder,
        candidates: int = 50,
        rrf_k: int = 60,
        dense_weight: float = 1.0,
        keyword_weight: float = 1.0,
    ) -> None:
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight
        self.keyword_weight = keyword_weight

    def search(self, index: SearchIndex, question: str, query: np.ndarray, top_k: int) -> list[Hit]:
        depth = max(self.candidates, top_k)
        dense = index.dense(query, depth)
        keyword = index.keyword(question, depth)
        dense_rank = {row: r for r, row in enumerate(dense, start=1)}
        keyword_rank = {row: r for r, row in enumerate(keyword, start=1)}
        fused = fuse([(dense, self.dense_weight), (keyword, self.keyword_weight)], self.rrf_k)
        return [
            Hit(index.snapshot.chunks[row], score, dense_rank.get(row), keyword_rank.get(row))
            for row, score in fused[:top_k]
        ]


class FootnoteRetriever(BaseRetriever):
    """LangChain view of Footnote's search: chains built on LangChain get the same hybrid
    retrieval and exact offsets (``metadata['start']``/``['end']``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: HybridRetriever
    index: SearchIndex
    top_k: int = 5

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        vector = self.retriever.embedder.embed([query])[0]
        return [
            LCDocument(
                page_content=hit.chunk.text,
                metadata={
                    "source": hit.chunk.source, "chunk_id": hit.chunk.chunk_id,
                    "start": hit.chunk.start, "end": hit.chunk.end, "score": hit.score,
                },
            )
            for hit in self.retriever.search(self.index, query, vector, self.top_k)
        ]
