"""Bringing the index in line with a set of documents, embedding only what changed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from .chunking import CHUNKER_VERSION, Chunk, Sentence, chunk_document, chunk_sentences
from .documents import Document
from .embedding import Embedder
from .errors import IndexCorrupt, IndexMismatch, IndexMissing
from .store import IndexConfig, IndexSnapshot, IndexStore
from .vectors import VectorIndexSpec, kind_of
from .vectors import build as build_vectors

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called as progress(done, total) with sentence counts while embedding."""


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Not added because the same text is indexed under another name: new name -> indexed name.
    duplicates: dict[str, str] = field(default_factory=dict)
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
        return f"{text}; rebuilt: {self.rebuilt_because}" if self.rebuilt_because else text


def index_config(embedder: Embedder, chunk_size: int, chunk_overlap: int) -> IndexConfig:
    return IndexConfig(
        model=embedder.name,
        dimension=embedder.dimension,
        chunker={"version": CHUNKER_VERSION, "chunk_size": chunk_size, "chunk_overlap": chunk_overlap},
    )


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


def sync_index(
    store: IndexStore,
    embedder: Embedder,
    config: IndexConfig,
    documents: list[Document],
    rebuild: bool = False,
    progress: Progress | None = None,
    *,
    keep_others: bool = False,
    remove: Collection[str] = (),
    vectors: VectorIndexSpec = VectorIndexSpec(),
) -> tuple[IndexSnapshot, IndexReport]:
    """Make the index hold exactly ``documents`` or, with ``keep_others``, add or replace them
    (and drop ``remove``) keeping what else it holds. Saves only if something changed, or if the
    vector index is not of the kind ``vectors`` asks for at this size (rebuilt without embedding)."""
    began = time.perf_counter()
    report = IndexReport()
    with store.writer_lock():
        old: IndexSnapshot | None = None
        if rebuild:
            report.rebuilt_because = "asked to rebuild"
        else:
            try:
                old = store.load()
                check_config(old.config, config)
            except IndexMissing:
                old = None
            except (IndexMismatch, IndexCorrupt) as exc:
                if keep_others:  # rebuilding here would drop every other document
                    raise
                log.warning("rebuilding the index: %s", exc)
                report.rebuilt_because = str(exc)
                old = None

        given = {d.source for d in documents}
        wanted = dict(old.documents) if keep_others and old else {}
        wanted.update((d.source, d) for d in documents)
        for source in remove:
            wanted.pop(source, None)
        wanted = dict(sorted(wanted.items()))
        size, overlap = config.chunker["chunk_size"], config.chunker["chunk_overlap"]
        chunks_of: dict[str, list[Chunk]] = {}
        if old:
            for chunk in old.chunks:
                chunks_of.setdefault(chunk.source, []).append(chunk)
        old_vectors = old.vectors_by_source() if old else {}
        kept: dict[str, tuple[list[Sentence], np.ndarray]] = {}
        to_embed: list[Sentence] = []
        for source, doc in wanted.items():
            previous = old.documents.get(source) if old else None
            if old and previous and previous.sha256 == doc.sha256:
                kept[source] = old_vectors.get(source, ([], np.zeros((0, config.dimension), np.float32)))
                if not keep_others or source in given:
                    report.unchanged.append(source)
                continue
            (report.updated if previous else report.added).append(source)
            chunks_of[source] = chunk_document(doc, size, overlap)
            to_embed.extend(chunk_sentences(doc, chunks_of[source]))
        if old:
            report.removed = sorted(set(old.documents) - set(wanted))

        if not report.changed and old is not None and kind_of(old.vectors) == vectors.kind_for(old.vectors.ntotal):
            report.documents, report.chunks, report.sentences = len(old.documents), len(old.chunks), len(old.sentences)
            report.seconds = time.perf_counter() - began
            return old, report

        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, len(to_embed))

        fresh = embedder.embed([wanted[x.source].text[x.start : x.end] for x in to_embed], progress=step)
        fresh_by_source: dict[str, list[int]] = {}
        for i, sentence in enumerate(to_embed):
            fresh_by_source.setdefault(sentence.source, []).append(i)

        sentences: list[Sentence] = []
        rows: list[np.ndarray] = []
        for source in wanted:
            if source in kept:
                kept_sentences, kept_vectors = kept[source]
                sentences.extend(kept_sentences)
                rows.append(kept_vectors)
            else:
                idx = fresh_by_source.get(source, [])
                sentences.extend(to_embed[i] for i in idx)
                rows.append(fresh[idx] if idx else np.zeros((0, config.dimension), np.float32))
        chunks: list[Chunk] = [c for source in wanted for c in chunks_of.get(source, [])]
        matrix = np.vstack(rows) if rows else np.zeros((0, config.dimension), np.float32)
        snapshot = IndexSnapshot(config, wanted, chunks, sentences, build_vectors(matrix, config.dimension, vectors))
        store.save(snapshot)

    report.documents, report.chunks = len(wanted), len(chunks)
    report.sentences, report.embedded_sentences = len(sentences), len(to_embed)
    report.seconds = time.perf_counter() - began
    return snapshot, report
