"""The embedded store: one folder, one SQLite database, and bulk search structures beside it.

``footnote.db`` (SQLite, WAL, ``synchronous=FULL``) is the truth: documents with their full
text, chunks and sentences with their exact offsets, each sentence's vector, each chunk's and
document's BM25 terms, and the analyzer's stem frequencies. A write is one transaction, so it
is durable when it returns and a crash leaves the previous state; a write costs what it
changes.

Search does not read the tables wholesale. A *checkpoint* (``base-<n>/``) holds a FAISS index of
the sentence vectors and the BM25 postings of chunks and documents, as written from the tables
at some moment and checksummed; writes since then live in memory as small segments read back
from the tables (rows past the checkpoint's id marks), and deletions since then as tombstones.
Starting therefore loads the checkpoint files and the few rows past them, with no per-chunk
Python work. When the rows past the checkpoint grow to a fifth of it, the next write folds them
into a new checkpoint. Ids are never reused, and each document's chunks and sentences take
consecutive ids, so a document is an id range.

Other processes sharing the folder see a write at their next question: ``version`` changes, and
``refresh`` reads the new rows and tombstones.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sqlite3
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .chunking import Chunk
from .documents import Document
from .errors import IndexCorrupt, IndexMismatch, IndexMissing, IndexStateError
from .keywords import Field, Segment, Tokenizer, pack_bag, term_id, unpack_bag
from .store import (
    EMPTY,
    Admitted,
    Counts,
    DocumentInfo,
    DocumentRows,
    FileStamp,
    IndexConfig,
    PreparedDocument,
    Scored,
    StoredSentence,
    chunk_stems,
    fsync_dir,
)
from .text import Analyzer
from .vectors import VectorIndexSpec, empty_index, kind_of, training_size
from .vectors import flat as flat_index
from .vectors import search as search_vectors

log = logging.getLogger(__name__)

FORMAT = "footnote-index"
FORMAT_VERSION = 3
DATABASE = "footnote.db"
LOCK = ".lock"
# Delta segments kept before they are merged into one (each costs a look-up per question term).
MAX_DELTA_SEGMENTS = 8
# Rows past the checkpoint that trigger a new one: this share of the checkpoint (at least the
# store's floor of sentences).
CHECKPOINT_SHARE = 0.2
BATCH = 20_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL, title TEXT, date TEXT,
    body_start INTEGER NOT NULL, metadata TEXT NOT NULL, pages TEXT NOT NULL, text TEXT NOT NULL,
    chunk_lo INTEGER NOT NULL, chunk_hi INTEGER NOT NULL, sent_lo INTEGER NOT NULL, sent_hi INTEGER NOT NULL,
    length INTEGER NOT NULL, terms BLOB NOT NULL, file_size INTEGER, file_mtime_ns INTEGER
);
CREATE INDEX IF NOT EXISTS documents_date ON documents (date);
CREATE INDEX IF NOT EXISTS documents_sha256 ON documents (sha256);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, ord INTEGER NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, length INTEGER NOT NULL, terms BLOB NOT NULL, sentences BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    first_chunk INTEGER NOT NULL, last_chunk INTEGER NOT NULL, vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (
    seq INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, chunk_lo INTEGER NOT NULL, chunk_hi INTEGER NOT NULL,
    sent_lo INTEGER NOT NULL, sent_hi INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stems (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
"""


