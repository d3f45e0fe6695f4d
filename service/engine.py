"""The one place Footnote's parts are wired together. The HTTP API, the CLI (and later Slack)
call only this."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .answering.extractive import ExtractiveAnswerer
from .documents import load_documents
from .embedding import Embedder, SentenceTransformerEmbedder
from .embedding_cache import CachedEmbedder
from .errors import DocumentNotFound, IndexMissing, InvalidRequest
from .indexing import IndexReport, Progress, check_config, index_config, sync_index
from .models import Answer, DocumentDetail, DocumentSummary, Filters, Health, Passage
from .reranking import CrossEncoderReranker, Reranker
from .retrieval import Hit, HybridRetriever, SearchIndex
from .settings import Settings
from .store import IndexConfig, IndexSnapshot, IndexStore
from .text import Analyzer

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
MAX_TOP_K = 50


class Engine:
    def __init__(self, settings: Settings, embedder: Embedder, reranker: Reranker | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        # Only documents go through the cache: questions are rarely repeated, and a disk
        # look-up would sit on every question's path.
        self._ingest_embedder: Embedder = (
            CachedEmbedder(embedder, settings.embedding_cache_dir) if settings.embedding_cache_dir else embedder
        )
        self.reranker = reranker
        self.store = IndexStore(settings.index_dir)
        self.analyzer = Analyzer()
        self.retriever = HybridRetriever(
            embedder, settings.candidates, settings.dense_weight, settings.keyword_weight
        )
        self.answerer = ExtractiveAnswerer(self.analyzer, settings.answer_threshold, settings.max_answer_sentences)
        # Replaced whole (never mutated) when the index changes, so readers need no lock.
        self._index: SearchIndex | None = None

    # -- the index ---------------------------------------------------------------------------

    def _use(self, snapshot: IndexSnapshot) -> None:
        self._index = SearchIndex(snapshot, self.analyzer, self.settings.bm25_k1, self.settings.bm25_b)

    @property
    def index(self) -> SearchIndex:
        if self._index is None:
            self.load()
        assert self._index is not None
        return self._index

    def load(self) -> None:
        """Load the index as built; refuse one built with other settings."""
        snapshot = self.store.load()
        self.embedder.warm_up()
        check_config(snapshot.config, self._config())
        self._use(snapshot)

    def _config(self) -> IndexConfig:
        return index_config(self.embedder, self.settings.chunk_size, self.settings.chunk_overlap)

    def sync(
        self, paths: Sequence[Path] | None = None, rebuild: bool = False, progress: Progress | None = None
    ) -> IndexReport:
        """Make the index hold exactly the documents under ``paths`` (default: the corpus)."""
        documents = load_documents(paths or [self.settings.corpus_dir])
        self.embedder.warm_up()
        snapshot, report = sync_index(self.store, self._ingest_embedder, self._config(), documents, rebuild, progress)
        self._use(snapshot)
        log.debug("index: %s", report.summary())
        return report

    # -- questions ---------------------------------------------------------------------------

    def _retrieve(
        self, question: str, top_k: int, filters: Filters | None
    ) -> tuple[SearchIndex, np.ndarray, list[Hit]]:
        if not question.strip():
            raise InvalidRequest("question must not be empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidRequest(f"question must be at most {MAX_QUESTION_CHARS} characters, got {len(question)}")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequest(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        index = self.index
        if filters and filters.source:
            unknown = sorted(set(filters.source) - index.snapshot.documents.keys())
            if unknown:
                raise InvalidRequest(f"filters.source names documents not in the index: {', '.join(unknown)}")
        query = self.embedder.embed([question])[0]
        if self.reranker is None:
            return index, query, self.retriever.search(index, question, query, top_k, filters)
        pool = self.retriever.search(index, question, query, max(top_k, self.settings.rerank_depth), filters)
        scores = self.reranker.score(question, [h.chunk.text for h in pool])
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:top_k]
        return index, query, [replace(pool[i], score=scores[i]) for i in order]

    def search(self, question: str, top_k: int = 5, filters: Filters | None = None) -> list[Passage]:
        """The passages for a question, best first, without composing an answer."""
        _, _, hits = self._retrieve(question, top_k, filters)
        return _passages(hits)

    def ask(self, question: str, top_k: int = 5, filters: Filters | None = None) -> Answer:
        index, query, hits = self._retrieve(question, top_k, filters)
        text, citations = self.answerer.answer(index, question, query, hits)
        passages = _passages(hits)
        return Answer(
            question=question, answer=text,
            answerable=bool(citations), citations=citations, passages=passages,
        )

    # -- documents ---------------------------------------------------------------------------

    def documents(self) -> list[DocumentSummary]:
        snapshot = self.index.snapshot
        counts = snapshot.chunk_counts()
        return [
            DocumentSummary(
                source=d.source, title=d.title, date=d.date, chunks=counts[d.source],
                sha256=d.sha256, metadata=d.metadata,
            )
            for d in snapshot.documents.values()
        ]

    def document(self, source: str) -> DocumentDetail:
        snapshot = self.index.snapshot
        doc = snapshot.documents.get(source)
        if doc is None:
            raise DocumentNotFound(f"no indexed document named {source!r}")
        return DocumentDetail(
            source=doc.source, title=doc.title, date=doc.date, chunks=snapshot.chunk_counts()[source],
            sha256=doc.sha256, metadata=doc.metadata, text=doc.text,
        )

    def health(self) -> Health:
        if self._index is None:
            raise IndexMissing("index not loaded yet")
        snapshot = self._index.snapshot
        return Health(
            status="ok", documents=len(snapshot.documents), chunks=len(snapshot.chunks),
            model=self.embedder.name,
        )


def _passages(hits: list[Hit]) -> list[Passage]:
    return [
        Passage(
            rank=rank, source=h.chunk.source, chunk_id=h.chunk.chunk_id, text=h.chunk.text,
            start=h.chunk.start, end=h.chunk.end, score=round(h.score, 6),
        )
        for rank, h in enumerate(hits, start=1)
    ]


def build_engine(settings: Settings) -> Engine:
    """An engine with the configured embedder; nothing is loaded until first use or ``load``."""
    embedder = SentenceTransformerEmbedder(settings.embedding_model, settings.device, settings.embed_batch_size)
    reranker = CrossEncoderReranker(settings.reranker, settings.device) if settings.reranker else None
    return Engine(settings, embedder, reranker)
