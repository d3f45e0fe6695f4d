"""The store contract: the same tests against the embedded store and the database store
(PostgreSQL with pgvector, a real server from tests/postgres.py). Engines are built with the hash
embedder (tests/fake_embedder.py): these tests are about storage and search, not meaning. Two
engines made by one factory share one index, as two processes (or servers) would."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from service import documents, indexing
from service.embedded_store import EmbeddedStore
from service.engine import Engine, build_engine
from service.errors import IndexMismatch, IndexMissing
from service.models import Filters
from service.postgres_store import PostgresStore
from service.settings import Settings

from .fake_embedder import HashEmbedder

Factory = Callable[..., Engine]
SEED = "000_ebf57527fa8dd4ca.txt"
OTHER = "004_db5665c2341ed43f.txt"


@pytest.fixture(params=["embedded", "postgres"])
def make(request: pytest.FixtureRequest, tmp_path: Path, corpus_dir: Path) -> Iterator[Factory]:
    """make(model=..., **settings) -> a new engine over this test's one index."""
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir, corpus)
    url = request.getfixturevalue("database_url") if request.param == "postgres" else None
    built: list[Engine] = []

    def build(model: str = "hash-embedder", **overrides: object) -> Engine:
        settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", state_dir=tmp_path / "state",
                            database_url=url, **overrides)
        built.append(build_engine(settings, embedder=HashEmbedder(model)))
        return built[-1]

    yield build
    for engine in built:
        engine.close()


def best_source(engine: Engine, question: str) -> str | None:
    """The document of the best keyword match (the hash embedder's vectors carry no meaning)."""
    found = engine.index.keyword(question, 1)
    return engine.store.chunks(found.ids.tolist())[int(found.ids[0])].source if len(found.ids) else None


def test_round_trip_preserves_documents_chunks_and_vectors(make: Factory, corpus_dir: Path) -> None:
    engine = make()
    engine.sync()
    before = engine.search("Which resolutions were cited?", top_k=5)
    fresh = make()  # another process: everything read from the store
    assert fresh.search("Which resolutions were cited?", top_k=5) == before
    for doc in fresh.documents():
        assert fresh.document(doc.source).text == (corpus_dir / doc.source).read_text("utf-8")
    for p in before:
        assert p.text == fresh.document(p.source).text[p.start : p.end]
    store = fresh.store
    sentences = store.chunk_sentences([int(fresh.index.keyword("resolutions", 1).ids[0])])
    ids = [s.id for group in sentences.values() for s in group]
    texts = [fresh.document(s.source).text[s.start : s.end] for group in sentences.values() for s in group]
    np.testing.assert_allclose(store.sentence_vectors(ids), HashEmbedder().embed(texts), rtol=0, atol=0)


def test_sync_reads_and_embeds_only_what_changed(make: Factory) -> None:
    engine = make()
    first = engine.sync()
    assert len(first.added) == 2 and first.embedded_sentences == first.sentences

    again = engine.sync()
    assert not again.changed and again.embedded_sentences == 0

    corpus = engine.settings.corpus_dir
    (corpus / "new.md").write_text("# Fresh memo\n\nThe memo mentions Zanzibar twice. Zanzibar.\n")
    edited = corpus / OTHER
    edited.write_text(edited.read_text("utf-8") + "\nThe summit closed with a dinner.\n", "utf-8")
    (corpus / SEED).unlink()
    embedder: HashEmbedder = engine.embedder  # type: ignore[assignment]
    embedder.texts = 0
    report = engine.sync()
    assert (report.added, report.updated, report.removed) == (["new.md"], [OTHER], [SEED])
    assert embedder.texts == report.embedded_sentences == report.sentences  # the unchanged one was removed
    assert best_source(engine, "Zanzibar memo") == "new.md"
    assert engine.document("new.md").title == "Fresh memo"
    assert {d.source for d in make().documents()} == {"new.md", OTHER}


