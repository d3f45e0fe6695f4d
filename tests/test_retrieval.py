from __future__ import annotations

from service.engine import Engine
from service.retrieval import FootnoteRetriever, fuse


def test_fusion_rewards_agreement_and_is_deterministic() -> None:
    fused = fuse([([1, 2, 3], 1.0), ([3, 1, 4], 1.0)], rrf_k=60)
    assert [row for row, _ in fused] == [1, 3, 2, 4]
    assert fuse([([5, 6], 1.0), ([6, 5], 1.0)], 60) == fuse([([5, 6], 1.0), ([6, 5], 1.0)], 60)


def test_keyword_ranking_finds_exact_terms_dense_blurs(engine: Engine) -> None:
    index = engine.index
    row = index.keyword("Article 51", 1)[0]
    assert "Article 51" in index.snapshot.chunks[row].text


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
    assert answers == expected * 8
