"""Cutting documents into what the store holds, and reports of what a write changed."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from .chunking import CHUNKER_VERSION, chunk_document, chunk_sentences, split_sentences
from .documents import READER_VERSION, Document
from .embedding import Embedder
from .errors import IndexMismatch, InvalidDocument
from .store import FileStamp, IndexConfig, PreparedDocument

Progress = Callable[[int, int], None]
"""Called as progress(done, total) with document counts while indexing (or upgrading an index)."""


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Not added because the same text is indexed under another name: new name -> indexed name.
    duplicates: dict[str, str] = field(default_factory=dict)
    # Corpus files that could not be read (empty, image-only, encrypted, malformed): name -> why.
    skipped: dict[str, str] = field(default_factory=dict)
    documents: int = 0
    chunks: int = 0
    sentences: int = 0
    embedded_sentences: int = 0
    seconds: float = 0.0
    rebuilt_because: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt_because)

    def summary(self) -> str:
        text = (
            f"{self.documents} documents, {self.chunks} chunks: {len(self.added)} added, "
            f"{len(self.updated)} updated, {len(self.removed)} removed, {len(self.unchanged)} unchanged "
            f"({self.embedded_sentences} of {self.sentences} sentences embedded in {self.seconds:.1f}s)"
        )
        if self.duplicates:
            text += "; already indexed under another name: " + ", ".join(
                f"{new} (= {old})" for new, old in self.duplicates.items()
            )
        if self.skipped:
            text += "; skipped, unreadable: " + "; ".join(self.skipped.values())
        return f"{text}; rebuilt: {self.rebuilt_because}" if self.rebuilt_because else text


def index_config(embedder: Embedder, chunk_size: int, chunk_overlap: int) -> IndexConfig:
    return IndexConfig(
        model=embedder.name,
        dimension=embedder.dimension,
        chunker={"version": CHUNKER_VERSION, "reader": READER_VERSION, "chunk_size": chunk_size,
                 "chunk_overlap": chunk_overlap},
    )


def read_by_older_reader(found: IndexConfig, wanted: IndexConfig) -> bool:
    """Whether an index differs from ``wanted`` only in the reader that read its documents: then
    their metadata is derived anew from the stored text, and nothing is embedded again."""
    def others(config: IndexConfig) -> tuple[str, int, dict[str, int]]:
        return config.model, config.dimension, {k: v for k, v in config.chunker.items() if k != "reader"}

    # Indexes from before the reader's version was recorded were read by version 1.
    return others(found) == others(wanted) and found.chunker.get("reader", 1) < wanted.chunker["reader"]


def check_config(found: IndexConfig, wanted: IndexConfig) -> None:
    for label, a, b in (
        ("embedding model", found.model, wanted.model),
        ("dimension", found.dimension, wanted.dimension),
        ("chunker", found.chunker, wanted.chunker),
    ):
        if a != b:
            raise IndexMismatch(
                f"index was built with {label} {a!r} but settings ask for {b!r}: "
                "rebuild with `footnote index --rebuild`"
            )


def check_size(doc: Document, max_sentences: int) -> None:
    """Refuse a document of more sentences than one write should embed (a 100,000-line log)."""
    count = len(split_sentences(doc.text, doc.body_start))
    if count > max_sentences:
        raise InvalidDocument(f"{doc.source}: {count:,} sentences, over the limit of {max_sentences:,} per document "
                              "(FOOTNOTE_MAX_DOCUMENT_SENTENCES); split it")


def prepare(
    documents: list[Document], embedder: Embedder, config: IndexConfig, stamps: dict[str, FileStamp] | None = None,
) -> list[PreparedDocument]:
    """Chunk and embed documents (one embedding call for all of their sentences)."""
    size, overlap = config.chunker["chunk_size"], config.chunker["chunk_overlap"]
    cut = []
    for doc in documents:
        chunks = chunk_document(doc, size, overlap)
        sentences = chunk_sentences(doc, chunks)
        cut.append((doc, chunks, sentences, holders(chunks, sentences)))
    texts = [doc.text[s.start : s.end] for doc, _, sentences, _ in cut for s in sentences]
    vectors = embedder.embed(texts)
    out, at = [], 0
    for doc, chunks, sentences, held in cut:
        out.append(PreparedDocument(doc, chunks, sentences, held, vectors[at : at + len(sentences)],
                                    (stamps or {}).get(doc.source)))
        at += len(sentences)
    return out


def holders(chunks: list, sentences: list) -> list[tuple[int, int]]:
    """For each sentence, the first and last chunk holding it. Chunks are ordered by start and
    by end, so the holders of a sentence are consecutive: found by bisection, not by a scan."""
    starts = [c.start for c in chunks]
    ends = [c.end for c in chunks]
    out = []
    for s in sentences:
        last = bisect_right(starts, s.start) - 1
        first = bisect_left(ends, s.end)
        out.append((first, last))
    return out
