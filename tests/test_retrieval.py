from __future__ import annotations

import numpy as np
import pytest

from service.embedded_store import top_k
from service.engine import Engine, build_engine
from service.models import Answer
from service.store import Scored


def test_standardized_scores_give_missing_rows_the_floor() -> None:
    z, floor = Scored(np.array([4, 7, 9]), np.array([3.0, 2.0, 1.0], np.float32)).standardized()
    assert z[4] > z[7] > z[9] == floor
    assert z[7] == pytest.approx(0.0, abs=1e-6)
    assert Scored(np.array([1, 2]), np.array([5.0, 5.0], np.float32)).standardized() == ({1: 0.0, 2: 0.0}, 0.0)


def test_dense_and_keyword_signals_each_find_their_match(engine: Engine) -> None:
    index = engine.index
    top = index.keyword("Article 51", 1)
    assert "Article 51" in index.store.chunks(top.ids.tolist())[int(top.ids[0])].text
    # No word in common with the passage it should find.
    query = engine.embedder.embed(["Pyongyang's soldiers deployed to fight for Moscow"])[0]
    best = index.dense(query, 3)
    assert "troops" in index.store.chunks(best.ids.tolist())[int(best.ids[0])].text
    assert list(best.scores) == sorted(best.scores, reverse=True)


def test_passages_never_overlap(engine: Engine) -> None:
    passages = engine.search("North Korea troops Russia Ukraine", top_k=10)
    for a in passages:
        for b in passages:
            if a is not b and a.source == b.source:
                assert a.end <= b.start or b.end <= a.start


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
    reranked = build_engine(engine.settings, embedder=engine.embedder, reranker=KeywordCountReranker())
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
    """Past 50 scores per candidate the ranking looks only at scores above a sampled bound; what
    it returns must still be the true top k, ties broken by the lower id."""
    rng = np.random.default_rng(3)
    for trial in range(20):
        scores = np.where(rng.random(50_000) < 0.3, rng.integers(0, 40, 50_000) / 4, 0).astype(np.float32)
        for k in (1, 10, 100):
            got = top_k(scores, k)
            order = np.lexsort((np.arange(len(scores)), -scores))
            want = order[scores[order] > 0][:k]
            np.testing.assert_array_equal(got.ids, want, err_msg=f"trial {trial}, k {k}")
            np.testing.assert_array_equal(got.scores, scores[want])
