"""The HTTP contract, through FastAPI's TestClient over the real engine and index."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import CORPUS

RESOLUTIONS = "000_ebf57527fa8dd4ca.txt"


def assert_spans_exact(body: dict, client: TestClient) -> None:
    texts: dict[str, str] = {}
    for span in body["citations"] + body["passages"]:
        source = span["source"]
        if source not in texts:
            texts[source] = client.get(f"/documents/{source}").json()["text"]
            # What the API returns is the file as decoded: offsets index the user's own file.
            assert texts[source] == (CORPUS / source).read_text("utf-8")
        quote = span.get("quote", span.get("text"))
        assert texts[source][span["start"] : span["end"]] == quote


def test_health_reports_the_loaded_index(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body == {"status": "ok", "documents": 2, "chunks": body["chunks"], "model": "all-MiniLM-L6-v2", "skipped": {}}
    assert body["chunks"] >= 2


def test_health_answers_load_balancer_probes(client: TestClient) -> None:
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""
    assert client.get("/health", params={"ts": "1732900000"}).json()["status"] == "ok"


def test_resolutions_are_quoted_with_exact_offsets(client: TestClient) -> None:
    response = client.post("/ask", json={"question": "Which resolutions were cited?"})
    assert response.status_code == 200
    body = response.json()
    assert body["answerable"] is True
    first = body["citations"][0]
    assert first["source"] == RESOLUTIONS
    assert first["date"] == "2024-11-09"
    for number in ("2270 (2016)", "1718 (2006)", "1874 (2009)"):
        assert number in first["quote"] and number in body["answer"]
    assert "[1]" in body["answer"]
    assert [c["id"] for c in body["citations"]] == list(range(1, len(body["citations"]) + 1))
    assert [p["rank"] for p in body["passages"]] == list(range(1, len(body["passages"]) + 1))
    assert len(body["passages"]) == 5
    assert_spans_exact(body, client)


def test_unanswerable_question_is_refused_without_citations(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "What is the capital of France?"}).json()
    assert body["answerable"] is False
    assert body["citations"] == []
    assert "do not cover" in body["answer"]
    assert_spans_exact(body, client)


def test_top_k_bounds_the_passages(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "Where was the NATO summit?", "top_k": 2}).json()
    assert len(body["passages"]) == 2


def test_exact_terms_are_found_by_keyword_search(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "1874", "top_k": 1}).json()
    assert "1874" in body["passages"][0]["text"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t"}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"question": "ok?", "top_k": 0}, "top_k"),
        ({"question": "ok?", "top_k": 51}, "top_k"),
        ({"question": "ok?", "top_k": "5"}, "top_k"),
        ({"question": "ok?", "top_k": 2.5}, "top_k"),
        ({"question": 42}, "question"),
        ({"question": None}, "question"),
        ({"question": ["a"]}, "question"),
        ({}, "question"),
        ({"question": "ok?", "topk": 3}, "topk"),
    ],
)
def test_bad_input_is_422_naming_the_field(client: TestClient, payload: dict, field: str) -> None:
    response = client.post("/ask", json=payload)
    assert response.status_code == 422
    assert field in response.json()["message"]


@pytest.mark.parametrize("raw", [b"not json", b"", b"[1, 2]", b'"question"'])
def test_malformed_bodies_are_422(client: TestClient, raw: bytes) -> None:
    response = client.post("/ask", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["message"]


def test_documents_are_listed_with_metadata(client: TestClient) -> None:
    docs = {d["source"]: d for d in client.get("/documents").json()}
    assert set(docs) == {p.name for p in CORPUS.glob("*.txt")}
    assert docs[RESOLUTIONS]["date"] == "2024-11-09"
    assert docs["004_db5665c2341ed43f.txt"]["date"] is None
    assert docs["004_db5665c2341ed43f.txt"]["metadata"]["dateline"].startswith("WASHINGTON")
    assert all(len(d["sha256"]) == 64 and d["chunks"] >= 1 for d in docs.values())


def test_unknown_document_is_404(client: TestClient) -> None:
    response = client.get("/documents/nope.txt")
    assert response.status_code == 404
    assert "nope.txt" in response.json()["detail"]


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/ask", "/documents", "/documents/{source}"} <= set(paths)


OTHER = "004_db5665c2341ed43f.txt"


def test_source_filter_restricts_retrieval_and_keeps_top_k(client: TestClient) -> None:
    question = {"question": "What did NATO say about North Korean troops?", "top_k": 3}
    unfiltered = client.post("/ask", json=question).json()
    assert {p["source"] for p in unfiltered["passages"]} == {RESOLUTIONS, OTHER}
    body = client.post("/ask", json={**question, "filters": {"source": [OTHER]}}).json()
    # Filtering happens inside retrieval: top_k passages, all from the chosen document.
    assert len(body["passages"]) == 3
    assert {p["source"] for p in body["passages"] + body["citations"]} == {OTHER}
    assert_spans_exact(body, client)


def test_date_filter_admits_only_dated_documents_in_range(client: TestClient) -> None:
    question = {"question": "Which resolutions were cited?"}
    inside = client.post("/ask", json={**question, "filters": {"date_from": "2024-11-01", "date_to": "2024-11-30"}})
    assert {p["source"] for p in inside.json()["passages"]} == {RESOLUTIONS}  # the other is undated
    after = client.post("/ask", json={**question, "filters": {"date_from": "2025-01-01"}}).json()
    assert after["passages"] == [] and after["citations"] == [] and not after["answerable"]


@pytest.mark.parametrize(
    ("filters", "needle"),
    [
        ({"source": ["missing.txt"]}, "missing.txt"),
        ({"date_from": "2024-12-01", "date_to": "2024-11-01"}, "date_from"),
        ({"date_from": "November 1st"}, "date_from"),
        ({"source": []}, "source"),
        ({"author": "x"}, "author"),
    ],
)
def test_bad_filters_are_422_naming_the_problem(client: TestClient, filters: dict, needle: str) -> None:
    response = client.post("/ask", json={"question": "Which resolutions were cited?", "filters": filters})
    assert response.status_code == 422
    assert needle in response.text


def test_search_returns_the_passages_ask_would_answer_from(client: TestClient) -> None:
    question = "Which resolutions were cited?"
    passages = client.post("/search", json={"query": question, "top_k": 3}).json()
    asked = client.post("/ask", json={"question": question, "top_k": 3}).json()
    assert [p["chunk_id"] for p in passages] == [p["chunk_id"] for p in asked["passages"]]
    assert client.post("/search", json={"query": "", "top_k": 3}).status_code == 422


def test_votes_from_the_page_are_kept_with_the_answer(client: TestClient) -> None:
    answer = client.post("/ask", json={"question": "Which resolutions were cited?"}).json()
    shown = {k: answer[k] for k in ("question", "answer", "answerable", "mode")}
    shown["citations"] = [{k: c[k] for k in ("id", "source", "quote", "start", "end")} for c in answer["citations"]]
    first = client.post("/feedback", json={"answer": shown, "vote": "up", "voter": "web:test-voter"})
    assert first.status_code == 200
    answer_id = first.json()["answer_id"]
    # The same voter changing their mind replaces the vote.
    assert client.post("/feedback", json={"answer_id": answer_id, "vote": "down", "voter": "web:test-voter"}).json() == {
        "answer_id": answer_id}
    mine = [e for e in client.get("/feedback").json() if e["answer_id"] == answer_id]
    assert [(e["vote"], e["channel"], e["sources"][0]["quote"]) for e in mine] == [
        ("down", "web", answer["citations"][0]["quote"])]
    assert client.post("/feedback", json={"answer_id": "nope", "vote": "up"}).status_code == 404
    neither = client.post("/feedback", json={"vote": "up"})
    assert neither.status_code == 422 and "either answer" in neither.json()["message"]
