"""A deterministic embedder for tests and benchmarks that need no meaning: each text's vector is
drawn from a generator seeded by the text's hash, so equal texts embed equally and nothing is
loaded. It reports whatever model name and dimension it is given (the benchmarks give the real
model's, so that `footnote serve` with the real model accepts the index they build)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np


class HashEmbedder:
    def __init__(self, name: str = "hash-embedder", dimension: int = 384) -> None:
        self.name = name
        self._dimension = dimension
        self.calls = 0
        self.texts = 0

    @property
    def dimension(self) -> int:
        return self._dimension

    def warm_up(self) -> None:
        pass

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        out = np.empty((len(texts), self._dimension), np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(self._dimension, dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        if progress:
            progress(len(texts))
        return out
