"""The one place Footnote's parts are wired together (``build_engine``), and the engine the faces
call: a facade over the live index (open, version, reload), the document writer (sync, add,
delete) and the asker (retrieval and answers)."""

from __future__ import annotations

import logging
import os
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .answering import Answerer
from .answering.decision import DecisionModel
from .answering.extractive import NOT_COVERED, ExtractiveAnswerer
from .answering.generative import GenerativeAnswerer, LLMError, build_chat_model
from .answering.grounding import Grounder, cleaned_stream
from .database import Database
from .documents import Document, discover, load_bytes, read_document, reread, safe_name
from .embedded_store import EmbeddedStore
from .embedding import Embedder, QueryBatcher, SentenceTransformerEmbedder
from .embedding_cache import CachedEmbedder
from .errors import (
    CorpusError,
    DocumentNotFound,
    DocumentTooLarge,
    IndexCorrupt,
    IndexMismatch,
    IndexMissing,
    IndexStateError,
    InvalidRequest,
)
from .extraction import Budget, Extractor
from .feedback import FeedbackStore, PostgresFeedback, PostgresSeenKeys, SeenKeys, SqliteFeedback, SqliteSeenKeys
from .indexing import IndexReport, Progress, check_config, check_size, index_config, prepare, read_by_older_reader
from .metrics import Metrics
from .migration import migrate_legacy
from .models import (
    Answer,
    DocumentDetail,
    DocumentSummary,
    Filters,
    Final,
    Health,
    Mode,
    Passage,
    StreamEvent,
    Token,
    Turn,
)
from .onnx_embedding import OnnxEmbedder
from .postgres_store import PostgresStore
from .prompts import load_prompts
from .reranking import CrossEncoderReranker, Reranker
from .retrieval import HybridRetriever, Retrieval, SearchIndex, full_list_scale
from .settings import Settings
from .store import FileStamp, IndexConfig, Store, fsync_dir
from .text import Analyzer

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
# Distinct search terms a question may use: each is looked up in the index, and a natural
# question has a few dozen at most; a pasted page would cost hundreds of look-ups.
MAX_QUESTION_TERMS = 64
MAX_TOP_K = 50
# Documents embedded and committed together by a sync: a crash loses at most one batch's work.
SYNC_BATCH = 256


class LiveIndex:
    """The store as questions see it: opened on first use, and a fresh view whenever any process
    has committed a write (a version read per question)."""

    def __init__(self, store: Store, analyzer: Analyzer, config: IndexConfig, directory: Path) -> None:
        self.store = store
        self.analyzer = analyzer
        self.config = config
        self.directory = directory
        self._view: SearchIndex | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._view is not None

    def open(self, progress: Progress | None = None) -> None:
        """Open the index as built (upgrading an older format in place); refuse one built with
        other settings."""
        with self._lock:
            if not self.store.shared and not self.store.exists() and migrate_legacy(self.directory, self.store, progress):
                log.info("index in %s upgraded to the current format", self.directory)
            found = self.store.open()
            if read_by_older_reader(found, self.config):
                self._reread()
                found = self.config
            check_config(found, self.config)
            self._view = SearchIndex(self.store, self.analyzer, self.store.version())

    def _reread(self) -> None:
        began = time.perf_counter()
        metadata = {}
        for info in self.store.documents():
            if (doc := self.store.document(info.source)) is not None:
                metadata[doc.source] = reread(doc)
        self.store.reread(self.config, metadata)
        log.info("index in %s: %d documents' metadata read anew in %.1f s (nothing embedded)",
                 self.directory, len(metadata), time.perf_counter() - began)

    def view(self) -> SearchIndex:
        if self._view is None:
            self.open()
        version = self.store.refresh()
        view = self._view
        assert view is not None
        if version != view.version:
            view = self._view = SearchIndex(self.store, self.analyzer, version)
        return view


