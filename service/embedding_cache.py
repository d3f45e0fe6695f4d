"""An on-disk cache of embeddings, keyed by model and text hash: re-indexing a corpus (or a
benchmark) embeds only texts the model has not seen."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np

from .embedding import Embedder

# SQLite's default limit on bound parameters is 999 in old builds.
_LOOKUP_BATCH = 500


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class CachedEmbedder:
    """Wraps an embedder; vectors live in one SQLite file per model under ``directory``.
    Each call opens its own connection, so threads and processes may share the cache."""

    def __init__(self, inner: Embedder, directory: Path) -> None:
        self.inner = inner
        self.name = inner.name
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", inner.name)[-60:]
        digest = hashlib.sha256(inner.name.encode()).hexdigest()[:10]
        self.path = directory / f"{slug}-{digest}.sqlite"

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def warm_up(self) -> None:
        self.inner.warm_up()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
        return conn

    def embed(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        keys = [_key(t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        with closing(self._connect()) as conn:
            unique = list(dict.fromkeys(keys))
            for i in range(0, len(unique), _LOOKUP_BATCH):
                batch = unique[i : i + _LOOKUP_BATCH]
                marks = ",".join("?" * len(batch))
                for key, blob in conn.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", batch):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
            missing = {k: t for k, t in zip(keys, texts) if k not in found}
            if progress and len(found):
                progress(sum(1 for k in keys if k in found))
            if missing:
                vectors = self.inner.embed(list(missing.values()), progress)
                rows = [(k, v.astype(np.float32).tobytes()) for k, v in zip(missing, vectors)]
                with conn:
                    conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
                found.update(zip(missing, vectors))
        return np.vstack([found[k] for k in keys]).astype(np.float32, copy=False)