class Growable:
    """A 1-d array with spare capacity, written in place under the store's write lock. Readers
    index only ids they were given, so an append never disturbs them; growing past capacity
    copies into a new array, which later readers pick up."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def ensure(self, size: int) -> None:
        if size > len(self.data):
            grown = np.zeros(max(size, 2 * len(self.data), 1024), self.data.dtype)
            grown[: len(self.data)] = self.data
            self.data = grown


@dataclass(frozen=True)
class Checkpoint:
    generation: int
    files: dict[str, dict[str, Any]]
    marks: dict[str, int]  # the last document, chunk and sentence id it holds
    tomb_seq: int  # tombstones up to this one are applied in it
    vectors: int

    @staticmethod
    def empty() -> Checkpoint:
        return Checkpoint(0, {}, {"document": 0, "chunk": 0, "sentence": 0}, 0, 0)


class _Search:
    """What questions read: the checkpoint's structures plus segments for writes since. Replaced
    or extended only under the store's write lock."""

    def __init__(self, dimension: int, checkpoint: Checkpoint, base: dict[str, Any]) -> None:
        self.checkpoint = checkpoint
        # The checkpoint's index, then flat ones (IndexIDMap2) for the sentences written since.
        self.vectors: list[Any] = [base["vectors"]]
        self.pending = 0  # sentences read back since the checkpoint
        self.dimension = dimension
        self.chunk_segments: list[Segment] = [base["chunk_segment"]]
        self.doc_segments: list[Segment] = [base["doc_segment"]]
        self.chunk_lengths = Growable(base["chunk_lengths"])
        self.chunk_live = Growable(base["chunk_live"])
        self.chunk_doc = Growable(base["chunk_doc"])
        self.doc_lengths = Growable(base["doc_lengths"])
        self.doc_live = Growable(base["doc_live"])
        self.sent_live = Growable(base["sent_live"])
        self.sizes = {"document": len(base["doc_live"]), "chunk": len(base["chunk_live"]),
                      "sentence": len(base["sent_live"])}
        self.marks = dict(checkpoint.marks)
        self.tomb_seq = checkpoint.tomb_seq
        self.dead_since_checkpoint = 0  # sentences
        self.version = -1
        self._packed_live: np.ndarray | None = None

    # -- applying rows and tombstones -------------------------------------------------------

    def add(self, docs: list[tuple], chunks: list[tuple], sentences: list[tuple]) -> None:
        """Rows past the marks: docs (id, length, terms), chunks (id, doc_id, length, terms),
        sentences (id, vector)."""
        if docs:
            self._grow("document", docs[-1][0] + 1)
            ids = np.array([d[0] for d in docs], np.int64)
            self.doc_lengths.data[ids] = [d[1] for d in docs]
            self.doc_live.data[ids] = True
            self.doc_segments.append(Segment.build(ids, [unpack_bag(d[2]) for d in docs]))
            self.marks["document"] = int(ids[-1])
        if chunks:
            self._grow("chunk", chunks[-1][0] + 1)
            ids = np.array([c[0] for c in chunks], np.int64)
            self.chunk_lengths.data[ids] = [c[2] for c in chunks]
            self.chunk_doc.data[ids] = [c[1] for c in chunks]
            self.chunk_live.data[ids] = True
            self.chunk_segments.append(Segment.build(ids, [unpack_bag(c[3]) for c in chunks]))
            self.marks["chunk"] = int(ids[-1])
        if sentences:
            self._grow("sentence", sentences[-1][0] + 1)
            ids = np.array([s[0] for s in sentences], np.int64)
            matrix = np.frombuffer(b"".join(s[1] for s in sentences), np.float32).reshape(len(ids), self.dimension)
            self.vectors.append(flat_index(ids, matrix))
            self.pending += len(ids)
            self.sent_live.data[ids] = True
            self.marks["sentence"] = int(ids[-1])
            self._packed_live = None
        if len(self.chunk_segments) > 1 + MAX_DELTA_SEGMENTS:
            self._merge_deltas()

    def bury(self, tombstones: list[tuple[int, int, int, int, int, int]]) -> None:
        """Tombstones (seq, doc_id, chunk_lo, chunk_hi, sent_lo, sent_hi): ranges now dead."""
        for seq, doc_id, chunk_lo, chunk_hi, sent_lo, sent_hi in tombstones:
            if doc_id < len(self.doc_live.data):
                self.doc_live.data[doc_id] = False
            self.chunk_live.data[chunk_lo : min(chunk_hi, len(self.chunk_live.data))] = False
            self.sent_live.data[sent_lo : min(sent_hi, len(self.sent_live.data))] = False
            self.tomb_seq = max(self.tomb_seq, seq)
            self.dead_since_checkpoint += sent_hi - sent_lo
            self._packed_live = None

    def _grow(self, kind: str, size: int) -> None:
        arrays = {"document": (self.doc_lengths, self.doc_live),
                  "chunk": (self.chunk_lengths, self.chunk_live, self.chunk_doc),
                  "sentence": (self.sent_live,)}[kind]
        for array in arrays:
            array.ensure(size)
        self.sizes[kind] = max(self.sizes[kind], size)

    def _merge_deltas(self) -> None:
        self.chunk_segments = [self.chunk_segments[0], Segment.merge(self.chunk_segments[1:], self.chunk_live.data)]
        self.doc_segments = [self.doc_segments[0], Segment.merge(self.doc_segments[1:], self.doc_live.data)]
        if len(self.vectors) < 3:
            return
        parts = [(faiss.vector_to_array(v.id_map), v.index.reconstruct_n(0, v.ntotal)) for v in self.vectors[1:]]
        ids = np.concatenate([p[0] for p in parts])
        keep = self.sent_live.data[ids]
        self.vectors = [self.vectors[0], flat_index(ids[keep], np.concatenate([p[1] for p in parts])[keep])]

    # -- reading ----------------------------------------------------------------------------

    def chunk_field(self) -> Field:
        return Field(tuple(self.chunk_segments), self.chunk_lengths.data, self.chunk_live.data, self.sizes["chunk"])

    def doc_field(self) -> Field:
        return Field(tuple(self.doc_segments), self.doc_lengths.data, self.doc_live.data, self.sizes["document"])

    def live_bitmap(self) -> np.ndarray:
        if self._packed_live is None:
            self._packed_live = np.packbits(self.sent_live.data[: self.sizes["sentence"]], bitorder="little")
        return self._packed_live

    def delta_size(self) -> int:
        return self.pending


@dataclass(frozen=True)
class _Filter:
    chunk_mask: np.ndarray
    sentence_mask: np.ndarray
    sentences: int


def _ranges(lo: np.ndarray, hi: np.ndarray, size: int) -> np.ndarray:
    """A mask over ``size`` ids that is true inside each [lo, hi)."""
    marks = np.zeros(size + 1, np.int32)
    np.add.at(marks, np.minimum(lo, size), 1)
    np.add.at(marks, np.minimum(hi, size), -1)
    return np.cumsum(marks[:-1]) > 0


