"""Managing the collection over HTTP: upload and delete per format, the 4xx cases (each leaving
the index unchanged), API keys, and asks answered while an ingest runs."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.embedded_store import DATABASE
from service.engine import build_engine
from service.settings import Settings

from . import files


@pytest.fixture
def workspace(tmp_path: Path, corpus_dir: Path, embedder) -> Iterator[tuple[TestClient, Settings]]:  # noqa: ANN001
    corpus = tmp_path / "data" / "corpus"
    shutil.copytree(corpus_dir, corpus)
    settings = Settings(
        corpus_dir=corpus, index_dir=tmp_path / "data" / "index", max_upload_bytes=200_000, api_keys="k1,k2"
    )
    engine = build_engine(settings, embedder=embedder)
    engine.sync()
    with TestClient(create_app(engine=engine), headers={"Authorization": "Bearer k2"}) as client:
        yield client, settings


def index_version(settings: Settings) -> str:
    """The index's commit counter: any committed write changes it."""
    with sqlite3.connect(settings.index_dir / DATABASE) as db:
        return db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]


def upload(client: TestClient, *named: tuple[str, bytes], **kwargs: object):  # noqa: ANN201
    return client.post("/documents", files=[("files", (n, data)) for n, data in named], **kwargs)


def assert_cited_exactly(client: TestClient, question: str, source: str) -> dict:
    body = client.post("/ask", json={"question": question}).json()
    assert body["answerable"], body
    text = client.get(f"/documents/{source}").json()["text"]
    cited = [c for c in body["citations"] if c["source"] == source]
    assert cited, body["citations"]
    for c in cited:
        assert text[c["start"] : c["end"]] == c["quote"]
    return cited[0]


FORMATS = [
    ("notes.txt", b"The quartermaster ordered forty Zellwegian tents for the winter camp."),
    ("memo.md", b"# Memo\n\nThe quartermaster ordered forty Zellwegian tents for the winter camp.\n"),
    ("page.html", files.html("Camp page", ["The quartermaster ordered forty Zellwegian tents for the winter camp."])),
    ("report.docx", files.docx(["Supplies", "The quartermaster ordered forty Zellwegian tents for the winter camp."])),
    ("report.pdf", files.pdf(["Supplies report, page one.", "The quartermaster ordered forty Zellwegian tents."])),
]


@pytest.mark.parametrize(("name", "data"), FORMATS, ids=[n for n, _ in FORMATS])
def test_upload_ask_delete_round_trip(workspace, name: str, data: bytes) -> None:  # noqa: ANN001
    client, settings = workspace
    response = upload(client, (name, data))
    assert response.status_code == 200, response.text
    assert response.json()["added"] == [name] and response.json()["documents"] == 3

    citation = assert_cited_exactly(client, "How many Zellwegian tents did the quartermaster order?", name)
    assert "forty Zellwegian tents" in citation["quote"]
    assert citation["page"] == (2 if name.endswith(".pdf") else None)
    text = client.get(f"/documents/{name}").json()["text"]
    assert "SCRIPTWORD" not in text and "color: red" not in text  # script and style are dropped
    assert (settings.corpus_dir / name).read_bytes() == data  # kept, so a restart re-indexes it

    again = upload(client, (name, data)).json()
    assert again["unchanged"] == [name] and again["added"] == []
    twin = upload(client, ("copy-" + name, data)).json()
    assert twin["duplicates"] == {"copy-" + name: name} and twin["documents"] == 3

    gone = client.delete(f"/documents/{name}")
    assert gone.status_code == 200 and gone.json()["removed"] == [name]
    assert client.get(f"/documents/{name}").status_code == 404
    assert not (settings.corpus_dir / name).exists()
    body = client.post("/ask", json={"question": "How many Zellwegian tents did the quartermaster order?"}).json()
    assert all(p["source"] != name for p in body["passages"])


def test_replacing_a_document_replaces_its_chunks(workspace) -> None:  # noqa: ANN001
    client, _ = workspace
    upload(client, ("plan.txt", b"The convoy leaves from Dorrington at dawn."))
    changed = upload(client, ("plan.txt", b"The convoy leaves from Tasselby at noon.")).json()
    assert changed["updated"] == ["plan.txt"]
    assert "Tasselby" in client.get("/documents/plan.txt").json()["text"]
    passages = client.post("/ask", json={"question": "Where does the convoy leave from?", "top_k": 10}).json()
    assert not any("Dorrington" in p["text"] for p in passages["passages"])


def test_several_files_in_one_upload(workspace) -> None:  # noqa: ANN001
    client, _ = workspace
    body = upload(client, ("a.txt", b"Alpha text about herons."), ("b.md", b"Beta text about otters.")).json()
    assert sorted(body["added"]) == ["a.txt", "b.md"] and body["documents"] == 4


