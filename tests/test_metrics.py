"""`GET /metrics` as Prometheus scrapes it: parsed with prometheus_client's own parser."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from service.api import create_app
from service.engine import build_engine
from service.settings import Settings

from .fake_openai import Reply

KEY = "metrics-key-3f9c"


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_count_what_was_asked_and_written(tmp_path: Path, corpus_dir: Path, embedder) -> None:  # noqa: ANN001
    shutil.copytree(corpus_dir, tmp_path / "corpus")
    settings = Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", state_dir=tmp_path / "state",
                        api_keys=KEY)
    engine = build_engine(settings, embedder=embedder)
    with TestClient(create_app(engine=engine, sync=True)) as client:
        assert client.get("/metrics").status_code == 401  # behind the keys, like every route
        auth = {"Authorization": f"Bearer {KEY}"}
        for question in ("Which resolutions were cited?", "Where was the NATO summit held?"):
            assert client.post("/ask", json={"question": question}, headers=auth).status_code == 200
        refused = client.post("/ask", json={"question": "What is the boiling point of tungsten?"}, headers=auth)
        assert refused.json()["answerable"] is False
        assert client.post("/documents", files=[("files", ("owls.txt", b"Barn owls nest in towers."))],
                           headers=auth).status_code == 200
        samples = scrape(client)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("footnote_answers_total", mode="extractive", answerable="true") == 2
    assert value("footnote_answers_total", mode="extractive", answerable="false") == 1
    for stage in ("embed", "keyword", "dense", "fuse", "answer"):
        assert value("footnote_stage_seconds_count", stage=stage) == 3, stage
    assert value("footnote_stage_seconds_count", stage="llm") == 0
    assert value("footnote_citations_per_answer_count") == 3
    assert value("footnote_index_documents") == 3
    assert value("footnote_index_chunks") >= 3
    assert value("footnote_documents_written_total", change="added") == 3  # two at start, one uploaded
    assert value("footnote_ingest_seconds_count") == 2
    # HTTP metrics by route, with buckets fine enough for the p99 of a 10 ms route.
    assert value("http_requests_total", handler="/ask", method="POST", status="200") == 3
    buckets = {float(dict(labels)["le"]) for name, labels in samples
               if name == "http_request_duration_seconds_bucket" and dict(labels).get("handler") == "/ask"}
    assert {0.0025, 0.005, 0.0075, 0.01, 0.015} <= buckets


def test_llm_fallbacks_and_unsupported_sentences_are_counted(llm_engine, fake_llm) -> None:  # noqa: ANN001
    engine = build_engine(llm_engine.settings.model_copy(update={"api_keys": SecretStr(KEY)}), embedder=llm_engine.embedder)
    with TestClient(create_app(engine=engine)) as client:
        auth = {"Authorization": f"Bearer {KEY}"}
        fake_llm.script(*[Reply(status=500)] * 3)  # the endpoint fails (retries too): answered extractively
        ask = {"question": "Which resolutions were cited?"}
        assert client.post("/ask", json=ask, headers=auth).json()["fallback_reason"]
        fake_llm.script("Resolution 2270 was cited [1]. Owls are purple and sing opera [1].")
        answer = client.post("/ask", json=ask, headers=auth).json()
        assert answer["mode"] == "llm" and len(answer["unsupported"]) == 1
        samples = scrape(client)
    fallbacks = {dict(labels)["reason"]: n for (name, labels), n in samples.items()
                 if name == "footnote_llm_fallbacks_total"}
    assert fallbacks == {"OpenAIAPIError": 1}  # the class of the error, never its message
    assert samples[("footnote_answers_total", (("answerable", "true"), ("mode", "extractive")))] == 1
    assert samples[("footnote_answers_total", (("answerable", "true"), ("mode", "llm")))] == 1
    assert samples[("footnote_unsupported_sentences_total", ())] == 1
    assert samples[("footnote_stage_seconds_count", (("stage", "llm"),))] >= 1