class EmbeddedStore:
    shared = False

    def __init__(self, directory: Path, analyzer: Analyzer, vectors: VectorIndexSpec | None = None,
                 k1: float = 1.2, b: float = 0.75, checkpoint_floor: int = 20_000) -> None:
        self.directory = directory
        self.checkpoint_floor = checkpoint_floor
        self.analyzer = analyzer
        self.tokenizer = Tokenizer(analyzer.stemmer)
        self.spec = vectors or VectorIndexSpec()
        self.k1, self.b = k1, b
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._search: _Search | None = None
        self._config: IndexConfig | None = None
        self._background: threading.Thread | None = None
        self._bulk = 0  # writes inside bulk(): no background checkpoints

    @property
    def path(self) -> Path:
        return self.directory / DATABASE

    # -- connections ------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections are not shared between threads)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not self.path.is_file():
                raise IndexMissing(f"no index in {self.directory}: run `footnote index` to build it")
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA cache_size=-65536")
            except sqlite3.DatabaseError as exc:
                raise IndexCorrupt(f"{self.path} is not a readable index ({exc})") from exc
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot of the tables; damage surfaces as IndexCorrupt."""
        conn = self._db()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"{self.path} is damaged ({exc})") from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; with other processes, SQLite's lock makes writers take turns."""
        with self._write_lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise IndexStateError(f"{self.directory} is being written by another process: {exc}") from exc
            try:
                yield conn
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.wait_for_checkpoint()
        with self._write_lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
            self._local = threading.local()
            self._search = None

    # -- lifecycle --------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.is_file()

    def create(self, config: IndexConfig) -> None:
        """A new, empty index; whatever was in the folder's database is dropped."""
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            (self.directory / f"{DATABASE}{suffix}").unlink(missing_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            meta = {
                "format": FORMAT, "format_version": str(FORMAT_VERSION), "version": "0",
                "config": json.dumps({"model": config.model, "dimension": config.dimension, "chunker": config.chunker}),
                "next_ids": json.dumps({"document": 1, "chunk": 1, "sentence": 1}),
                "checkpoint": json.dumps(Checkpoint.empty().__dict__),
            }
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        finally:
            conn.close()
        fsync_dir(self.directory)
        self._remove_bases(keep=None)
        self.open()

    def open(self) -> IndexConfig:
        """Load the tables' marks and the checkpoint; a damaged checkpoint is written anew from the
        tables (they hold every vector and term, so nothing is embedded again)."""
        with self._write_lock:
            meta = self._meta()
            self._config = IndexConfig(**json.loads(meta["config"]))
            # SQLite's structural check runs beside the checkpoint's load (both mostly outside
            # the interpreter lock): at a million chunks, each takes about ten seconds.
            problems: list[str] = []
            checker = threading.Thread(target=lambda: problems.append(self._quick_check()), name="quick-check")
            checker.start()
            try:
                checkpoint, base = self._load_current(Checkpoint(**json.loads(meta["checkpoint"])), repair=True)
            finally:
                checker.join()
            if problems != ["ok"]:
                raise IndexCorrupt(f"{self.path} is damaged ({problems[0] if problems else 'unchecked'})")
            search = _Search(self._config.dimension, checkpoint, base)
            self._search = search
            self._catch_up(search)
            return self._config

    def _quick_check(self) -> str:
        """The b-trees' structure, without reading every row's content: damage SQLite can see."""
        try:
            with self._read() as db:
                return str(db.execute("PRAGMA quick_check(1)").fetchone()[0])
        except IndexCorrupt as exc:
            return str(exc)

    def _meta(self) -> dict[str, str]:
        with self._read() as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            raise IndexCorrupt(f"{self.path} is not a Footnote index")
        if meta.get("format_version") != str(FORMAT_VERSION):
            raise IndexMismatch(f"index format {meta.get('format_version')} in {self.directory}, this version "
                                f"reads {FORMAT_VERSION}: rebuild with `footnote index --rebuild`")
        return meta

    @property
    def config(self) -> IndexConfig:
        if self._config is None:
            self.open()
        assert self._config is not None
        return self._config

    def _state(self) -> _Search:
        if self._search is None:
            self.open()
        assert self._search is not None
        return self._search

    def version(self) -> int:
        with self._read() as db:
            return int(db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])

    def refresh(self) -> int:
        search = self._state()
        version = self.version()
        # During a bulk write, and while another thread catches up, questions use what is loaded.
        if version == search.version or self._bulk or not self._refresh_lock.acquire(blocking=False):
            return search.version  # up to date, or another thread is catching up: use what is loaded
        try:
            with self._write_lock:
                self._catch_up(self._state())
                return self._state().version
        finally:
            self._refresh_lock.release()

    def _catch_up(self, search: _Search) -> None:
        """Read what was committed past ``search``'s marks (under the write lock)."""
        with self._read() as db:
            version = int(db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
            checkpoint = Checkpoint(**json.loads(db.execute("SELECT value FROM meta WHERE key='checkpoint'").fetchone()[0]))
            if checkpoint.generation != search.checkpoint.generation:
                checkpoint, base = self._load_current(checkpoint)
                self._search = search = _Search(search.dimension, checkpoint, base)
            marks = search.marks
            docs = db.execute("SELECT id, length, terms FROM documents WHERE id > ? ORDER BY id",
                              (marks["document"],)).fetchall()
            chunks = db.execute("SELECT id, doc_id, length, terms FROM chunks WHERE id > ? ORDER BY id",
                                (marks["chunk"],)).fetchall()
            sentences = db.execute("SELECT id, vector FROM sentences WHERE id > ? ORDER BY id",
                                   (marks["sentence"],)).fetchall()
            tombs = db.execute("SELECT seq, doc_id, chunk_lo, chunk_hi, sent_lo, sent_hi FROM tombstones "
                               "WHERE seq > ? ORDER BY seq", (search.tomb_seq,)).fetchall()
        search.add(docs, chunks, sentences)
        search.bury(tombs)
        search.version = version

    # -- checkpoints ------------------------------------------------------------------------

    def _load_current(self, checkpoint: Checkpoint, repair: bool = False) -> tuple[Checkpoint, dict[str, Any]]:
        """The checkpoint's structures. If its files are gone because another process has just
        replaced it, the newer one; if they are damaged (and ``repair``), a new one from the tables."""
        for _ in range(3):
            try:
                return checkpoint, self._load_base(checkpoint)
            except IndexCorrupt as exc:
                with self._read() as db:
                    current = Checkpoint(**json.loads(
                        db.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()[0]))
                if current.generation != checkpoint.generation:
                    checkpoint = current
                    continue
                if not repair:
                    raise
                log.warning("%s; writing the checkpoint again from the tables", exc)
                checkpoint = self._replace_checkpoint(checkpoint.generation)
        return checkpoint, self._load_base(checkpoint)

    def _load_base(self, checkpoint: Checkpoint) -> dict[str, Any]:
        dimension = self.config.dimension if self._config else 0
        if checkpoint.generation == 0:
            return {
                "vectors": flat_index(np.zeros(0, np.int64), np.zeros((0, dimension), np.float32)),
                "chunk_segment": Segment.build([], []), "doc_segment": Segment.build([], []),
                "chunk_lengths": np.zeros(0, np.float32), "chunk_live": np.zeros(0, bool),
                "chunk_doc": np.zeros(0, np.int64), "doc_lengths": np.zeros(0, np.float32),
                "doc_live": np.zeros(0, bool), "sent_live": np.zeros(0, bool),
            }
        folder = self.directory / f"base-{checkpoint.generation}"
        for name, entry in checkpoint.files.items():
            _verify(folder / name, entry)
        try:
            arrays = {name[:-4]: np.load(folder / name, allow_pickle=False)
                      for name in checkpoint.files if name.endswith(".npy")}
            vectors = faiss.read_index(str(folder / "vectors.faiss"))
        except (ValueError, RuntimeError, KeyError, OSError) as exc:
            raise IndexCorrupt(f"{folder.name} is unreadable ({exc})") from exc
        return {
            "vectors": vectors,
            "chunk_segment": Segment(arrays["chunk_terms"], arrays["chunk_offsets"], arrays["chunk_items"],
                                     arrays["chunk_tfs"]),
            "doc_segment": Segment(arrays["doc_terms"], arrays["doc_offsets"], arrays["doc_items"], arrays["doc_tfs"]),
            **{k: arrays[k] for k in ("chunk_lengths", "chunk_live", "chunk_doc", "doc_lengths", "doc_live",
                                      "sent_live")},
        }

    def checkpoint(self, force: bool = False, progress: Callable[[int, int], None] | None = None) -> bool:
        """Write a new checkpoint from the tables if the rows past the current one have grown
        past a fifth of it (or ``force``). Other writers may go on meanwhile: their rows land past
        the new marks. Returns whether one was written."""
        if self._background is not threading.current_thread():
            self.wait_for_checkpoint()
        search = self._state()
        if not (force or self._checkpoint_due(search)):
            return False
        with self._checkpoint_lock() as locked:
            if locked:
                self._replace_checkpoint(search.checkpoint.generation, progress)
            with self._write_lock:
                self._catch_up(self._state())  # the new checkpoint, or another process's rows
        return locked

    def _replace_checkpoint(self, previous: int, progress: Callable[[int, int], None] | None = None) -> Checkpoint:
        checkpoint = self._write_base(previous, progress)
        with self._write() as db:
            current = Checkpoint(**json.loads(db.execute("SELECT value FROM meta WHERE key='checkpoint'").fetchone()[0]))
            if current.generation != previous:
                raise IndexStateError("another process wrote a checkpoint meanwhile; try again")
            db.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (json.dumps(checkpoint.__dict__),))
            db.execute("DELETE FROM tombstones WHERE seq <= ?", (checkpoint.tomb_seq,))
        fsync_dir(self.directory)
        self._remove_bases(keep=checkpoint.generation)
        # Fold the log into the database now: a large log left behind is read through at the
        # next start. (Busy readers only make this partial; it is retried at the next one.)
        with self._write_lock:
            self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return checkpoint

    def _checkpoint_due(self, search: _Search) -> bool:
        grown = search.delta_size() + search.dead_since_checkpoint
        wrong_kind = kind_of(search.vectors[0]) != self.spec.kind_for(search.checkpoint.vectors)
        return wrong_kind or grown >= max(self.checkpoint_floor, CHECKPOINT_SHARE * search.checkpoint.vectors)

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Many writes in a row (a sync): checkpoints wait for the caller's one at the end."""
        with self._write_lock:
            self._bulk += 1
        try:
            yield
        finally:
            with self._write_lock:
                self._bulk -= 1

    def _checkpoint_in_background(self) -> None:
        """A due checkpoint is written by a thread of its own: the write that made it due has
        returned, and questions and further writes go on meanwhile."""
        if self._bulk or not self._checkpoint_due(self._state()) or (self._background and self._background.is_alive()):
            return

        def run() -> None:
            try:
                self.checkpoint()
            except Exception:  # the next write tries again; questions use what is loaded
                log.exception("checkpoint failed")

        self._background = threading.Thread(target=run, name="checkpoint", daemon=True)
        self._background.start()

    def wait_for_checkpoint(self) -> None:
        if self._background:
            self._background.join()

    @contextlib.contextmanager
    def _checkpoint_lock(self) -> Iterator[bool]:
        with open(self.directory / LOCK, "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _write_base(self, previous: int, progress: Callable[[int, int], None] | None) -> Checkpoint:
        """Build the structures from one snapshot of the tables into ``base-<n>/``. Each file is
        written as soon as it is made, so the peak is about one structure (the FAISS index)."""
        generation = previous + 1
        folder = self.directory / f"base-{generation}"
        shutil.rmtree(folder, ignore_errors=True)
        tmp = self.directory / f".base-{generation}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        files: dict[str, dict[str, Any]] = {}

        def save(name: str, array: np.ndarray) -> None:
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
            files[f"{name}.npy"] = _written(tmp / f"{name}.npy")

        with self._read() as db:
            next_ids = json.loads(db.execute("SELECT value FROM meta WHERE key='next_ids'").fetchone()[0])
            tomb_seq = db.execute("SELECT coalesce(max(seq), 0) FROM tombstones").fetchone()[0]
            chunks = 0
            for field_name, table, size in (("doc", "documents", next_ids["document"]), ("chunk", "chunks", next_ids["chunk"])):
                lengths = np.zeros(size, np.float32)
                live = np.zeros(size, bool)
                owner = np.zeros(size if field_name == "chunk" else 0, np.int64)
                segments = []
                extra = ", doc_id" if field_name == "chunk" else ""
                cursor = db.execute(f"SELECT id, length, terms{extra} FROM {table} ORDER BY id")
                while rows := cursor.fetchmany(BATCH):
                    ids = np.array([r[0] for r in rows], np.int64)
                    lengths[ids] = [r[1] for r in rows]
                    live[ids] = True
                    if extra:
                        owner[ids] = [r[3] for r in rows]
                    segments.append(Segment.build(ids, [unpack_bag(r[2]) for r in rows]))
                merged = Segment.merge(segments, live) if len(segments) != 1 else segments[0]
                del segments
                for part in ("terms", "offsets", "items", "tfs"):
                    save(f"{field_name}_{part}", getattr(merged, part))
                del merged
                save(f"{field_name}_lengths", lengths)
                save(f"{field_name}_live", live)
                if extra:
                    save("chunk_doc", owner)
                    chunks = int(np.count_nonzero(live))
            total = db.execute("SELECT count(*) FROM sentences").fetchone()[0]
            kind = self.spec.kind_for(total)
            sample = np.zeros((0, self.config.dimension), np.float32)
            if kind == "ivf":
                # A random sample of the rows, read in id order (never every vector at once).
                chosen = np.sort(np.random.default_rng(0).choice(next_ids["sentence"], training_size(total), replace=False))
                blobs: list[bytes] = []
                for i in range(0, len(chosen), 500):
                    part = chosen[i : i + 500].tolist()
                    blobs += [r[0] for r in db.execute(f"SELECT vector FROM sentences WHERE id IN ({_marks(part)})", part)]
                sample = np.frombuffer(b"".join(blobs), np.float32).reshape(-1, self.config.dimension)
                del blobs
            index = empty_index(kind, self.config.dimension, self.spec, total, sample)
            del sample
            sent_live = np.zeros(next_ids["sentence"], bool)
            cursor = db.execute("SELECT id, vector FROM sentences ORDER BY id")
            done = 0
            while rows := cursor.fetchmany(BATCH):
                ids = np.array([r[0] for r in rows], np.int64)
                index.add_with_ids(np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(ids), -1), ids)
                sent_live[ids] = True
                done += len(rows)
                if progress:
                    progress(done, total)
            save("sent_live", sent_live)
        faiss.write_index(index, str(tmp / "vectors.faiss"))
        files["vectors.faiss"] = _written(tmp / "vectors.faiss")
        fsync_dir(tmp)
        tmp.rename(folder)
        fsync_dir(self.directory)
        marks = {"document": next_ids["document"] - 1, "chunk": next_ids["chunk"] - 1, "sentence": next_ids["sentence"] - 1}
        log.info("checkpoint %d: %d vectors (%s), %d chunks", generation, total, kind_of(index), chunks)
        return Checkpoint(generation, files, marks, int(tomb_seq), int(total))

    def _remove_bases(self, keep: int | None) -> None:
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            name = path.name.lstrip(".")
            if path.is_dir() and name.startswith("base-") and name != f"base-{keep}":
                shutil.rmtree(path, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        """The bulk structures as now loaded (for health checks and benchmarks)."""
        s = self._state()
        return {"vector_index": kind_of(s.vectors[0]), "checkpoint": s.checkpoint.generation,
                "checkpoint_vectors": s.checkpoint.vectors, "pending_vectors": s.delta_size(),
                "dead_vectors": s.dead_since_checkpoint, "segments": len(s.chunk_segments)}

    # -- reading documents ------------------------------------------------------------------

    def counts(self) -> Counts:
        s = self._state()
        return Counts(
            int(np.count_nonzero(s.doc_live.data[: s.sizes["document"]])),
            int(np.count_nonzero(s.chunk_live.data[: s.sizes["chunk"]])),
            int(np.count_nonzero(s.sent_live.data[: s.sizes["sentence"]])),
        )

    _INFO = "source, sha256, title, date, metadata, pages, chunk_hi - chunk_lo"

    @staticmethod
    def _info(row: tuple) -> DocumentInfo:
        return DocumentInfo(row[0], row[1], row[2], row[3], json.loads(row[4]), tuple(json.loads(row[5])), row[6],
                            *row[7:])

    def documents(self) -> list[DocumentInfo]:
        with self._read() as db:
            return [self._info(r) for r in db.execute(f"SELECT {self._INFO}, length(text) FROM documents ORDER BY source")]

    def infos(self, sources: Iterable[str]) -> dict[str, DocumentInfo]:
        wanted = list(dict.fromkeys(sources))
        out: dict[str, DocumentInfo] = {}
        with self._read() as db:
            for part in _parts(wanted):
                for row in db.execute(f"SELECT {self._INFO} FROM documents WHERE source IN ({_marks(part)})", part):
                    out[row[0]] = self._info(row)
        return out

    def document(self, source: str) -> Document | None:
        with self._read() as db:
            row = db.execute("SELECT source, text, title, date, body_start, metadata, pages, sha256 FROM documents "
                             "WHERE source = ?", (source,)).fetchone()
        if row is None:
            return None
        doc = Document(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), tuple(json.loads(row[6])))
        if doc.sha256 != row[7]:
            raise IndexCorrupt(f"document {source!r} does not match its checksum")
        return doc

    def fingerprints(self) -> dict[str, tuple[str, FileStamp | None]]:
        with self._read() as db:
            return {
                source: (sha, FileStamp(size, mtime) if size is not None else None)
                for source, sha, size, mtime in db.execute("SELECT source, sha256, file_size, file_mtime_ns FROM documents")
            }

    def with_text(self, hashes: Collection[str]) -> dict[str, str]:
        wanted = list(hashes)
        out: dict[str, str] = {}
        with self._read() as db:
            for part in _parts(wanted):
                out.update(db.execute(f"SELECT sha256, source FROM documents WHERE sha256 IN ({_marks(part)})", part))
        return out

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        out: dict[int, Chunk] = {}
        with self._read() as db:
            for part in _parts(list(ids)):
                for cid, source, ord_, start, end, text in db.execute(
                    'SELECT c.id, d.source, c.ord, c.start, c."end", substr(d.text, c.start + 1, c."end" - c.start) '
                    f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({_marks(part)})", part,
                ):
                    out[cid] = Chunk(f"{source}#{ord_}", source, start, end, text)
        return out

    def chunk_sentences(self, ids: Sequence[int]) -> dict[int, list[StoredSentence]]:
        members: dict[int, tuple[str, list[int]]] = {}
        spans: dict[int, tuple[int, int]] = {}
        with self._read() as db:
            for part in _parts(list(ids)):
                for cid, blob, source in db.execute(
                    "SELECT c.id, c.sentences, d.source FROM chunks c JOIN documents d ON d.id = c.doc_id "
                    f"WHERE c.id IN ({_marks(part)})", part,
                ):
                    members[cid] = (source, np.frombuffer(blob, "<i8").tolist())
            wanted = [i for _, sids in members.values() for i in sids]
            for part in _parts(wanted):
                spans.update((r[0], (r[1], r[2])) for r in db.execute(
                    f'SELECT id, start, "end" FROM sentences WHERE id IN ({_marks(part)})', part))
        return {cid: [StoredSentence(i, source, *spans[i]) for i in sids if i in spans]
                for cid, (source, sids) in members.items()}

    def sentence_chunks(self, ids: Sequence[int]) -> dict[int, range]:
        out: dict[int, range] = {}
        with self._read() as db:
            for part in _parts(list(ids)):
                for sid, first, last in db.execute(
                    f"SELECT id, first_chunk, last_chunk FROM sentences WHERE id IN ({_marks(part)})", part
                ):
                    out[sid] = range(first, last + 1)
        return out

    def sentence_vectors(self, ids: Sequence[int]) -> np.ndarray:
        found: dict[int, bytes] = {}
        with self._read() as db:
            for part in _parts(list(ids)):
                found.update(db.execute(f"SELECT id, vector FROM sentences WHERE id IN ({_marks(part)})", part))
        dimension = self.config.dimension
        zero = bytes(4 * dimension)
        return np.frombuffer(b"".join(found.get(i, zero) for i in ids), np.float32).reshape(len(ids), dimension)

    # -- searching --------------------------------------------------------------------------

    def admit(self, sources: Collection[str] | None, date_from: str | None, date_to: str | None) -> Admitted:
        clauses, params = [], []
        if sources is not None:
            clauses.append(f"source IN ({_marks(list(sources))})")
            params += list(sources)
        if date_from:
            clauses.append("date >= ?")
            params.append(date_from)
        if date_to:
            clauses.append("date <= ?")
            params.append(date_to)
        if date_from or date_to:
            clauses.append("date IS NOT NULL")
        with self._read() as db:
            rows = db.execute(f"SELECT source, chunk_lo, chunk_hi, sent_lo, sent_hi FROM documents "
                              f"WHERE {' AND '.join(clauses) or '1'}", params).fetchall()
        s = self._state()
        los = np.array([[r[1], r[3]] for r in rows], np.int64).reshape(-1, 2)
        his = np.array([[r[2], r[4]] for r in rows], np.int64).reshape(-1, 2)
        chunk_mask = _ranges(los[:, 0], his[:, 0], s.sizes["chunk"])
        sentence_mask = _ranges(los[:, 1], his[:, 1], s.sizes["sentence"])
        sentence_mask &= s.sent_live.data[: s.sizes["sentence"]]
        detail = _Filter(chunk_mask, sentence_mask, int(np.count_nonzero(sentence_mask)))
        return Admitted(frozenset(r[0] for r in rows), detail)

    def keyword_search(self, question: str, k: int, admitted: Admitted | None) -> Scored:
        terms = [term_id(t) for t in self.tokenizer.tokens(question)]  # a repeated word counts again
        if not terms:
            return EMPTY
        s = self._state()
        chunk_field, doc_field = s.chunk_field(), s.doc_field()
        scores = chunk_field.scores(terms, self.k1, self.b)
        # Every chunk id below the size has its document's id below the documents' size. A dead
        # chunk's document is dead too (a replaced document gets new ids), so it scores 0 here.
        scores += doc_field.scores(terms, self.k1, self.b)[s.chunk_doc.data[: len(scores)]]
        if admitted is not None:
            detail: _Filter = admitted.detail  # type: ignore[assignment]
            mask = detail.chunk_mask
            keep = np.zeros(len(scores), bool)
            keep[: len(mask)] = mask[: len(scores)]
            scores[~keep] = 0.0  # chunks written since the filter was resolved are not admitted
        return top_k(scores, k)

    def vector_search(self, query: np.ndarray, k: int, admitted: Admitted | None) -> Scored:
        s = self._state()
        bitmap: np.ndarray | None = None
        widen = 1.0
        if admitted is not None:
            detail: _Filter = admitted.detail  # type: ignore[assignment]
            bitmap = np.packbits(detail.sentence_mask, bitorder="little")
            live = int(np.count_nonzero(s.sent_live.data[: s.sizes["sentence"]]))
            widen = live / max(detail.sentences, 1)
            if detail.sentences == 0:
                return EMPTY
        elif s.dead_since_checkpoint:
            bitmap = s.live_bitmap()
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)) if bitmap is not None else None
        found_scores, found_ids = [], []
        for index in list(s.vectors):
            scores, ids = search_vectors(index, query, k, self.spec, selector, widen)
            keep = ids >= 0
            found_scores.append(scores[keep])
            found_ids.append(ids[keep])
        scores = np.concatenate(found_scores)
        ids = np.concatenate(found_ids)
        order = np.lexsort((ids, -scores))[:k]
        return Scored(ids[order], scores[order])

    def stem_frequencies(self, stems: Collection[str]) -> dict[str, int]:
        wanted = list(stems)
        with self._read() as db:
            return dict(db.execute(f"SELECT term, df FROM stems WHERE df > 0 AND term IN ({_marks(wanted)})", wanted))

    def related_stems(self, stem: str) -> frozenset[str]:
        shorter = [stem[:-n] for n in (1, 2) if len(stem) - n >= 4]
        with self._read() as db:
            rows = db.execute(
                "SELECT term FROM stems WHERE df > 0 AND ((term > ? AND term < ? AND length(term) <= ?) "
                f"OR term IN ({_marks(shorter)}))",
                [stem, stem + "\U0010ffff", len(stem) + 2, *shorter] if len(stem) >= 4 else [stem, stem, 0, *shorter],
            ).fetchall()
        return frozenset({stem, *(r[0] for r in rows)})

    # -- writing ----------------------------------------------------------------------------

    def upsert(self, documents: Sequence[PreparedDocument]) -> None:
        if not documents:
            return
        config = self.config
        rows = [self._rows(p, config.dimension) for p in documents]
        with self._write() as db:
            ids = json.loads(db.execute("SELECT value FROM meta WHERE key='next_ids'").fetchone()[0])
            self._remove(db, [p.document.source for p in documents])
            stems: Counter[str] = Counter()
            for doc_row, chunk_rows, sentence_rows, chunk_stems in rows:
                doc_id, chunk_lo, sent_lo = ids["document"], ids["chunk"], ids["sentence"]
                chunk_hi, sent_hi = chunk_lo + len(chunk_rows), sent_lo + len(sentence_rows)
                db.execute(
                    "INSERT INTO documents (id, source, sha256, title, date, body_start, metadata, pages, text, "
                    "chunk_lo, chunk_hi, sent_lo, sent_hi, length, terms, file_size, file_mtime_ns) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc_id, *doc_row[:8], chunk_lo, chunk_hi, sent_lo, sent_hi, *doc_row[8:]),
                )
                db.executemany(
                    'INSERT INTO chunks (id, doc_id, ord, start, "end", length, terms, sentences) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                    [(chunk_lo + i, doc_id, i, start, end, length, terms,
                      np.asarray(members, "<i8").__add__(sent_lo).tobytes())
                     for i, (start, end, length, terms, members) in enumerate(chunk_rows)],
                )
                db.executemany(
                    'INSERT INTO sentences (id, doc_id, start, "end", first_chunk, last_chunk, vector) VALUES (?, ?, ?, ?, ?, ?, ?)',
                    [(sent_lo + i, doc_id, start, end, chunk_lo + first, chunk_lo + last, vector)
                     for i, (start, end, first, last, vector) in enumerate(sentence_rows)],
                )
                stems.update(chunk_stems)
                ids = {"document": doc_id + 1, "chunk": chunk_hi, "sentence": sent_hi}
            db.executemany("INSERT INTO stems (term, df) VALUES (?, ?) ON CONFLICT (term) DO UPDATE SET df = df + excluded.df",
                           stems.items())
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_ids'", (json.dumps(ids),))
        self._after_write()

    def delete(self, sources: Collection[str]) -> None:
        with self._write() as db:
            self._remove(db, list(sources))
        self._after_write()

    def reread(self, config: IndexConfig, metadata: Mapping[str, dict[str, str]]) -> None:
        with self._write() as db:
            db.executemany("UPDATE documents SET metadata = ? WHERE source = ?",
                           [(json.dumps(m), source) for source, m in metadata.items()])
            db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config.__dict__),))
        self._config = config
        self._after_write()

    def _after_write(self) -> None:
        if self._bulk:  # read back at the checkpoint that ends the bulk write, not row by row
            return
        with self._write_lock:
            self._catch_up(self._state())
        self._checkpoint_in_background()

    def _remove(self, db: sqlite3.Connection, sources: list[str]) -> None:
        """Delete documents' rows and leave a tombstone of their id ranges (inside a write)."""
        for part in _parts(sources):
            found = db.execute(f"SELECT id, text, chunk_lo, chunk_hi, sent_lo, sent_hi FROM documents "
                               f"WHERE source IN ({_marks(part)})", part).fetchall()
            for doc_id, text, chunk_lo, chunk_hi, sent_lo, sent_hi in found:
                spans = db.execute('SELECT start, "end" FROM chunks WHERE id >= ? AND id < ?',
                                   (chunk_lo, chunk_hi)).fetchall()
                stems = chunk_stems(self.analyzer, text, spans)
                db.executemany("UPDATE stems SET df = df - ? WHERE term = ?", [(n, t) for t, n in stems.items()])
                db.execute("DELETE FROM sentences WHERE id >= ? AND id < ?", (sent_lo, sent_hi))
                db.execute("DELETE FROM chunks WHERE id >= ? AND id < ?", (chunk_lo, chunk_hi))
                db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
                db.execute("INSERT INTO tombstones (doc_id, chunk_lo, chunk_hi, sent_lo, sent_hi) VALUES (?, ?, ?, ?, ?)",
                           (doc_id, chunk_lo, chunk_hi, sent_lo, sent_hi))

    def _rows(self, prepared: PreparedDocument, dimension: int) -> tuple[tuple, list[tuple], list[tuple], Counter[str]]:
        """A document's rows, computed before the transaction so it stays short."""
        rows = DocumentRows.of(prepared, self.tokenizer, self.analyzer, dimension)
        doc, stamp = prepared.document, prepared.stamp
        doc_row = (doc.source, doc.sha256, doc.title, doc.date, doc.body_start, json.dumps(doc.metadata),
                   json.dumps(list(doc.pages)), doc.text, rows.length, pack_bag(rows.terms, rows.tfs),
                   stamp.size if stamp else None, stamp.mtime_ns if stamp else None)
        chunk_rows = [(c.start, c.end, c.length, pack_bag(c.terms, c.tfs), c.sentences) for c in rows.chunks]
        sentence_rows = [(s.start, s.end, first, last, rows.vectors[i].tobytes())
                         for i, (s, (first, last)) in enumerate(zip(prepared.sentences, prepared.holders))]
        return doc_row, chunk_rows, sentence_rows, rows.stems


