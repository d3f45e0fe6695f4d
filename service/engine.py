"""The one place Footnote's parts are wired together. The HTTP API, the CLI (and later Slack)
call only this."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .answering.extractive import NOT_COVERED, ExtractiveAnswerer
from .answering.generative import GenerativeAnswerer, LLMError, build_chat_model
from .answering.grounding import Grounder, cleaned_stream
from .documents import Document, load_bytes, load_documents, safe_name
from .embedding import Embedder, QueryBatcher, SentenceTransformerEmbedder
from .embedding_cache import CachedEmbedder
from .errors import DocumentNotFound, DocumentTooLarge, IndexMissing, IndexStateError, InvalidRequest
from .indexing import IndexReport, Progress, check_config, index_config, sync_index
from .models import Answer, DocumentDetail, DocumentSummary, Filters, Health, Mode, Passage, Turn
from .onnx_embedding import OnnxEmbedder
from .prompts import load_prompts
from .reranking import CrossEncoderReranker, Reranker
from .retrieval import Hit, HybridRetriever, SearchIndex
from .settings import Settings
from .store import IndexConfig, IndexSnapshot, IndexStore, write_atomic
from .text import Analyzer

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
MAX_TOP_K = 50


class Engine:
    def __init__(
        self, settings: Settings, embedder: Embedder, reranker: Reranker | None = None,
        generator: GenerativeAnswerer | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        # Only documents go through the cache: questions are rarely repeated, and a disk
        # look-up would sit on every question's path.
        self._ingest_embedder: Embedder = (
            CachedEmbedder(embedder, settings.embedding_cache_dir) if settings.embedding_cache_dir else embedder
        )
        self.reranker = reranker
        self.queries = QueryBatcher(embedder)
        # One writer at a time in this process (the store's file lock covers other processes).
        self._write_lock = threading.Lock()
        self.store = IndexStore(settings.index_dir)
        self.analyzer = Analyzer()
        self.retriever = HybridRetriever(
            embedder, settings.candidates, settings.dense_weight, settings.keyword_weight
        )
        self.answerer = ExtractiveAnswerer(self.analyzer, settings.answer_threshold, settings.max_answer_sentences)
        self.generator = generator
        self.grounder = Grounder(self.analyzer, embedder, settings.support_threshold)
        # Replaced whole (never mutated) when the index changes, so readers need no lock.
        self._index: SearchIndex | None = None
        self._version: tuple[int, int] | None = None
        self._reload_lock = threading.Lock()

    # -- the index ---------------------------------------------------------------------------

    def _use(self, snapshot: IndexSnapshot) -> None:
        self._index = SearchIndex(
            snapshot, self.analyzer, self.settings.bm25_k1, self.settings.bm25_b, self.settings.vector_spec()
        )
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
                self.store, self._ingest_embedder, self._config(), documents, rebuild, progress,
                vectors=self.settings.vector_spec(),
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
                progress=progress, keep_others=indexed is not None, vectors=self.settings.vector_spec(),
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
                self.store, self._ingest_embedder, self._config(), [], keep_others=True, remove=[source],
                vectors=self.settings.vector_spec(),
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

    def _validate(self, question: str, top_k: int, filters: Filters | None) -> None:
        if not question.strip():
            raise InvalidRequest("question must not be empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidRequest(f"question must be at most {MAX_QUESTION_CHARS} characters, got {len(question)}")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequest(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        if filters and filters.source:
            unknown = sorted(set(filters.source) - self.index.snapshot.documents.keys())
            if unknown:
                raise InvalidRequest(f"filters.source names documents not in the index: {', '.join(unknown)}")

    def _retrieve(
        self, question: str, top_k: int, filters: Filters | None
    ) -> tuple[SearchIndex, np.ndarray, list[Hit]]:
        index = self.index
        query = self.queries.submit(question)  # embedded while the keyword side is scored
        if self.reranker is None:
            hits = self.retriever.search(index, question, query, top_k, filters)
            return index, query.result(), hits
        pool = self.retriever.search(index, question, query, max(top_k, self.settings.rerank_depth), filters)
        scores = self.reranker.score(question, [h.chunk.text for h in pool])
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:top_k]
        return index, query.result(), [replace(pool[i], score=scores[i]) for i in order]

    def search(self, question: str, top_k: int = 5, filters: Filters | None = None) -> list[Passage]:
        """The passages for a question, best first, without composing an answer."""
        self._validate(question, top_k, filters)
        index, _, hits = self._retrieve(question, top_k, filters)
        return _passages(index, hits)

    def ask(
        self, question: str, top_k: int = 5, filters: Filters | None = None,
        mode: Mode | None = None, history: Sequence[Turn] = (),
    ) -> Answer:
        for event in self.ask_stream(question, top_k, filters, mode, history):
            if isinstance(event, Answer):
                return event
        raise AssertionError("ask_stream ends with its Answer")

    def ask_stream(
        self, question: str, top_k: int = 5, filters: Filters | None = None,
        mode: Mode | None = None, history: Sequence[Turn] = (),
    ) -> Iterator[str | Answer]:
        """The answer's text as it is produced, then the checked Answer (whose ``answer`` is the
        one to keep: markers naming no passage are gone from it). Extractive answers come whole.
        When the LLM fails, the extractive answer is given, with ``fallback_reason``."""
        self._validate(question, top_k, filters)
        mode = mode or self.settings.answer_mode
        if mode == "llm" and self.generator is None:
            raise InvalidRequest("mode 'llm' needs an LLM endpoint: set FOOTNOTE_LLM_BASE_URL")
        history = list(history)[-self.settings.max_history_turns:] if self.settings.max_history_turns else []
        if mode == "extractive" or self.generator is None:
            answer = self._extractive(question, *self._retrieve(question, top_k, filters))
            yield answer.answer
            yield answer
            return
        standalone: str | None = None
        try:
            if history:
                standalone = self.generator.condense(history, question)
        except LLMError as exc:
            log.warning("LLM mode: %s; answering extractively", exc)
            answer = self._extractive(question, *self._retrieve(question, top_k, filters))
            yield answer.answer
            yield answer.model_copy(update={"fallback_reason": str(exc)})
            return
        index, query, hits = self._retrieve(standalone or question, top_k, filters)
        passages = _passages(index, hits)
        if not hits:
            yield NOT_COVERED
            yield Answer(question=question, answer=NOT_COVERED, answerable=False, citations=[], passages=[],
                         mode="llm", standalone_question=standalone)
            return
        raw: list[str] = []  # the model's own text, which the check reads (dropped markers and all)

        def recorded(tokens: Iterator[str]) -> Iterator[str]:
            for token in tokens:
                raw.append(token)
                yield token

        try:
            messages = self.generator.messages(standalone or question, hits, index.snapshot.documents)
            yield from cleaned_stream(recorded(self.generator.stream(messages)), hits)
        except LLMError as exc:
            log.warning("LLM mode: %s; answering extractively", exc)
            answer = self._extractive(question, index, query, hits)
            yield answer.model_copy(update={"fallback_reason": str(exc), "standalone_question": standalone})
            return
        checked = self.grounder.check("".join(raw), index, hits)
        yield Answer(
            question=question, answer=checked.text, answerable=checked.answerable, citations=checked.citations,
            passages=passages, mode="llm", standalone_question=standalone, unsupported=checked.unsupported,
            dropped_markers=checked.dropped_markers,
        )

    def _extractive(self, question: str, index: SearchIndex, query: np.ndarray, hits: list[Hit]) -> Answer:
        text, citations = self.answerer.answer(index, question, query, hits)
        return Answer(
            question=question, answer=text, answerable=bool(citations), citations=citations,
            passages=_passages(index, hits),
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
    embedder: Embedder
    if settings.embedding_backend == "torch":
        embedder = SentenceTransformerEmbedder(settings.embedding_model, settings.device, settings.embed_batch_size)
    else:
        embedder = OnnxEmbedder(settings.embedding_model, settings.model_cache_dir / "models",
                                settings.embedding_backend == "onnx-int8", settings.embed_batch_size)
    reranker = CrossEncoderReranker(settings.reranker, settings.device) if settings.reranker else None
    return Engine(settings, embedder, reranker, build_generator(settings))


def build_generator(settings: Settings) -> GenerativeAnswerer | None:
    """The LLM answerer when an endpoint is configured (no connection is made here)."""
    if not settings.llm_base_url:
        return None
    chat = build_chat_model(
        settings.llm_base_url, settings.llm_model,
        settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        settings.llm_timeout, settings.llm_max_retries, settings.llm_temperature, settings.llm_max_tokens,
    )
    return GenerativeAnswerer(chat, load_prompts(settings.prompts_dir), settings.llm_timeout)
