"""Embedding backends. The default: the packaged model exported to ONNX on first use and run on
ONNX Runtime; its vectors are torch's (so indexes and caches are shared); int8 is its own model.
Torch runs on any device, a GPU when asked or, with ``auto``, when torch sees one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from service.embedding import SentenceTransformerEmbedder, resolve_device, resolve_model_path
from service.engine import Engine, build_engine
from service.errors import IndexMismatch
from service.onnx_embedding import OnnxEmbedder, ensure_export
from service.settings import Settings


@pytest.fixture(scope="module")
def texts(engine: Engine) -> list[str]:
    held = engine.store.chunk_sentences(list(range(1, engine.store.counts().chunks + 1)))
    sentences = sorted({(s.id, s.source, s.start, s.end) for group in held.values() for s in group})
    texts = {source: engine.document(source).text for _, source, _, _ in sentences}
    return [texts[source][start:end] for _, source, start, end in sentences]


@pytest.fixture(scope="module")
def torch_vectors(texts: list[str]) -> np.ndarray:
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2").embed(texts)


def test_default_backend_gives_torchs_vectors(engine: Engine, texts: list[str], torch_vectors: np.ndarray) -> None:
    assert isinstance(engine.embedder, OnnxEmbedder) and engine.embedder.name == "all-MiniLM-L6-v2"
    vectors = engine.embedder.embed(texts)
    np.testing.assert_allclose(vectors, torch_vectors, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_int8_is_close_but_refuses_an_index_built_at_full_precision(
    engine: Engine, texts: list[str], torch_vectors: np.ndarray
) -> None:
    int8 = build_engine(engine.settings.model_copy(update={"embedding_backend": "onnx-int8"}))
    cosines = (int8.embedder.embed(texts) * torch_vectors).sum(axis=1)
    assert cosines.mean() > 0.97 and int8.embedder.name != engine.embedder.name
    with pytest.raises(IndexMismatch, match="rebuild"):
        int8.load()


def test_export_is_made_once_and_again_when_the_model_changes(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(resolve_model_path("all-MiniLM-L6-v2"), model)
    (tmp_path / "exports" / ".export-crashed").mkdir(parents=True)  # a crash's leftover is ignored
    first = ensure_export(str(model), tmp_path / "exports", quantize=False)
    made = (first / "model.onnx").stat().st_mtime_ns
    assert ensure_export(str(model), tmp_path / "exports", quantize=False) == first
    assert (first / "model.onnx").stat().st_mtime_ns == made
    config = model / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    assert ensure_export(str(model), tmp_path / "exports", quantize=False) != first
    embedder = OnnxEmbedder(str(model), tmp_path / "exports")
    assert embedder.embed(["a sentence"]).shape == (1, 384)


def test_onnx_backends_run_on_the_cpu() -> None:
    with pytest.raises(ValidationError, match="embedding_backend 'torch'"):
        Settings(device="cuda")
    assert Settings(device="cuda", embedding_backend="torch").device == "cuda"


def test_auto_device_takes_a_gpu_only_when_torch_sees_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (resolve_device("auto"), resolve_device("cuda")) == ("cpu", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