BAD = [
    ("tool.exe", b"MZ\x90\x00", 415, "unsupported file type"),
    ("empty.txt", b"", 422, "no text"),
    ("blank.md", b"   \n\n  ", 422, "no text"),
    ("scan.pdf", files.pdf(["", ""]), 422, "no text"),
    ("broken.pdf", b"%PDF-1.4 not really", 422, "PDF"),
    ("blob.txt", bytes(range(256)) * 8, 422, "binary"),
    ("bomb.docx", files.docx(["x"], padding=60_000_000), 422, "inflates"),  # 60 MB of XML in a 60 KB zip
    ("big.txt", b"word " * 50_000, 413, "limit"),
    ("..", b"text", 422, "name"),
]


@pytest.mark.parametrize(("name", "data", "status", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_uploads_are_refused_and_change_nothing(workspace, name, data, status, needle) -> None:  # noqa: ANN001
    client, settings = workspace
    before = index_version(settings), sorted(p.name for p in settings.corpus_dir.rglob("*"))
    response = upload(client, ("fine.txt", b"A perfectly good file."), (name, data))
    assert response.status_code == status, response.text
    assert needle in response.text
    # All or nothing: the good file in the same request was not taken in either.
    assert (index_version(settings), sorted(p.name for p in settings.corpus_dir.rglob("*"))) == before
    assert len(client.get("/documents").json()) == 2


def test_hostile_names_are_sanitized_inside_the_corpus(workspace, tmp_path: Path) -> None:  # noqa: ANN001
    client, settings = workspace
    outside = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "data"))
    body = upload(
        client,
        ("../escape.txt", b"Escape attempt one."),
        ("/etc/passwd.txt", b"Escape attempt two."),
        ("nul\x00byte.txt", b"Escape attempt three."),
        ("..\\..\\win.md", b"Escape attempt four."),
    ).json()
    names = sorted(body["added"])
    assert [n for n in names if not n.startswith("nul")] == ["escape.txt", "etc/passwd.txt", "win.md"]
    assert len(names) == 4 and all("\x00" not in n and ".." not in n for n in names)
    for name in body["added"]:
        assert (settings.corpus_dir / name).is_file()
    assert sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "data")) == outside


def test_legacy_encodings_are_decoded_not_dropped(workspace) -> None:  # noqa: ANN001
    client, _ = workspace
    upload(client, ("latin.txt", "Le café servait une crème brûlée.".encode("latin-1")))
    upload(client, ("ru.html", files.html("Отчёт", ["Привет, это проверка кодировки страницы."], "cp1251")))
    assert client.get("/documents/latin.txt").json()["text"] == "Le café servait une crème brûlée."
    ru = client.get("/documents/ru.html").json()
    assert "Привет, это проверка кодировки страницы." in ru["text"] and ru["title"] == "Отчёт"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic k1", "Bearer", "k1"])
def test_writes_need_a_valid_key(workspace, header: str | None) -> None:  # noqa: ANN001
    client, settings = workspace
    before = index_version(settings)
    headers = {"Authorization": header} if header else {}
    client.headers.pop("Authorization")
    assert upload(client, ("x.txt", b"Some text."), headers=headers).status_code == 401
    assert client.delete("/documents/004_db5665c2341ed43f.txt", headers=headers).status_code == 401
    assert index_version(settings) == before


def test_unknown_document_delete_is_404(workspace) -> None:  # noqa: ANN001
    client, _ = workspace
    assert client.delete("/documents/nope.txt").status_code == 404


def test_asks_during_an_ingest_see_the_old_or_the_new_state(workspace) -> None:  # noqa: ANN001
    client, _ = workspace
    question = {"question": "Which resolutions were cited?"}
    before = client.post("/ask", json=question).json()
    batch = [(f"extra-{i}.txt", f"Report {i}: the depot in Varnholm {i} stores grain.".encode()) for i in range(40)]
    seen: list[dict] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def asker() -> None:
        try:
            while not done.is_set():
                response = client.post("/ask", json=question)
                assert response.status_code == 200
                seen.append(response.json())
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=asker) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        assert upload(client, *batch).status_code == 200
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors and seen
    after = client.post("/ask", json=question).json()
    # The extra documents do not touch this answer: every reply equals the one before and after.
    assert before["answer"] == after["answer"]
    assert all(r["answer"] == before["answer"] and r["citations"] == before["citations"] for r in seen)


def test_a_body_without_length_is_cut_off_at_the_limit(workspace) -> None:  # noqa: ANN001
    client, settings = workspace
    before = index_version(settings)

    def stream() -> Iterator[bytes]:
        yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="huge.txt"\r\n\r\n'
        for _ in range(1000):  # 10 MB offered, 50x the limit, with no Content-Length
            yield b"y" * 10_000

    response = client.post("/documents", content=stream(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "limit" in response.text
    assert index_version(settings) == before


def test_a_server_sees_documents_another_process_added(workspace, embedder) -> None:  # noqa: ANN001
    client, settings = workspace
    other = build_engine(settings, embedder=embedder)  # e.g. `footnote index PATH` beside the running server
    other.add([("late.txt", b"The lighthouse keeper logged nine storms in March.")])
    body = client.post("/ask", json={"question": "How many storms did the lighthouse keeper log?"}).json()
    assert body["citations"] and body["citations"][0]["source"] == "late.txt"
