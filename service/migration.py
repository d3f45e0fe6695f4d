"""Upgrading an index written by an earlier version (format 2: ``manifest.json``, a JSON table and a
FAISS file) to the current store, in place and without embedding anything again: the sentence
vectors are read back from the old FAISS index."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .chunking import Chunk, Sentence
from .documents import Document
from .errors import IndexCorrupt
from .indexing import Progress, holders
from .store import IndexConfig, PreparedDocument, Store

log = logging.getLogger(__name__)

LEGACY_MANIFEST = "manifest.json"
BATCH = 256


def migrate_legacy(directory: Path, store: Store, progress: Progress | None = None) -> bool:
    """Copy a format-2 index in ``directory`` into ``store`` (which does not exist yet) and remove
    the old files once the new store has everything. False if there is nothing to upgrade; a
    damaged old index is left where it is (and the caller rebuilds from the corpus)."""
    manifest_path = directory / LEGACY_MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest, table, vectors = _read(directory, manifest_path)
    except (IndexCorrupt, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot upgrade the old index in %s (%s); it is left in place", directory, exc)
        return False
    config = IndexConfig(**manifest["config"])
    documents = [
        Document(d["source"], d["text"], d["title"], d["date"], d["body_start"], d["metadata"], tuple(d["pages"]))
        for d in table["documents"]
    ]
    log.info("upgrading the index in %s from format 2 (%d documents, %d vectors); nothing is embedded again",
             directory, len(documents), vectors.ntotal)
    chunks_of: dict[str, list[dict[str, Any]]] = {}
    for c in table["chunks"]:
        chunks_of.setdefault(c["source"], []).append(c)
    sentences_of: dict[str, list[tuple[int, Sentence]]] = {}
    for row, (d, a, b) in enumerate(table["sentences"]):
        source = documents[d].source
        sentences_of.setdefault(source, []).append((row, Sentence(source, a, b)))
    store.create(config)
    matrix = vectors.reconstruct_n(0, vectors.ntotal) if vectors.ntotal else np.zeros((0, config.dimension), np.float32)
    batch: list[PreparedDocument] = []
    with store.bulk():
        for done, doc in enumerate(documents, start=1):
            chunks = [Chunk(c["id"], doc.source, c["start"], c["end"], doc.text[c["start"] : c["end"]])
                      for c in chunks_of.get(doc.source, [])]
            rows = sentences_of.get(doc.source, [])
            sentences = [s for _, s in rows]
            batch.append(PreparedDocument(doc, chunks, sentences, holders(chunks, sentences),
                                          matrix[[r for r, _ in rows]] if rows else matrix[:0]))
            if len(batch) == BATCH or done == len(documents):
                store.upsert(batch)
                batch = []
            if progress:
                progress(done, len(documents))
    store.checkpoint(force=True)
    # The new store is committed: the old files go, manifest first (it is what names the others).
    manifest_path.unlink()
    for entry in manifest["files"].values():
        (directory / Path(entry["name"]).name).unlink(missing_ok=True)
    return True


def _read(directory: Path, manifest_path: Path) -> tuple[dict[str, Any], dict[str, Any], faiss.Index]:
    manifest = json.loads(manifest_path.read_text("utf-8"))
    if manifest.get("format") != "footnote-index" or manifest.get("format_version") != 2:
        raise IndexCorrupt(f"{manifest_path} is not a format-2 Footnote manifest")
    data = {}
    for key, entry in manifest["files"].items():
        raw = (directory / Path(entry["name"]).name).read_bytes()
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise IndexCorrupt(f"{entry['name']} does not match its checksum")
        data[key] = raw
    vectors = faiss.deserialize_index(np.frombuffer(data["vectors"], dtype=np.uint8))
    return manifest, json.loads(data["chunks"]), vectors
