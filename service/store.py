"""What every index store offers the engine (the ``Store`` protocol), and the records it holds.

The embedded store (``embedded_store.py``: SQLite plus FAISS and BM25 segments in one folder) is
the default; a database store implements the same protocol. A write is atomic per call: a
reader sees every document of an ``upsert`` or ``delete`` changed, or none.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .chunking import Chunk, Sentence
from .documents import Document
from .keywords import Tokenizer
from .text import Analyzer


@dataclass(frozen=True)
class IndexConfig:
    """What an index was built with; an index is usable only with the same config."""

    model: str
    dimension: int
    chunker: dict[str, int]


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document without its text."""

    source: str
    sha256: str
    title: str | None
    date: str | None
    metadata: dict[str, str]
    pages: tuple[int, ...]
    chunks: int
    # Characters of text: read for listings only (``documents``), not on a question's path.
    characters: int | None = None

    def page_at(self, offset: int) -> int | None:
        return bisect_right(self.pages, offset) if self.pages else None


@dataclass(frozen=True)
class FileStamp:
    """A corpus file's size and modification time when it was indexed: a sync reads only files
    whose stamp changed."""

    size: int
    mtime_ns: int


@dataclass
class PreparedDocument:
    """A document cut and embedded, ready to be written in one piece."""

    document: Document
    chunks: list[Chunk]
    sentences: list[Sentence]
    # For each sentence, the first and last of ``chunks`` (positions) that hold it.
    holders: list[tuple[int, int]]
    vectors: np.ndarray
    stamp: FileStamp | None = None


@dataclass(frozen=True)
class ChunkRow:
    start: int
    end: int
    length: int  # BM25 tokens
    terms: np.ndarray  # term ids (int64)
    tfs: np.ndarray  # their frequencies (float32)
    sentences: list[int]  # positions in the document's sentences


@dataclass(frozen=True)
class DocumentRows:
    """What a store writes for one document, computed before its transaction so that stays short."""

    prepared: PreparedDocument
    length: int
    terms: np.ndarray
    tfs: np.ndarray
    chunks: list[ChunkRow]
    vectors: np.ndarray  # float32, one row per sentence
    stems: Counter[str]  # each analyzer stem once per chunk holding it

    @staticmethod
    def of(prepared: PreparedDocument, tokenizer: Tokenizer, analyzer: Analyzer, dimension: int) -> DocumentRows:
        doc = prepared.document
        terms, tfs, length = tokenizer.bag(doc.text)
        members: list[list[int]] = [[] for _ in prepared.chunks]
        for i, (first, last) in enumerate(prepared.holders):
            for c in range(first, last + 1):
                members[c].append(i)
        stems: Counter[str] = Counter()
        chunks = []
        for chunk, held in zip(prepared.chunks, members):
            chunk_terms, chunk_tfs, chunk_length = tokenizer.bag(chunk.text)
            chunks.append(ChunkRow(chunk.start, chunk.end, chunk_length, chunk_terms, chunk_tfs, held))
            stems.update(set(analyzer.terms(chunk.text)))
        vectors = np.ascontiguousarray(prepared.vectors, dtype=np.float32).reshape(len(prepared.sentences), dimension)
        return DocumentRows(prepared, length, terms, tfs, chunks, vectors, stems)


def chunk_stems(analyzer: Analyzer, text: str, spans: Iterable[tuple[int, int]]) -> Counter[str]:
    """The stems ``DocumentRows.stems`` counted for a stored document's chunks (to take back)."""
    stems: Counter[str] = Counter()
    for start, end in spans:
        stems.update(set(analyzer.terms(text[start:end])))
    return stems


@dataclass(frozen=True)
class StoredSentence:
    id: int
    source: str
    start: int
    end: int


