"""Bringing the index in line with a set of documents, embedding only what changed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .chunking import CHUNKER_VERSION, Chunk, chunk_document
from .documents import Document
from .embedding import Embedder
from .errors import IndexCorrupt, IndexMismatch, IndexMissing
from .store import IndexConfig, IndexSnapshot, IndexStore, new_vector_index

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called as progress(done, total) with chunk counts while embedding."""


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    documents: int = 0
    chunks: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    rebuilt_because: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt_because)

    def summary(self) -> str:
        text = (
            f"{self.documents} documents, {self.chunks} chunks: {len(self.added)} added, "
            f"{len(self.updated)} updated, {len(self.removed)} removed, {len(self.unchanged)} unchanged "
            f"({self.embedded_chunks} chunks embedded in {self.seconds:.1f}s)"
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
) -> tuple[IndexSnapshot, IndexReport]:
    """Make the index hold exactly ``documents``; save only if something changed."""
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
                log.warning("rebuilding the index: %s", exc)
                report.rebuilt_because = str(exc)
                old = None

        wanted = {d.source: d for d in sorted(documents, key=lambda d: d.source)}
        kept: dict[str, tuple[list[Chunk], np.ndarray]] = {}
        old_vectors = old.vectors_by_source() if old else {}
        to_embed: list[Chunk] = []
        for source, doc in wanted.items():
            previous = old.documents.get(source) if old else None
            if old and previous and previous.sha256 == doc.sha256:
                kept[source] = old_vectors.get(source, ([], np.zeros((0, config.dimension), np.float32)))
                report.unchanged.append(source)
                continue
            (report.updated if previous else report.added).append(source)
            to_embed.extend(chunk_document(doc, config.chunker["chunk_size"], config.chunker["chunk_overlap"]))
        if old:
            report.removed = sorted(set(old.documents) - set(wanted))

        if not report.changed and old is not None:
            report.documents, report.chunks = len(old.documents), len(old.chunks)
            report.seconds = time.perf_counter() - began
            return old, report

        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, len(to_embed))

        fresh = embedder.embed([c.text for c in to_embed], progress=step)
        fresh_by_source: dict[str, list[int]] = {}
        for i, chunk in enumerate(to_embed):
            fresh_by_source.setdefault(chunk.source, []).append(i)

        chunks: list[Chunk] = []
        rows: list[np.ndarray] = []
        for source in wanted:
            if source in kept:
                kept_chunks, kept_vectors = kept[source]
                chunks.extend(kept_chunks)
                rows.append(kept_vectors)
            else:
                idx = fresh_by_source.get(source, [])
                chunks.extend(to_embed[i] for i in idx)
                rows.append(fresh[idx] if idx else np.zeros((0, config.dimension), np.float32))
        matrix = np.vstack(rows) if rows else np.zeros((0, config.dimension), np.float32)
        snapshot = IndexSnapshot(config, wanted, chunks, new_vector_index(matrix, config.dimension))
        store.save(snapshot)

    report.documents, report.chunks, report.embedded_chunks = len(wanted), len(chunks), len(to_embed)
    report.seconds = time.perf_counter() - began
    return snapshot, report
