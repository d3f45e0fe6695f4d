"""The on-disk index: round trip, incremental sync, atomic save, corruption and mismatch."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from service.documents import load_documents
from service.engine import Engine
from service.errors import IndexCorrupt, IndexMismatch, IndexMissing, IndexStateError
from service.indexing import index_config, sync_index
from service.settings import Settings
from service.store import IndexStore


@pytest.fixture
def workspace(tmp_path: Path, corpus_dir: Path, embedder) -> tuple[Settings, Engine]:  # noqa: ANN001
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir, corpus)
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    # The session's loaded model; index, corpus and everything else are this test's own.
    return settings, Engine(settings, embedder)


def test_round_trip_preserves_documents_chunks_and_vectors(workspace) -> None:  # noqa: ANN001
    settings, engine = workspace
    engine.sync()
    saved = engine.index.snapshot
    loaded = IndexStore(settings.index_dir).load()
    assert loaded.documents.keys() == saved.documents.keys()
    assert [(c.chunk_id, c.start, c.end, c.text) for c in loaded.chunks] == [
        (c.chunk_id, c.start, c.end, c.text) for c in saved.chunks
    ]
    assert loaded.sentences == saved.sentences
    assert loaded.vectors.ntotal == len(loaded.sentences)
    assert (loaded.vectors.reconstruct(0) == saved.vectors.reconstruct(0)).all()
    files = sorted(p.name for p in settings.index_dir.iterdir() if not p.name.startswith("."))
    assert len(files) == 3 and "manifest.json" in files
    assert not any(p.suffix == ".pkl" for p in settings.index_dir.iterdir())


def test_sync_embeds_only_what_changed(workspace) -> None:  # noqa: ANN001
    settings, engine = workspace
    first = engine.sync()
    assert len(first.added) == 2 and first.embedded_sentences == first.sentences

    again = engine.sync()
    assert not again.changed and again.embedded_sentences == 0

    (settings.corpus_dir / "new.md").write_text("# Fresh memo\n\nThe memo mentions Zanzibar twice. Zanzibar.\n")
    edited = settings.corpus_dir / "004_db5665c2341ed43f.txt"
    edited.write_text(edited.read_text("utf-8") + "\nThe summit closed with a dinner.\n", "utf-8")
    (settings.corpus_dir / "000_ebf57527fa8dd4ca.txt").unlink()
    report = engine.sync()
    assert report.added == ["new.md"]
    assert report.updated == ["004_db5665c2341ed43f.txt"]
    assert report.removed == ["000_ebf57527fa8dd4ca.txt"]
    assert report.embedded_sentences == report.sentences  # the one unchanged document was removed

    answer = engine.ask("Which place does the memo mention?")
    assert answer.citations[0].source == "new.md"
    assert engine.document("new.md").title == "Fresh memo"
    assert set(IndexStore(settings.index_dir).load().documents) == {"new.md", "004_db5665c2341ed43f.txt"}


def test_a_crash_before_the_manifest_swap_keeps_the_previous_index(workspace, monkeypatch) -> None:  # noqa: ANN001
    settings, engine = workspace
    engine.sync()
    before = (settings.index_dir / "manifest.json").read_bytes()
    (settings.corpus_dir / "extra.txt").write_text("Another document about Lisbon.", "utf-8")

    real_replace = os.replace

    def crash_on_manifest(src: str, dst: str) -> None:
        if str(dst).endswith("manifest.json"):
            raise OSError("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_manifest)
    with pytest.raises(OSError, match="simulated crash"):
        engine.sync()
    monkeypatch.undo()

    assert (settings.index_dir / "manifest.json").read_bytes() == before
    loaded = IndexStore(settings.index_dir).load()
    assert "extra.txt" not in loaded.documents and len(loaded.documents) == 2
    assert not [p for p in settings.index_dir.iterdir() if p.name.endswith(".tmp")]


def _flip(at: float):  # noqa: ANN202
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[min(int(len(data) * at), len(data) - 1)] ^= 0xFF
        path.write_bytes(bytes(data))

    return damage


def _truncate(keep: float):  # noqa: ANN202
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return damage


DAMAGE = {
    **{f"flip@{at:g}": _flip(at) for at in (0, 0.01, 0.25, 0.5, 0.75, 1)},
    **{f"truncate-to-{keep:g}": _truncate(keep) for keep in (0, 0.5, 0.99)},
    "append-garbage": lambda path: path.write_bytes(path.read_bytes() + b"\x00garbage"),
    "delete": lambda path: path.unlink(),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
@pytest.mark.parametrize("target", ["chunks", "vectors", "manifest"])
def test_damaged_files_are_detected_and_rebuilt(
    built: Path, corpus_dir: Path, embedder, tmp_path: Path, target: str, damage: str  # noqa: ANN001
) -> None:
    """33 kinds of damage: a serving engine keeps its correct answers, a fresh load refuses with a
    clear message, a sync (what `footnote serve` does) rebuilds, and the corpus is untouched."""
    shutil.copytree(built, tmp_path / "index")
    settings = Settings(corpus_dir=corpus_dir, index_dir=tmp_path / "index")
    serving = Engine(settings, embedder)
    expected = serving.ask("Which resolutions were cited?")
    corpus_before = {p.name: p.read_bytes() for p in corpus_dir.iterdir()}
    store = IndexStore(settings.index_dir)
    files = json.loads(store.manifest_path.read_text())["files"]
    path = store.manifest_path if target == "manifest" else settings.index_dir / files[target]["name"]
    DAMAGE[damage](path)

    assert serving.ask("Which resolutions were cited?") == expected  # never wrong passages
    with pytest.raises(IndexStateError) as refused:
        IndexStore(settings.index_dir).load()
    assert isinstance(refused.value, IndexMissing if (target, damage) == ("manifest", "delete") else IndexCorrupt)
    assert "footnote index" in str(refused.value)
    fresh = Engine(settings, embedder)
    report = fresh.sync()
    assert report.rebuilt_because or report.added, "rebuilt"
    assert fresh.ask("Which resolutions were cited?") == expected
    assert {p.name: p.read_bytes() for p in corpus_dir.iterdir()} == corpus_before, "the corpus is never touched"


@pytest.fixture(scope="module")
def built(corpus_dir: Path, embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    index = tmp_path_factory.mktemp("built") / "index"
    Engine(Settings(corpus_dir=corpus_dir, index_dir=index), embedder).sync()
    return index


def test_other_model_settings_are_refused_with_a_clear_message(workspace) -> None:  # noqa: ANN001
    settings, engine = workspace
    engine.sync()
    other = index_config(engine.embedder, settings.chunk_size + 100, settings.chunk_overlap)
    store = IndexStore(settings.index_dir)
    snapshot = store.load()
    store.save(type(snapshot)(other, snapshot.documents, snapshot.chunks, snapshot.sentences, snapshot.vectors))
    fresh = Engine(settings, engine.embedder)
    with pytest.raises(IndexMismatch, match="chunker"):
        fresh.load()


def test_missing_index_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(IndexMissing, match="footnote index"):
        IndexStore(tmp_path / "none").load()


def test_only_one_writer_at_a_time(workspace) -> None:  # noqa: ANN001
    settings, engine = workspace
    store = IndexStore(settings.index_dir)
    documents = load_documents([settings.corpus_dir])
    config = index_config(engine.embedder, settings.chunk_size, settings.chunk_overlap)
    with store.writer_lock(), pytest.raises(IndexStateError, match="another process"):
        sync_index(IndexStore(settings.index_dir), engine.embedder, config, documents)