def test_an_upload_embeds_only_its_document(make: Factory) -> None:
    engine = make()
    engine.sync()
    embedder: HashEmbedder = engine.embedder  # type: ignore[assignment]
    embedder.texts = 0
    report = engine.add([("memo.txt", b"The convoy reached Lisbon on Tuesday. It carried grain.")])
    assert report.added == ["memo.txt"] and embedder.texts == 2  # its two sentences, nothing else
    assert (report.documents, report.chunks) == (3, 14)
    assert best_source(engine, "convoy Lisbon grain") == "memo.txt"
    engine.delete("memo.txt")
    assert all(p.source != "memo.txt" for p in engine.search("convoy Lisbon grain", top_k=10))
    assert engine.store.counts().documents == 2


def test_a_replaced_document_leaves_nothing_of_its_old_text(make: Factory) -> None:
    engine = make()
    engine.sync()
    engine.add([("memo.txt", b"The convoy reached Lisbon on Tuesday.")])
    engine.add([("memo.txt", b"The ferry left Oporto at dawn.")])
    assert best_source(engine, "ferry Oporto dawn") == "memo.txt"
    assert all(p.source != "memo.txt" for p in engine.search("convoy Lisbon Tuesday", top_k=20)
               if "Lisbon" in p.text) and "Lisbon" not in engine.document("memo.txt").text
    assert engine.store.stem_frequencies({"lisbon", "oporto"}) == {"oporto": 1}
    assert engine.store.counts().documents == 3


def test_a_checkpoint_keeps_every_answer(make: Factory) -> None:
    engine = make()
    engine.sync()
    engine.add([(f"memo-{i}.txt", f"Memo {i} says the depot {i} holds {i * 3} crates.".encode()) for i in range(20)])
    engine.delete("memo-3.txt")
    questions = ["Which resolutions were cited?", "depot 7 crates", "depot 3 crates"]
    before = [engine.search(q, top_k=5) for q in questions]
    assert engine.store.checkpoint(force=True)
    assert [engine.search(q, top_k=5) for q in questions] == before
    assert [make().search(q, top_k=5) for q in questions] == before


