from __future__ import annotations

import numpy as np
import pytest

from service.engine import Engine
from service.models import Answer
from service.retrieval import FootnoteRetriever, KeywordIndex, Scored
from service.text import Analyzer


def test_standardized_scores_give_missing_rows_the_floor() -> None:
    z, floor = Scored(np.array([4, 7, 9]), np.array([3.0, 2.0, 1.0], np.float32)).standardized()
    assert z[4] > z[7] > z[9] == floor
    assert z[7] == pytest.approx(0.0, abs=1e-6)
    assert Scored(np.array([1, 2]), np.array([5.0, 5.0], np.float32)).standardized() == ({1: 0.0, 2: 0.0}, 0.0)


def test_dense_and_keyword_signals_each_find_their_match(engine: Engine) -> None:
    index = engine.index
    top = index.keyword("Article 51", 1)
    assert "Article 51" in index.snapshot.chunks[int(top.rows[0])].text
    # No word in common with the passage it should find.
    query = engine.embedder.embed(["Pyongyang's soldiers deployed to fight for Moscow"])[0]
    best = index.dense(query, 3)
    assert "troops" in index.snapshot.chunks[int(best.rows[0])].text
    assert list(best.scores) == sorted(best.scores, reverse=True)


def test_passages_never_overlap(engine: Engine) -> None:
    passages = engine.search("North Korea troops Russia Ukraine", top_k=10)
    for a in passages:
        for b in passages:
            if a is not b and a.source == b.source:
                assert a.end <= b.start or b.end <= a.start


def test_langchain_retriever_returns_exact_spans(engine: Engine) -> None:
    retriever = FootnoteRetriever(retriever=engine.retriever, index=engine.index, top_k=3)
    docs = retriever.invoke("What does PRC stand for?")
    assert len(docs) == 3
    for doc in docs:
        text = engine.document(doc.metadata["source"]).text
        assert text[doc.metadata["start"] : doc.metadata["end"]] == doc.page_content
    assert "People’s Republic of China" in docs[0].page_content


def test_concurrent_questions_get_the_single_threaded_answer(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    questions = ["Which resolutions were cited?", "What does PRC stand for?", "Who won the 2022 FIFA World Cup?"]
    expected = [engine.ask(q) for q in questions]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(engine.ask, questions * 8))
    # Questions asked together are embedded in one batch, which moves a score in its 7th digit.
    assert [shown(a) for a in answers] == [shown(a) for a in expected] * 8


def shown(answer: Answer) -> Answer:
    return answer.model_copy(update={
        "passages": [p.model_copy(update={"score": round(p.score, 4)}) for p in answer.passages]
    })


class KeywordCountReranker:
    """A small deterministic stand-in for a cross-encoder (no cross-encoder weights exist here):
    scores a passage by how often it says "Ukraine"."""

    name = "ukraine-counter"

    def score(self, question: str, passages: list[str]) -> list[float]:
        return [float(p.count("Ukraine")) for p in passages]


def test_reranker_reorders_the_retrieved_pool(engine: Engine) -> None:
    reranked = Engine(engine.settings, engine.embedder, KeywordCountReranker())
    reranked._use(engine.index.snapshot)
    question = "Which resolutions were cited?"
    passages = reranked.search(question, top_k=3)
    counts = [p.text.count("Ukraine") for p in passages]
    assert len(passages) == 3 and counts == sorted(counts, reverse=True)
    assert [p.score for p in passages] == [float(c) for c in counts]
    # The pool it reorders is the retriever's own: the reranker changes order, not membership.
    pool = {p.chunk_id for p in engine.search(question, top_k=engine.settings.rerank_depth)}
    assert {p.chunk_id for p in passages} <= pool
    assert max(counts) == max(p.text.count("Ukraine") for p in engine.search(question, top_k=30))


def test_keyword_top_k_on_a_large_corpus_is_the_exact_top_k() -> None:
    """Past 100 chunks per candidate the search ranks only chunks above a sampled bound; what it
    returns must still be the true top k, ties broken by row."""
    rng = np.random.default_rng(3)
    vocabulary = [f"w{i}" for i in range(400)]
    weights = 1 / np.arange(1, 401)
    texts = [" ".join(rng.choice(vocabulary, 12, p=weights / weights.sum())) for _ in range(12_000)]
    chunk_doc = np.arange(len(texts), dtype=np.int64) // 4
    documents = [" ".join(texts[i : i + 4]) for i in range(0, len(texts), 4)]
    index = KeywordIndex(texts, documents, chunk_doc, Analyzer().stemmer)
    everything = KeywordIndex(texts, documents, chunk_doc, Analyzer().stemmer)
    for question in ("w3 w17", "w0", "w250 w399 w1", "w120"):
        for k in (10, 100):
            got = index.search(question, k)
            full = everything.search(question, len(texts))  # every match ranked: no bound applies
            np.testing.assert_array_equal(got.rows, full.rows[:k])
            np.testing.assert_allclose(got.scores, full.scores[:k])