def top_k(scores: np.ndarray, k: int) -> Scored:
    """The ``k`` best positive scores, ties to the lower id. Only ids that can be in the top k are
    ranked: a regular sample's k-th best score is a lower bound on the whole's (at least k ids
    reach it), and on a large corpus it admits a few thousand where "scores above 0" admits
    hundreds of thousands."""
    step = len(scores) // (50 * k) if k else 0
    bound = float(np.partition(scores[::step], -k)[-k]) if step > 1 else 0.0
    matched = np.flatnonzero(scores >= bound) if bound > 0 else np.flatnonzero(scores > 0)
    k = min(k, len(matched))
    if k == 0:
        return EMPTY
    values = scores[matched]
    top = matched[values >= np.partition(values, -k)[-k]]  # every id tied with the k-th too
    top = top[np.lexsort((top, -scores[top]))][:k]
    return Scored(top.astype(np.int64), scores[top].astype(np.float32))


def _written(path: Path) -> dict[str, Any]:
    """Fsync a file just written and describe it for its checkpoint: size and CRC-32."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
    return {"crc32": _crc32(path), "bytes": path.stat().st_size}


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            crc = zlib.crc32(block, crc)
    return crc


def _verify(path: Path, entry: dict[str, Any]) -> None:
    """A checkpoint file is whole: its size and CRC-32 as written. (CRC-32 catches every burst of
    damage up to 32 bits and runs at memory speed; these files guard against damage, not attack.)"""
    try:
        if path.stat().st_size != entry["bytes"]:
            raise IndexCorrupt(f"{path.parent.name}/{path.name} has the wrong size")
        crc = _crc32(path)
    except OSError as exc:
        raise IndexCorrupt(f"{path.parent.name}/{path.name} is missing or unreadable") from exc
    if crc != entry.get("crc32"):
        raise IndexCorrupt(f"{path.parent.name}/{path.name} does not match its checksum")


def _parts(items: list, size: int = 900) -> Iterator[list]:
    """Slices small enough for SQLite's bound-parameter limit."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items)) or "NULL"
