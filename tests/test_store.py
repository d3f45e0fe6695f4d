"""What only the embedded store has: checkpoints left alone by small writes, damaged files, the
upgrade of a format-2 index, and the corpus folder kept in step (the contract both stores keep is
in test_store_contract.py). Most tests use the hash embedder (tests/fake_embedder.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from service.embedded_store import DATABASE, EmbeddedStore
from service.engine import Engine, build_engine
from service.errors import IndexCorrupt, IndexMissing, InvalidRequest
from service.settings import Settings

from .fake_embedder import HashEmbedder


def fake_engine(tmp_path: Path, corpus_dir: Path, model: str = "hash-embedder", **overrides: object) -> Engine:
    corpus = tmp_path / "corpus"
    if not corpus.exists():
        shutil.copytree(corpus_dir, corpus)
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", state_dir=tmp_path / "state", **overrides)
    return build_engine(settings, embedder=HashEmbedder(model))


def best_source(engine: Engine, question: str) -> str | None:
    """The document of the best keyword match (the hash embedder's vectors carry no meaning)."""
    found = engine.index.keyword(question, 1)
    return engine.store.chunks(found.ids.tolist())[int(found.ids[0])].source if len(found.ids) else None


def test_an_upload_touches_only_its_document_and_no_checkpoint(tmp_path: Path, corpus_dir: Path) -> None:
    engine = fake_engine(tmp_path, corpus_dir)
    engine.sync()
    index_dir = engine.settings.index_dir
    bases = sorted(p.name for p in index_dir.glob("base-*"))
    embedder: HashEmbedder = engine.embedder  # type: ignore[assignment]
    embedder.texts = 0
    report = engine.add([("memo.txt", b"The convoy reached Lisbon on Tuesday. It carried grain.")])
    assert report.added == ["memo.txt"] and embedder.texts == 2  # its two sentences, nothing else
    assert sorted(p.name for p in index_dir.glob("base-*")) == bases  # the bulk files are not rewritten
    assert best_source(engine, "convoy Lisbon grain") == "memo.txt"
    engine.delete("memo.txt")
    assert all(p.source != "memo.txt" for p in engine.search("convoy Lisbon grain", top_k=10))
    assert sorted(p.name for p in index_dir.glob("base-*")) == bases


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


# Checkpoint files carry checksums, so any change is caught. SQLite pages carry none: the
# database's damage that SQLite itself detects (its header, a short file, a missing file) is
# tested; a flipped bit inside a row is the file system's to catch.
CHECKPOINT_DAMAGE = {
    **{f"flip@{at:g}": _flip(at) for at in (0, 0.01, 0.25, 0.5, 0.75, 1)},
    **{f"truncate-to-{keep:g}": _truncate(keep) for keep in (0, 0.5, 0.99)},
    "append-garbage": lambda path: path.write_bytes(path.read_bytes() + b"\x00garbage"),
    "delete": lambda path: path.unlink(),
}
DATABASE_DAMAGE = {
    "flip@0": _flip(0), "truncate-to-0.5": _truncate(0.5), "delete": lambda p: p.unlink(),
}


@pytest.fixture(scope="module")
def built(corpus_dir: Path, embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    index = tmp_path_factory.mktemp("built") / "index"
    build_engine(Settings(corpus_dir=corpus_dir, index_dir=index), embedder=embedder).sync()
    return index


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "damage"),
    [(f, d) for f in ("vectors.faiss", "chunk_items.npy", "doc_tfs.npy") for d in CHECKPOINT_DAMAGE]
    + [(DATABASE, d) for d in DATABASE_DAMAGE],
)
def test_damaged_files_are_detected_and_repaired(
    built: Path, corpus_dir: Path, embedder, tmp_path: Path, target: str, damage: str  # noqa: ANN001
) -> None:
    """A damaged checkpoint is rebuilt from the tables (nothing embedded again); a damaged
    database is refused with a clear message and rebuilt from the corpus by a sync. Either way
    the answers are the same, and the corpus is untouched."""
    shutil.copytree(built, tmp_path / "index")
    settings = Settings(corpus_dir=corpus_dir, index_dir=tmp_path / "index")
    expected = build_engine(settings, embedder=embedder).ask("Which resolutions were cited?")
    corpus_before = {p.name: p.read_bytes() for p in corpus_dir.iterdir()}
    base = next((tmp_path / "index").glob("base-*"))
    path = settings.index_dir / DATABASE if target == DATABASE else base / target
    (CHECKPOINT_DAMAGE | DATABASE_DAMAGE)[damage](path)

    fresh = build_engine(settings, embedder=embedder)
    if target == DATABASE:
        with pytest.raises((IndexCorrupt, IndexMissing)) as refused:
            fresh.load()
        assert "footnote index" in str(refused.value)
        report = fresh.sync()
        assert report.rebuilt_because or report.added, "rebuilt"
    else:
        fresh.load()  # repaired from the tables
    assert fresh.ask("Which resolutions were cited?") == expected
    assert {p.name: p.read_bytes() for p in corpus_dir.iterdir()} == corpus_before, "the corpus is never touched"


def test_a_format_2_index_is_upgraded_in_place_without_embedding(tmp_path: Path, corpus_dir: Path) -> None:
    legacy = Path(__file__).parent / "data" / "index-v2"
    shutil.copytree(legacy, tmp_path / "index")
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    engine = fake_engine(tmp_path, corpus_dir, model=manifest["config"]["model"])
    embedder: HashEmbedder = engine.embedder  # type: ignore[assignment]
    report = engine.sync()
    assert embedder.texts == 0 and not report.changed, "nothing embedded, nothing rebuilt"
    assert not (tmp_path / "index" / "manifest.json").exists()
    assert {d.source for d in engine.documents()} == set(manifest["documents"])
    assert best_source(engine, "Which resolutions were cited?") == "000_ebf57527fa8dd4ca.txt"


def test_a_failed_delete_puts_the_file_back(tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = fake_engine(tmp_path, corpus_dir)
    engine.sync()
    victim = engine.settings.corpus_dir / "000_ebf57527fa8dd4ca.txt"
    original = victim.read_bytes()

    def fail(self: EmbeddedStore, sources: object) -> None:
        raise sqlite3.OperationalError("database is locked (simulated)")

    monkeypatch.setattr(EmbeddedStore, "delete", fail)
    with pytest.raises(sqlite3.OperationalError):
        engine.delete("000_ebf57527fa8dd4ca.txt")
    monkeypatch.undo()
    assert victim.read_bytes() == original
    assert not [p for p in engine.settings.corpus_dir.iterdir() if p.name.startswith(".")]
    assert "000_ebf57527fa8dd4ca.txt" in {d.source for d in engine.documents()}


@pytest.mark.parametrize("name", ["000_ebf57527fa8dd4ca.txt/inner.txt", "folder.txt"])
def test_names_the_corpus_folder_cannot_hold_are_refused(tmp_path: Path, corpus_dir: Path, name: str) -> None:
    engine = fake_engine(tmp_path, corpus_dir)
    engine.sync()
    (engine.settings.corpus_dir / "folder.txt").mkdir()
    (engine.settings.corpus_dir / "folder.txt" / "a.txt").write_text("Inside a folder.")
    before = sorted(p.name for p in engine.settings.corpus_dir.rglob("*"))
    with pytest.raises(InvalidRequest):
        engine.add([(name, b"A note.")])
    assert sorted(p.name for p in engine.settings.corpus_dir.rglob("*")) == before
