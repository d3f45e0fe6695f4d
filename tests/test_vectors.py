"""The vector indexes: IVF and HNSW against exact search (filtered too), IVF recall past the
exact limit, and the engine switching kind without embedding again."""

from __future__ import annotations

import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from service.engine import Engine, build_engine
from service.models import Filters
from service.vectors import VectorIndexSpec, build, kind_of, search

QUESTIONS = [
    "Which resolutions does the collaboration violate?",
    "Where were the North Korean troops deployed?",
    "What did the Chinese foreign ministry say?",
]


@pytest.fixture(scope="module")
def matrix(engine: Engine) -> np.ndarray:
    count = engine.store.counts().sentences
    return engine.store.sentence_vectors(list(range(1, count + 1)))


def test_auto_is_exact_up_to_the_limit_and_ivf_beyond() -> None:
    spec = VectorIndexSpec("auto", exact_limit=1000)
    assert (spec.kind_for(1000), spec.kind_for(1001)) == ("flat", "ivf")
    assert VectorIndexSpec("hnsw").kind_for(10) == "hnsw"


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_find_what_exact_search_finds(engine: Engine, matrix: np.ndarray, kind: str) -> None:
    spec = VectorIndexSpec(kind)  # type: ignore[arg-type]
    exact, approximate = build(matrix, VectorIndexSpec("flat")), build(matrix, spec)
    assert kind_of(approximate) == kind
    for query in engine.embedder.embed(QUESTIONS):
        for allowed in (None, np.arange(20), np.arange(3)):
            selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
            want = search(exact, query, 10, spec, selector)
            got = search(approximate, query, 10, spec, selector, len(matrix) / len(allowed) if allowed is not None else 1)
            np.testing.assert_array_equal(got[1], want[1])
            if allowed is not None:
                assert set(got[1][got[1] >= 0]) <= set(allowed)


def test_ivf_recall_on_clustered_vectors() -> None:
    """Past the limit: 20,000 vectors in 400 clusters, 50 questions near them."""
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((400, 64)).astype(np.float32)
    labels = rng.integers(0, 400, 20_050)
    points = centers[labels] + 0.15 * rng.standard_normal((20_050, 64)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    data, questions = points[:20_000], points[20_000:]
    spec = VectorIndexSpec(exact_limit=10_000)
    index, exact = build(data, spec), build(data, VectorIndexSpec("flat"))
    assert kind_of(index) == "ivf"
    found = [len(set(search(index, q, 10, spec)[1]) & set(search(exact, q, 10, spec)[1])) for q in questions]
    assert sum(found) / (10 * len(questions)) >= 0.95


def test_engine_switches_kind_without_embedding_again(engine: Engine, tmp_path: Path) -> None:
    shutil.copytree(engine.settings.index_dir, tmp_path / "index")
    settings = engine.settings.model_copy(update={"index_dir": tmp_path / "index", "vector_index": "ivf"})
    ivf = build_engine(settings, embedder=engine.embedder)
    report = ivf.sync()
    assert report.embedded_sentences == 0
    assert ivf.store.describe()["vector_index"] == "ivf"
    generation = ivf.store.describe()["checkpoint"]
    assert ivf.sync().changed is False and ivf.store.describe()["checkpoint"] == generation

    fresh = build_engine(settings, embedder=engine.embedder)  # loads the IVF index from disk
    source = sorted(d.source for d in engine.documents())[0]
    for question in QUESTIONS:
        for filters in (None, Filters(source=[source])):
            want, got = engine.ask(question, filters=filters), fresh.ask(question, filters=filters)
            assert [p.chunk_id for p in got.passages] == [p.chunk_id for p in want.passages]
            assert got.answer == want.answer
