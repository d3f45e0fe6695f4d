"""The index on disk: a FAISS file of sentence vectors, a JSON table of documents, chunks and
sentences, and ``manifest.json`` (see index/README.md).

Saving writes the data files under content-hashed names, then swaps ``manifest.json`` in with
an atomic rename; the manifest is the commit point, so a crash at any moment leaves either the
previous index or the new one, never a mix. Loading verifies every checksum.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .chunking import Chunk, Sentence
from .documents import Document
from .errors import IndexCorrupt, IndexMismatch, IndexMissing, IndexStateError
from .vectors import kind_of

FORMAT = "footnote-index"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
LOCK = ".lock"


@dataclass(frozen=True)
class IndexConfig:
    """What an index was built with; an index is usable only with the same config."""

    model: str
    dimension: int
    chunker: dict[str, int]


@dataclass
class IndexSnapshot:
    """One complete, immutable-by-convention state of the index: row i of ``vectors`` embeds
    ``sentences[i]``."""

    config: IndexConfig
    documents: dict[str, Document]
    chunks: list[Chunk]
    sentences: list[Sentence]
    vectors: faiss.Index
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def chunk_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.documents, 0)
        for chunk in self.chunks:
            counts[chunk.source] += 1
        return counts

    def vectors_by_source(self) -> dict[str, tuple[list[Sentence], np.ndarray]]:
        """Each document's sentences and their vectors, read back in one pass."""
        matrix = self.vectors.reconstruct_n(0, self.vectors.ntotal) if self.sentences else None
        rows: dict[str, list[int]] = {}
        for i, sentence in enumerate(self.sentences):
            rows.setdefault(sentence.source, []).append(i)
        return {s: ([self.sentences[i] for i in idx], matrix[idx]) for s, idx in rows.items()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _document_record(doc: Document) -> dict[str, Any]:
    return {
        "source": doc.source, "sha256": doc.sha256, "title": doc.title, "date": doc.date,
        "body_start": doc.body_start, "metadata": doc.metadata, "pages": list(doc.pages), "text": doc.text,
    }


class IndexStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def version(self) -> tuple[int, int] | None:
        """Changes whenever a save commits (the manifest is replaced); None without an index."""
        try:
            stat = self.manifest_path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_ino

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer at a time across processes; a second writer fails at once, clearly."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / LOCK, "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise IndexStateError(
                    f"{self.directory} is being written by another process; try again when it finishes"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def read_manifest(self) -> dict[str, Any]:
        if not self.exists():
            raise IndexMissing(f"no index in {self.directory}: run `footnote index` to build it")
        try:
            manifest = json.loads(self.manifest_path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorrupt(f"{self.manifest_path} is unreadable") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IndexCorrupt(f"{self.manifest_path} is not a Footnote manifest")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(
                f"index format {manifest.get('format_version')} in {self.directory}, this version "
                f"reads {FORMAT_VERSION}: rebuild with `footnote index --rebuild`"
            )
        return manifest

    def _read_file(self, manifest: dict[str, Any], key: str) -> bytes:
        try:
            entry = manifest["files"][key]
            path = self.directory / Path(entry["name"]).name
            data = path.read_bytes()
        except (KeyError, TypeError, OSError) as exc:
            raise IndexCorrupt(f"index file for {key!r} is missing in {self.directory}") from exc
        if _sha256(data) != entry.get("sha256"):
            raise IndexCorrupt(f"{path.name} does not match its checksum in the manifest")
        return data

    def load(self) -> IndexSnapshot:
        manifest = self.read_manifest()
        table = json.loads(self._read_file(manifest, "chunks"))
        vectors = faiss.deserialize_index(np.frombuffer(self._read_file(manifest, "vectors"), dtype=np.uint8))
        try:
            config = IndexConfig(**manifest["config"])
            documents = {
                d["source"]: Document(
                    d["source"], d["text"], d["title"], d["date"], d["body_start"], d["metadata"],
                    tuple(d["pages"]),
                )
                for d in table["documents"]
            }
            chunks = [
                Chunk(c["id"], c["source"], c["start"], c["end"], documents[c["source"]].text[c["start"] : c["end"]])
                for c in table["chunks"]
            ]
            sources = list(documents)
            sentences = [Sentence(sources[d], a, b) for d, a, b in table["sentences"]]
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise IndexCorrupt(f"chunk table in {self.directory} is malformed") from exc
        if vectors.ntotal != len(sentences) or vectors.d != config.dimension:
            raise IndexCorrupt(
                f"index in {self.directory} holds {vectors.ntotal} vectors for {len(sentences)} sentences"
            )
        for source, doc in documents.items():
            if manifest["documents"].get(source, {}).get("sha256") != doc.sha256:
                raise IndexCorrupt(f"document {source!r} does not match its checksum in the manifest")
        return IndexSnapshot(config, documents, chunks, sentences, vectors, manifest.get("created_at", ""))

    def save(self, snapshot: IndexSnapshot) -> None:
        """Atomically replace the index with ``snapshot``. Call under ``writer_lock``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        position = {source: i for i, source in enumerate(snapshot.documents)}
        table = json.dumps(
            {
                "documents": [_document_record(d) for d in snapshot.documents.values()],
                "chunks": [
                    {"id": c.chunk_id, "source": c.source, "start": c.start, "end": c.end}
                    for c in snapshot.chunks
                ],
                # [document number, start, end]: compact, as there are several per chunk.
                "sentences": [[position[x.source], x.start, x.end] for x in snapshot.sentences],
            },
            ensure_ascii=False,
        ).encode("utf-8")
        vectors = faiss.serialize_index(snapshot.vectors).tobytes()
        files = {}
        for key, data, suffix in (("chunks", table, "json"), ("vectors", vectors, "faiss")):
            digest = _sha256(data)
            name = f"{key}-{digest[:16]}.{suffix}"
            write_atomic(self.directory / name, data)
            files[key] = {"name": name, "sha256": digest, "bytes": len(data)}
        counts = snapshot.chunk_counts()
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": snapshot.created_at,
            "config": {
                "model": snapshot.config.model,
                "dimension": snapshot.config.dimension,
                "chunker": snapshot.config.chunker,
            },
            "documents": {
                s: {"sha256": d.sha256, "chunks": counts[s]} for s, d in snapshot.documents.items()
            },
            "vector_index": kind_of(snapshot.vectors),
            "counts": {
                "documents": len(snapshot.documents), "chunks": len(snapshot.chunks),
                "sentences": len(snapshot.sentences),
            },
            "files": files,
        }
        write_atomic(self.manifest_path, json.dumps(manifest, indent=2).encode("utf-8"))
        self._remove_unreferenced({f["name"] for f in files.values()})

    def _remove_unreferenced(self, keep: set[str]) -> None:
        for path in self.directory.iterdir():
            if path.name in keep or not path.is_file():
                continue
            if path.name.startswith(("chunks-", "vectors-", f".{MANIFEST}.", ".chunks-", ".vectors-")):
                path.unlink(missing_ok=True)