def test_a_failed_write_changes_nothing(make: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make()
    engine.sync()
    before = engine.documents()
    counts = engine.store.counts()
    corpus_before = sorted(p.name for p in engine.settings.corpus_dir.iterdir())

    def fail(*args: object) -> None:
        raise OSError("disk I/O error (simulated)")

    # Inside the write's transaction, after its first statements.
    monkeypatch.setattr(type(engine.store), "_remove", fail)
    with pytest.raises(OSError, match="simulated"):
        engine.add([("extra.txt", b"Another document about Lisbon.")])
    monkeypatch.undo()
    assert engine.documents() == before == make().documents()
    assert engine.store.counts() == counts
    assert sorted(p.name for p in engine.settings.corpus_dir.iterdir()) == corpus_before


def test_filters_restrict_both_signals(make: Factory) -> None:
    engine = make()
    engine.sync()
    engine.add([("dated.txt", b"date 2031-05-02\n\nThe resolutions were debated in Lisbon.")])
    only = engine.search("Which resolutions were cited?", top_k=10, filters=Filters(source=[OTHER]))
    assert only and {p.source for p in only} == {OTHER}
    dated = engine.search("resolutions", top_k=10, filters=Filters(date_from="2031-01-01"))
    assert {p.source for p in dated} == {"dated.txt"}
    assert engine.search("resolutions", top_k=10, filters=Filters(date_to="1990-01-01")) == []


def test_other_model_settings_are_refused_with_a_clear_message(make: Factory) -> None:
    make().sync()
    with pytest.raises(IndexMismatch, match="chunker"):
        make(chunk_size=800).load()
    other = make(chunk_size=800)
    if other.store.shared:  # other servers answer from it: only an explicit rebuild replaces it
        with pytest.raises(IndexMismatch, match="chunker"):
            other.sync()
        assert other.sync(rebuild=True).rebuilt_because == "asked to rebuild"
    else:  # what `serve` does with its own folder: rebuild
        report = other.sync()
        assert report.rebuilt_because and "chunker" in report.rebuilt_because and len(report.added) == 2


def test_an_index_read_by_an_older_reader_is_read_anew_without_embedding(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "READER_VERSION", indexing.READER_VERSION - 1)
    monkeypatch.setattr(documents.aliases, "mine", lambda text: {})  # what that reader did not keep
    make().sync()
    monkeypatch.undo()
    current = make()
    embedder: HashEmbedder = current.embedder  # type: ignore[assignment]
    report = current.sync()
    assert not report.rebuilt_because and not report.changed and embedder.texts == 0
    assert "PRC" in current.document("004_db5665c2341ed43f.txt").metadata["aliases"]
    assert current.live.store.open().chunker["reader"] == indexing.READER_VERSION  # done once


def test_missing_index_says_how_to_build_it(make: Factory) -> None:
    with pytest.raises(IndexMissing, match="footnote index"):
        make().load()


def test_a_write_by_another_process_is_seen_at_the_next_question(make: Factory) -> None:
    serving = make()
    serving.sync()
    assert best_source(serving, "Zanzibar spice harbour") != "spice.txt"
    other = make()  # e.g. `footnote index PATH` beside the server, or another server
    other.add([("spice.txt", b"Zanzibar's spice harbour reopened.")])
    assert best_source(serving, "Zanzibar spice harbour") == "spice.txt"
    other.delete(SEED)
    assert SEED not in {d.source for d in serving.documents()}
    assert all(p.source != SEED for p in serving.search("resolutions", top_k=10))


def test_readers_see_a_document_whole_while_it_is_rewritten(make: Factory) -> None:
    engine = make()
    engine.sync()
    versions = [f"Version {v} of the ledger. The ledger lists {v} barrels of kumquat oil.".encode() for v in range(8)]
    engine.add([("ledger.txt", versions[0])])
    reader = make()
    done = threading.Event()
    seen: list[str] = []

    def write() -> None:
        for data in versions[1:] * 3:
            engine.add([("ledger.txt", data)])
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while True:
        finished = done.is_set()
        found = reader.index.keyword("kumquat oil barrels ledger", 3)
        for chunk in reader.store.chunks(found.ids.tolist()).values():  # one version, never two
            seen.append(chunk.text)
            assert chunk.text.encode() in versions
        if finished:
            break
    writer.join()
    assert seen and reader.store.counts().documents == 3


def test_both_stores_rank_alike(tmp_path: Path, corpus_dir: Path, database_url: str) -> None:
    """The database store computes BM25 in SQL and searches vectors with HNSW: on the same
    documents and questions, the same passages in the same order as the embedded store."""
    engines = []
    for name, url in (("embedded", None), ("postgres", database_url)):
        shutil.copytree(corpus_dir, tmp_path / name / "corpus")
        settings = Settings(corpus_dir=tmp_path / name / "corpus", index_dir=tmp_path / name / "index", database_url=url)
        engines.append(build_engine(settings, embedder=HashEmbedder()))
    for engine in engines:
        engine.sync()
        engine.add([(f"memo-{i}.txt", f"Memo {i}: the depot holds {i} crates of resolutions.".encode())
                    for i in range(12)])
    assert isinstance(engines[0].store, EmbeddedStore) and isinstance(engines[1].store, PostgresStore)
    for question in ["Which resolutions were cited?", "North Korean troops in Russia", "depot crates",
                     "summit dinner Washington", "resolutions resolutions 2270"]:
        a, b = (e.index.keyword(question, 30) for e in engines)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
        assert a.ids.tolist() == b.ids.tolist()
        assert [p.source for p in engines[0].search(question)] == [p.source for p in engines[1].search(question)]