class DocumentWriter:
    """Brings the index in line with the corpus folder, and adds or deletes documents in both."""

    def __init__(self, settings: Settings, live: LiveIndex, embedder: Embedder, read: Extractor,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.live = live
        self.embedder = embedder
        self.read = read
        self.metrics = metrics
        self._lock = threading.Lock()  # one writer at a time in this process
        self.skipped: dict[str, str] = {}  # by the last sync

    @property
    def store(self) -> Store:
        return self.live.store

    def _open_or_create(self, rebuild: bool, report: IndexReport, progress: Progress | None) -> None:
        if rebuild:
            report.rebuilt_because = "asked to rebuild"
        else:
            try:
                self.live.open(progress)
                return
            except IndexMissing:
                pass
            except (IndexMismatch, IndexCorrupt) as exc:
                if self.store.shared:  # other servers answer from it: only an explicit --rebuild replaces it
                    raise
                log.warning("rebuilding the index: %s", exc)
                report.rebuilt_because = str(exc)
        self.store.create(self.live.config)
        self.live.open()

    def sync(self, rebuild: bool = False, progress: Progress | None = None) -> IndexReport:
        """Make the index hold exactly the documents of the corpus folder. Files whose size and
        modification time are as indexed are not read again. In a shared database, documents
        uploaded through the API (to any server) are not in this folder and are kept."""
        began = time.perf_counter()
        report = IndexReport()
        with self._lock:
            self._open_or_create(rebuild, report, progress)
            _clear_leftovers(self.settings.corpus_dir)
            known = self.store.fingerprints()
            files = discover([self.settings.corpus_dir])
            stamps = {source: _stamp(path) for source, path in files.items()}
            changed: list[Document] = []
            for source, path in files.items():
                old = known.get(source)
                if old and old[1] == stamps[source]:
                    report.unchanged.append(source)
                    continue
                try:
                    doc = read_document(path, source, self.read)
                    check_size(doc, self.settings.max_document_sentences)
                except CorpusError as exc:  # one bad file does not keep the rest from being served
                    log.warning("skipping %s", exc)
                    report.skipped[source] = str(exc)
                    continue
                if old and old[0] == doc.sha256:
                    report.unchanged.append(source)
                    continue
                (report.updated if old else report.added).append(source)
                changed.append(doc)
            report.removed = sorted(s for s in set(known) - set(files) if not self.store.shared or known[s][1])
            with self.store.bulk():
                self._write(changed, report, progress, stamps)
                if report.removed:
                    self.store.delete(report.removed)
            self.store.checkpoint(force=report.changed)
            self.skipped = report.skipped
        return self._finish(report, began)

    def _write(self, documents: list[Document], report: IndexReport, progress: Progress | None,
               stamps: dict[str, FileStamp] | None = None) -> None:
        if documents:
            self.embedder.warm_up()
        for at in range(0, len(documents), SYNC_BATCH):
            batch = documents[at : at + SYNC_BATCH]
            prepared = prepare(batch, self.embedder, self.live.config, stamps=stamps)
            self.store.upsert(prepared)
            report.embedded_sentences += sum(len(p.sentences) for p in prepared)
            if progress:
                progress(at + len(batch), len(documents))

    def _finish(self, report: IndexReport, began: float) -> IndexReport:
        counts = self.store.counts()
        report.documents, report.chunks, report.sentences = counts.documents, counts.chunks, counts.sentences
        report.seconds = time.perf_counter() - began
        self.metrics.wrote(report.seconds, len(report.added), len(report.updated), len(report.removed))
        log.debug("index: %s", report.summary())
        return report

    def add(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> IndexReport:
        """Add or replace documents given as (file name, bytes). Every file is read and checked
        before anything changes; the call returns once the documents are durably stored, and only
        then are their files put in the corpus folder."""
        began = time.perf_counter()
        documents: dict[str, tuple[bytes, Document]] = {}
        renamed: dict[str, str] = {}  # names sanitizing changed -> as sent
        for raw_name, data in files:
            name = safe_name(raw_name)
            if name != unicodedata.normalize("NFC", raw_name):
                renamed[name] = raw_name
            if len(data) > self.settings.max_upload_bytes:
                raise DocumentTooLarge(f"{name}: {len(data)} bytes, over the limit of {self.settings.max_upload_bytes}")
            if name in documents:
                raise InvalidRequest(f"two files would both be named {name!r}")
            documents[name] = (data, load_bytes(name, data, self.read))
            check_size(documents[name][1], self.settings.max_document_sentences)
        paths = {name: self._corpus_path(name) for name in documents}
        try:
            if not self.live.loaded:
                self.live.open()
        except IndexMissing:  # no index yet: build it from the whole corpus, these files included
            for name, (data, _) in documents.items():
                _write_file(paths[name], data)
            return self.sync(progress=progress)
        report = IndexReport()
        with self._lock:
            by_hash = self.store.with_text({doc.sha256 for _, doc in documents.values()})
            known = self.live.view().infos(set(documents))
            for name, sent in renamed.items():
                if name in known:  # another file's name, reached by sanitizing: never a silent replace
                    raise InvalidRequest(f"file name {sent!r} would be stored as {name!r}, which is another "
                                         "document's name: rename the file (or send it as that name to replace it)")
            fresh: list[Document] = []
            for name, (_, doc) in documents.items():
                holder = by_hash.get(doc.sha256)
                # A new name for text already indexed is a duplicate; a replacement is applied as sent.
                if holder is not None and holder != name and name not in known:
                    report.duplicates[name] = holder
                elif holder == name:
                    report.unchanged.append(name)
                else:
                    (report.updated if name in known else report.added).append(name)
                    fresh.append(doc)
            # The files are staged beside their place and moved in once the index has them, so a
            # failed write leaves the corpus folder as it was. A shared database keeps the text
            # itself: this host's folder is not where other servers would look for it.
            kept = [] if self.store.shared else fresh
            staged = {doc.source: _stage(paths[doc.source], documents[doc.source][0]) for doc in kept}
            try:
                self._write(fresh, report, progress)
            except BaseException:
                for tmp in staged.values():
                    tmp.unlink(missing_ok=True)
                raise
            for source, tmp in staged.items():
                os.replace(tmp, paths[source])
            if staged:
                fsync_dir(self.settings.corpus_dir)
        return self._finish(report, began)

    def delete(self, source: str) -> IndexReport:
        """Remove a document from the index and from the corpus folder."""
        began = time.perf_counter()
        with self._lock:
            if not self.live.view().infos({source}):
                raise DocumentNotFound(f"no indexed document named {source!r}")
            path = self._corpus_path(source)
            # Set aside first, so a failed delete puts it back and a crash cannot resurrect it.
            aside = path.with_name(f".{path.name}.deleting")
            moved = path.is_file()
            if moved:
                os.replace(path, aside)
            try:
                self.store.delete([source])
            except BaseException:
                if moved:
                    os.replace(aside, path)
                raise
            aside.unlink(missing_ok=True)
        return self._finish(IndexReport(removed=[source]), began)

    def _corpus_path(self, name: str) -> Path:
        root = self.settings.corpus_dir.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root):  # safe_name already prevents this; never trust one check
            raise InvalidRequest(f"file name {name!r} leaves the corpus folder")
        if any(len(part.encode()) > 255 for part in path.relative_to(root).parts):
            raise InvalidRequest(f"file name {name!r} is too long (255 bytes per path part)")
        if path.is_dir():
            raise InvalidRequest(f"file name {name!r} is a folder in the corpus")
        for parent in path.relative_to(root).parents:
            if (root / parent).is_file():
                raise InvalidRequest(f"file name {name!r} is inside {parent.as_posix()!r}, which is a file")
        return path


def _clear_leftovers(corpus: Path) -> None:
    """Files an interrupted add staged, or an interrupted delete set aside: neither was
    acknowledged, and the index never names them."""
    if corpus.is_dir():
        for path in corpus.rglob(".*"):
            if path.is_file() and path.name.endswith((".staged", ".deleting")):
                path.unlink(missing_ok=True)


def _stamp(path: Path) -> FileStamp:
    stat = path.stat()
    return FileStamp(stat.st_size, stat.st_mtime_ns)


def _stage(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.staged")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def _write_file(path: Path, data: bytes) -> None:
    os.replace(_stage(path, data), path)


class Asker:
    """Questions: validation, retrieval (with the optional reranker) and the answer, quoted or
    generated and checked."""

    def __init__(
        self, settings: Settings, live: LiveIndex, embedder: Embedder, analyzer: Analyzer,
        reranker: Reranker | None, generator: GenerativeAnswerer | None, metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.live = live
        self.analyzer = analyzer
        self.metrics = metrics
        self.queries = QueryBatcher(embedder)
        self.retriever = HybridRetriever(embedder, metrics, settings.candidates, settings.dense_weight,
                                         settings.keyword_weight)
        self.reranker = reranker
        self.answerer: Answerer = ExtractiveAnswerer(
            analyzer, DecisionModel.load(), settings.answer_decision == "learned", settings.answer_threshold,
            settings.max_answer_sentences, self._embed)
        self.generator = generator
        self.grounder = Grounder(analyzer, embedder, settings.support_threshold)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Short texts embedded beside the questions (in their batches)."""
        futures = self.queries.submit_all(texts)
        return np.stack([f.result() for f in futures]) if futures else np.zeros((0, 1), np.float32)

    def validate(self, question: str, top_k: int, filters: Filters | None) -> None:
        if not question.strip():
            raise InvalidRequest("question must not be empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidRequest(f"question must be at most {MAX_QUESTION_CHARS} characters, got {len(question)}")
        if (terms := len(set(self.analyzer.terms(question)))) > MAX_QUESTION_TERMS:
            raise InvalidRequest(f"question has {terms} distinct search terms, over the limit of {MAX_QUESTION_TERMS}: "
                                 "ask about fewer things at once")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequest(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        if filters and filters.source:
            unknown = sorted(set(filters.source) - self.live.view().infos(set(filters.source)).keys())
            if unknown:
                raise InvalidRequest(f"filters.source names documents not in the index: {', '.join(unknown)}")

    def retrieve(self, question: str, top_k: int, filters: Filters | None) -> Retrieval:
        index = self.live.view()
        query = self.queries.submit(question)  # embedded while the keyword side is scored
        if self.reranker is None:
            hits = self.retriever.search(index, question, query, top_k, filters)
            return Retrieval(index, query.result(), hits, full_list_scale(index.chunks, self.settings.candidates))
        pool = self.retriever.search(index, question, query, max(top_k, self.settings.rerank_depth), filters)
        with self.metrics.timed("rerank"):
            scores = self.reranker.score(question, [h.chunk.text for h in pool])
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:top_k]
        return Retrieval(index, query.result(), [replace(pool[i], score=scores[i]) for i in order])

    def search(self, question: str, top_k: int = 5, filters: Filters | None = None) -> list[Passage]:
        self.validate(question, top_k, filters)
        found = self.retrieve(question, top_k, filters)
        return found.passages()

    def ask_stream(
        self, question: str, top_k: int, filters: Filters | None, mode: Mode | None, history: Sequence[Turn],
    ) -> Iterator[StreamEvent]:
        """The answer's text as it is written, then the checked ``Answer``."""
        for event in self._answer_stream(question, top_k, filters, mode, history):
            if isinstance(event, Final):
                self.metrics.answered(event.answer)
            yield event

    def _answer_stream(
        self, question: str, top_k: int, filters: Filters | None, mode: Mode | None, history: Sequence[Turn],
    ) -> Iterator[StreamEvent]:
        self.validate(question, top_k, filters)
        mode = mode or self.settings.answer_mode
        if mode == "llm" and self.generator is None:
            raise InvalidRequest("mode 'llm' needs an LLM endpoint: set FOOTNOTE_LLM_BASE_URL")
        history = list(history)[-self.settings.max_history_turns:] if self.settings.max_history_turns else []
        if mode == "extractive" or self.generator is None:
            answer = self.extractive(question, self.retrieve(question, top_k, filters))
            yield Token(answer.answer)
            yield Final(answer)
            return
        standalone: str | None = None
        try:
            if history:
                standalone = self.generator.condense(history, question)
        except LLMError as exc:
            log.warning("LLM mode: %s; answering extractively", exc)
            self.metrics.fell_back(exc.reason)
            answer = self.extractive(question, self.retrieve(question, top_k, filters))
            yield Token(answer.answer)
            yield Final(answer.model_copy(update={"fallback_reason": str(exc)}))
            return
        found = self.retrieve(standalone or question, top_k, filters)
        index, hits = found.index, found.hits
        passages = found.passages()
        if not hits:
            yield Token(NOT_COVERED)
            yield Final(Answer(question=question, answer=NOT_COVERED, answerable=False, citations=[], passages=[],
                               mode="llm", standalone_question=standalone))
            return
        raw: list[str] = []  # the model's own text, which the check reads (dropped markers and all)

        def recorded(tokens: Iterator[str]) -> Iterator[str]:
            for token in tokens:
                raw.append(token)
                yield token

        try:
            messages = self.generator.messages(standalone or question, hits,
                                               index.infos({h.chunk.source for h in hits}))
            with self.metrics.timed("llm"):
                for token in cleaned_stream(recorded(self.generator.stream(messages)), hits):
                    yield Token(token)
        except LLMError as exc:
            log.warning("LLM mode: %s; answering extractively", exc)
            self.metrics.fell_back(exc.reason)
            answer = self.extractive(question, found)
            yield Final(answer.model_copy(update={"fallback_reason": str(exc), "standalone_question": standalone}))
            return
        with self.metrics.timed("answer"):
            checked = self.grounder.check("".join(raw), index, hits)
        yield Final(Answer(
            question=question, answer=checked.text, answerable=checked.answerable, citations=checked.citations,
            passages=passages, mode="llm", standalone_question=standalone, unsupported=checked.unsupported,
            dropped_markers=checked.dropped_markers,
        ))

    def extractive(self, question: str, found: Retrieval) -> Answer:
        with self.metrics.timed("answer"):
            return self.answerer.answer(question, found)


class Engine:
    """What every face calls. Built by ``build_engine``."""

    def __init__(self, settings: Settings, embedder: Embedder, live: LiveIndex, writer: DocumentWriter,
                 asker: Asker, feedback: FeedbackStore, seen: SeenKeys) -> None:
        self.settings = settings
        self.embedder = embedder
        self.live = live
        self.writer = writer
        self.asker = asker
        self.feedback = feedback
        self.seen = seen

    @property
    def store(self) -> Store:
        return self.live.store

    @property
    def metrics(self) -> Metrics:
        return self.asker.metrics

    @property
    def index(self) -> SearchIndex:
        """The index as of now (loaded on first use, refreshed after any process's write)."""
        return self.live.view()

    def load(self) -> None:
        self.embedder.warm_up()
        self.live.open()

    def sync(self, rebuild: bool = False, progress: Progress | None = None) -> IndexReport:
        return self.writer.sync(rebuild, progress)

    def close(self) -> None:
        """Release the store (its files, or its database connections) and the file readers."""
        self.store.close()
        self.writer.read.close()

    def start(self, progress: Progress | None = None) -> IndexReport | None:
        """Ready the index for serving. The embedded store follows the corpus folder at every
        start; a shared database is the truth (other servers' uploads live there, not in this
        folder), so the folder only seeds it when it has no index yet."""
        if self.store.shared:
            try:
                self.live.open()
                return None
            except IndexMissing:
                pass
        return self.sync(progress=progress)

    def add(self, files: Sequence[tuple[str, bytes]], progress: Progress | None = None) -> IndexReport:
        return self.writer.add(files, progress)

    def delete(self, source: str) -> IndexReport:
        return self.writer.delete(source)

    def search(self, question: str, top_k: int = 5, filters: Filters | None = None) -> list[Passage]:
        """The passages for a question, best first, without composing an answer."""
        return self.asker.search(question, top_k, filters)

    def ask(
        self, question: str, top_k: int = 5, filters: Filters | None = None,
        mode: Mode | None = None, history: Sequence[Turn] = (),
    ) -> Answer:
        for event in self.ask_stream(question, top_k, filters, mode, history):
            if isinstance(event, Final):
                return event.answer
        raise AssertionError("ask_stream ends with its Final event")

    def ask_stream(
        self, question: str, top_k: int = 5, filters: Filters | None = None,
        mode: Mode | None = None, history: Sequence[Turn] = (),
    ) -> Iterator[StreamEvent]:
        """The answer's text as it is produced, then the checked Answer (whose ``answer`` is the
        one to keep: markers naming no passage are gone from it). Extractive answers come whole.
        When the LLM fails, the extractive answer is given, with ``fallback_reason``."""
        return self.asker.ask_stream(question, top_k, filters, mode, history)

    def documents(self) -> list[DocumentSummary]:
        self.live.view()
        return [
            DocumentSummary(source=d.source, title=d.title, date=d.date, chunks=d.chunks, sha256=d.sha256,
                            metadata=d.metadata, characters=d.characters)
            for d in self.store.documents()
        ]

    def document(self, source: str) -> DocumentDetail:
        info = self.live.view().infos({source}).get(source)
        doc = self.store.document(source) if info else None
        if info is None or doc is None:
            raise DocumentNotFound(f"no indexed document named {source!r}")
        return DocumentDetail(source=doc.source, title=doc.title, date=doc.date, chunks=info.chunks,
                              sha256=info.sha256, metadata=doc.metadata, characters=len(doc.text), text=doc.text,
                              pages=list(info.pages))

    def health(self) -> Health:
        if not self.live.loaded:
            raise IndexMissing("index not loaded yet")
        counts = self.store.counts()
        return Health(status="ok", documents=counts.documents, chunks=counts.chunks, model=self.embedder.name,
                      skipped=self.writer.skipped)


def build_embedder(settings: Settings) -> Embedder:
    if settings.embedding_backend == "torch":
        return SentenceTransformerEmbedder(settings.embedding_model, settings.device, settings.embed_batch_size)
    return OnnxEmbedder(settings.embedding_model, settings.model_cache_dir / "models",
                        settings.embedding_backend == "onnx-int8", settings.embed_batch_size)


def build_engine(
    settings: Settings, *, embedder: Embedder | None = None, reranker: Reranker | None = None,
    store: Store | None = None,
) -> Engine:
    """An engine with the configured parts; nothing is loaded until first use or ``load``.
    ``embedder``, ``reranker`` and ``store`` replace the configured ones (tests share one loaded
    model; benchmarks use a fake)."""
    embedder = embedder or build_embedder(settings)
    # On ONNX, documents are encoded beside questions rather than between them (see ``twin``).
    ingest_model = embedder.twin() if isinstance(embedder, OnnxEmbedder) else embedder
    if reranker is None and settings.reranker:
        reranker = CrossEncoderReranker(settings.reranker, settings.device)
    analyzer = Analyzer()
    database = (Database(settings.database_url.get_secret_value(), settings.database_pool_size,
                         settings.database_timeout) if settings.database_url else None)
    if store is None and database is not None:
        store = PostgresStore(database, analyzer, settings.bm25_k1, settings.bm25_b, settings.database_ef_search)
    store = store or EmbeddedStore(settings.index_dir, analyzer, settings.vector_spec(), settings.bm25_k1, settings.bm25_b,
                                   settings.checkpoint_min_vectors)
    config = index_config(embedder, settings.chunk_size, settings.chunk_overlap)
    live = LiveIndex(store, analyzer, config, settings.index_dir)
    # Only documents go through the cache: questions are rarely repeated, and a disk look-up
    # would sit on every question's path.
    ingest = CachedEmbedder(ingest_model, settings.embedding_cache_dir) if settings.embedding_cache_dir else ingest_model
    metrics = Metrics(store.counts)
    budget = Budget(settings.extract_seconds, settings.extract_memory_mb * 2**20)
    writer = DocumentWriter(settings, live, ingest, Extractor(budget, workers=max(1, (os.cpu_count() or 2) // 2)),
                            metrics)
    asker = Asker(settings, live, embedder, analyzer, reranker, build_generator(settings), metrics)
    feedback: FeedbackStore
    seen: SeenKeys
    if database is not None:
        feedback, seen = PostgresFeedback(database), PostgresSeenKeys(database)
    else:
        feedback = SqliteFeedback(settings.state_dir / "feedback.sqlite3")
        seen = SqliteSeenKeys(settings.state_dir / "slack_events.sqlite3")
    return Engine(settings, embedder, live, writer, asker, feedback, seen)


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


__all__ = ["Engine", "IndexStateError", "build_engine", "build_generator"]
