"""The one place Footnote's parts are wired together. The HTTP API, the CLI (and later Slack)
call only this."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .answering.extractive import ExtractiveAnswerer
from .documents import Document, load_bytes, load_documents, safe_name
from .embedding import Embedder, SentenceTransformerEmbedder
from .embedding_cache import CachedEmbedder
from .errors import DocumentNotFound, DocumentTooLarge, IndexMissing, IndexStateError, InvalidRequest
from .indexing import IndexReport, Progress, check_config, index_config, sync_index
from .models import Answer, DocumentDetail, DocumentSummary, Filters, Health, Passage
from .reranking import CrossEncoderReranker, Reranker
from .retrieval import Hit, HybridRetriever, SearchIndex
from .settings import Settings
from .store import IndexConfig, IndexSnapshot, IndexStore, write_atomic
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
        # One writer at a time in this process (the store's file lock covers other processes).
        self._write_lock = threading.Lock()
        self.store = IndexStore(settings.index_dir)
        self.analyzer = Analyzer()
        self.retriever = HybridRetriever(
            embedder, settings.candidates, settings.dense_weight, settings.keyword_weight
        )
        self.answerer = ExtractiveAnswerer(self.analyzer, settings.answer_threshold, settings.max_answer_sentences)
        # Replaced whole (never mutated) when the index changes, so readers need no lock.
        self._index: SearchIndex | None = None
        self._version: tuple[int, int] | None = None
        self._reload_lock = threading.Lock()

    # -- the index ---------------------------------------------------------------------------

    def _use(self, snapshot: IndexSnapshot) -> None:
        self._index = SearchIndex(snapshot, self.analyzer, self.settings.bm25_k1, self.settings.bm25_b)
        self._version = self.store.version()

    @property
    def index(self) -> SearchIndex:
        """The current index, reloaded when another process (say `footnote index` beside a running
        server) has saved a newer one: a stat of the manifest per call."""
        if self._index is None:
            self.load()
        elif self.store.version() != self._version and self._reload_lock.acquire(blocking=False):
            try:
                self.load()
            except IndexStateError as exc:  # keep answering from what is loaded
                log.warning("index changed on disk but cannot be loaded: %s", exc)
                self._version = self.store.version()
            finally:
                self._reload_lock.release()
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

    def sync(self, rebuild: bool = False, progress: Progress | None = None) -> IndexReport:
        """Make the index hold exactly the documents of the corpus folder."""
        documents = load_documents([self.settings.corpus_dir])
        with self._write_lock:
            self.embedder.warm_up()
            snapshot, report = sync_index(
                self.store, self._ingest_embedder, self._config(), documents, rebuild, progress
            )
            self._use(snapshot)
        log.debug("index: %s", report.summary())
        return report

    def add(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> IndexReport:
        """Add or replace documents given as (file name, bytes). Every file is read and checked
        before anything changes; the call returns once the new index is durably saved."""
        documents: dict[str, tuple[bytes, Document]] = {}
        for raw_name, data in files:
            name = safe_name(raw_name)
            if len(data) > self.settings.max_upload_bytes:
                raise DocumentTooLarge(f"{name}: {len(data)} bytes, over the limit of {self.settings.max_upload_bytes}")
            if name in documents:
                raise InvalidRequest(f"two files would both be named {name!r}")
            documents[name] = (data, load_bytes(name, data))
        with self._write_lock:
            indexed = self.index.snapshot.documents if self.store.exists() else None
            by_hash = {d.sha256: s for s, d in (indexed or {}).items()}
            duplicates = {
                name: by_hash[doc.sha256] for name, (_, doc) in documents.items()
                if by_hash.get(doc.sha256, name) != name
            }
            fresh = {n: v for n, v in documents.items() if n not in duplicates}
            # The corpus copy first: were the process to die before the index is saved, the next
            # sync of the corpus picks the file up; an acknowledged document is in both.
            for name, (data, _) in fresh.items():
                write_atomic(self._corpus_path(name), data)
            self.embedder.warm_up()
            # With no index yet, build it from the whole corpus, the new files included.
            given = [doc for _, doc in fresh.values()] if indexed is not None else load_documents([self.settings.corpus_dir])
            snapshot, report = sync_index(
                self.store, self._ingest_embedder, self._config(), given,
                progress=progress, keep_others=indexed is not None,
            )
            self._use(snapshot)
        report.duplicates = duplicates
        return report

    def delete(self, source: str) -> IndexReport:
        """Remove a document from the index and from the corpus folder."""
        with self._write_lock:
            if source not in self.index.snapshot.documents:
                raise DocumentNotFound(f"no indexed document named {source!r}")
            # The corpus copy first, so a crash in between cannot bring the document back.
            self._corpus_path(source).unlink(missing_ok=True)
            snapshot, report = sync_index(
                self.store, self._ingest_embedder, self._config(), [], keep_others=True, remove=[source]
            )
            self._use(snapshot)
        return report

    def _corpus_path(self, name: str) -> Path:
        root = self.settings.corpus_dir.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root):  # safe_name already prevents this; never trust one check
            raise InvalidRequest(f"file name {name!r} leaves the corpus folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

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
        index, _, hits = self._retrieve(question, top_k, filters)
        return _passages(index, hits)

    def ask(self, question: str, top_k: int = 5, filters: Filters | None = None) -> Answer:
        index, query, hits = self._retrieve(question, top_k, filters)
        text, citations = self.answerer.answer(index, question, query, hits)
        passages = _passages(index, hits)
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


def _passages(index: SearchIndex, hits: list[Hit]) -> list[Passage]:
    docs = index.snapshot.documents
    return [
        Passage(
            rank=rank, source=h.chunk.source, chunk_id=h.chunk.chunk_id, text=h.chunk.text,
            start=h.chunk.start, end=h.chunk.end, page=docs[h.chunk.source].page_at(h.chunk.start),
            score=round(h.score, 6),
        )
        for rank, h in enumerate(hits, start=1)
    ]


def build_engine(settings: Settings) -> Engine:
    """An engine with the configured embedder; nothing is loaded until first use or ``load``."""
    embedder = SentenceTransformerEmbedder(settings.embedding_model, settings.device, settings.embed_batch_size)
    reranker = CrossEncoderReranker(settings.reranker, settings.device) if settings.reranker else None
    return Engine(settings, embedder, reranker)