@dataclass(frozen=True)
class Scored:
    """Candidate ids of one signal with their raw scores, best first. A vector search may bring
    the chunks holding each sentence too (``holders``), saving the look-up."""

    ids: np.ndarray
    scores: np.ndarray
    holders: dict[int, range] | None = field(default=None, compare=False)

    def standardized(self) -> tuple[dict[int, float], float]:
        """z-scores by id, and the z-score given to ids this signal did not retrieve."""
        if len(self.scores) == 0:
            return {}, 0.0
        mean, std = float(self.scores.mean()), float(self.scores.std())
        if std < 1e-9:
            return dict.fromkeys(map(int, self.ids), 0.0), 0.0
        z = (self.scores - mean) / std
        return dict(zip(map(int, self.ids), map(float, z))), float(z.min())


EMPTY = Scored(np.zeros(0, np.int64), np.zeros(0, np.float32))


@dataclass
class Counts:
    documents: int = 0
    chunks: int = 0
    sentences: int = 0


@dataclass(frozen=True)
class Admitted:
    """The documents a filter admits, as the store resolved them (opaque to the engine)."""

    sources: frozenset[str]
    detail: object = field(default=None, compare=False)


class Store(Protocol):
    # Whether other servers write to this index too (a database): then this host's corpus folder
    # is not the whole truth, and a mismatched index is refused rather than rebuilt.
    shared: bool

    def exists(self) -> bool:
        """Whether an index has been created here."""

    def open(self) -> IndexConfig:
        """Load the index (refusing a damaged one) and return what it was built with."""

    def create(self, config: IndexConfig) -> None:
        """Start an empty index built with ``config``, replacing whatever was here."""

    def version(self) -> int:
        """Changes with every committed write, by any process."""

    def refresh(self) -> int:
        """Catch up with writes committed elsewhere since the last call; the version now loaded."""

    def counts(self) -> Counts: ...

    def documents(self) -> list[DocumentInfo]: ...

    def infos(self, sources: Iterable[str]) -> dict[str, DocumentInfo]: ...

    def document(self, source: str) -> Document | None: ...

    def fingerprints(self) -> dict[str, tuple[str, FileStamp | None]]:
        """Each document's sha256 and the stamp of the file it was read from."""

    def with_text(self, hashes: Collection[str]) -> dict[str, str]:
        """For each sha256 of a text that is stored, a document that holds it."""

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]: ...

    def chunk_sentences(self, ids: Sequence[int]) -> dict[int, list[StoredSentence]]: ...

    def sentence_chunks(self, ids: Sequence[int]) -> dict[int, range]: ...

    def sentence_vectors(self, ids: Sequence[int]) -> np.ndarray: ...

    def admit(self, sources: Collection[str] | None, date_from: str | None, date_to: str | None) -> Admitted: ...

    def keyword_search(self, question: str, k: int, admitted: Admitted | None) -> Scored:
        """Chunk ids by BM25 of the chunk plus BM25 of its whole document."""

    def vector_search(self, query: np.ndarray, k: int, admitted: Admitted | None) -> Scored:
        """Sentence ids by cosine to ``query``."""

    def stem_frequencies(self, stems: Collection[str]) -> dict[str, int]:
        """How many chunks hold each (analyzer) stem; absent stems are left out."""

    def related_stems(self, stem: str) -> frozenset[str]:
        """The corpus's stems that are forms of ``stem`` (``text.related``), itself included."""

    def upsert(self, documents: Sequence[PreparedDocument]) -> None: ...

    def delete(self, sources: Collection[str]) -> None: ...

    def reread(self, config: IndexConfig, metadata: Mapping[str, dict[str, str]]) -> None:
        """Replace documents' metadata and record ``config``, in one write: what a newer reader
        derives from the stored text, with nothing embedded again."""

    def bulk(self) -> contextlib.AbstractContextManager[None]:
        """Many writes in a row: maintenance waits for the caller's checkpoint at the end."""

    def checkpoint(self, force: bool = False) -> bool:
        """Fold recent writes into the bulk structures when they have grown (or ``force``)."""

    def close(self) -> None: ...


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync it, rename over ``path``, fsync the dir."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
