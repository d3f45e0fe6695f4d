"""The on-disk embedding cache: a rerun embeds nothing it has seen, and returns the same vectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from service.embedding_cache import CachedEmbedder


class Counting:
    """Passes through to the real embedder, counting the texts it is asked to encode."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.name = inner.name
        self.encoded = 0

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def warm_up(self) -> None:
        self.inner.warm_up()

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.encoded += len(texts)
        return self.inner.embed(texts, progress)


def test_cache_serves_seen_texts_without_encoding(tmp_path: Path, embedder) -> None:  # noqa: ANN001
    counting = Counting(embedder)
    texts = ["The alliance condemned the deployment.", "Troops arrived in Kursk.", "Troops arrived in Kursk."]
    first = CachedEmbedder(counting, tmp_path).embed(texts)
    assert counting.encoded == 2  # the repeated text is encoded once
    # A new instance (a new process, in effect) over the same directory.
    again = CachedEmbedder(counting, tmp_path).embed(list(reversed(texts)) + ["A new sentence."])
    assert counting.encoded == 3
    np.testing.assert_array_equal(again[:3], first[::-1])
    np.testing.assert_allclose(first, embedder.embed(texts), atol=1e-6)


def test_cache_is_per_model(tmp_path: Path, embedder) -> None:  # noqa: ANN001
    counting = Counting(embedder)
    CachedEmbedder(counting, tmp_path).embed(["Same text."])
    counting.name = "another-model"
    CachedEmbedder(counting, tmp_path).embed(["Same text."])
    assert counting.encoded == 2 and len(list(tmp_path.glob("*.sqlite"))) == 2
