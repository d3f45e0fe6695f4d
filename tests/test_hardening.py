"""Regressions from the second hardening pass (a careless or hostile client must not hurt anyone
else): each test reproduces what was reported and checks the fix."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api import create_app
from service.api.security import RateLimit
from service.api.server import server_config
from service.embedding import QueryBatcher
from service.engine import Engine, build_engine
from service.errors import InvalidDocument
from service.loaders import extract
from service.retrieval import Memo
from service.settings import Settings

from . import files
from .fake_embedder import HashEmbedder
from .fake_openai import Running

LONE = "\\ud800"  # as JSON spells it: a lone surrogate once parsed
ASK = '{"question": "Which resolutions were cited?"'
CHAT = '{"model": "footnote", "messages": [%s]}'


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/ask", f'{{"question": "Which {LONE} resolutions?"}}'),
        ("/ask", f'{ASK}, "filters": {{"source": ["{LONE}"]}}}}'),
        ("/ask", f'{ASK}, "history": [{{"question": "{LONE}", "answer": "ok"}}]}}'),
        ("/ask/stream", f'{ASK}, "filters": {{"source": ["{LONE}"]}}}}'),
        ("/v1/chat/completions", CHAT % f'{{"role": "user", "content": "{LONE}"}}'),
        ("/v1/chat/completions", CHAT % f'{{"role": "user", "content": [{{"type": "text", "text": "{LONE}"}}]}}'),
        ("/v1/chat/completions", CHAT % (f'{{"role": "user", "content": "{LONE}"}}, {{"role": "assistant", '
                                         '"content": "ok"}, {"role": "user", "content": "And then?"}')),
        ("/v1/chat/completions", (CHAT % f'{{"role": "user", "content": "{LONE}"}}')[:-1] + ', "stream": true}'),
    ],
    ids=["question", "filters.source", "history", "stream", "chat", "chat-part", "chat-earlier-turn", "chat-stream"],
)
def test_a_lone_surrogate_is_a_422_for_that_request_only(client: TestClient, path: str, body: str) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "unicode" in response.json()["message"].lower()  # "lone surrogate", or pydantic's strict string
    assert client.post("/ask", json={"question": "Which resolutions were cited?"}).json()["answerable"]


class FailsOn(HashEmbedder):
    """An embedder that fails a batch holding one bad text (as a tokenizer does)."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad
        self.gate = threading.Event()

    def embed(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        self.gate.wait(5)  # hold the first call, so the rest queue into one batch
        if self.bad in texts:
            raise ValueError("tokenizer failed")
        return super().embed(texts)


def test_one_failing_question_does_not_fail_its_batch() -> None:
    embedder = FailsOn("poison")
    batcher = QueryBatcher(embedder)
    first = batcher.submit("warm-up question")  # taken alone; the others queue behind it
    futures = [batcher.submit(text) for text in ("alpha", "poison", "gamma", "delta")]
    embedder.gate.set()
    assert first.result(5).shape == (384,)
    with pytest.raises(ValueError, match="tokenizer failed"):
        futures[1].result(5)
    for text, future in zip(("alpha", "gamma", "delta"), (futures[0], futures[2], futures[3])):
        np.testing.assert_allclose(future.result(5), HashEmbedder().embed([text])[0])


class Counting(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def embed(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        self.batches.append(len(texts))
        return super().embed(texts)


def test_texts_submitted_together_are_embedded_in_one_batch() -> None:
    # The answerer's names and words for one question: one model call, not one for the first and
    # another for the rest (each call costs milliseconds however short its texts).
    embedder = Counting()
    futures = QueryBatcher(embedder).submit_all(["North Korea", "Pyongyang", "Russia", "Moscow"])
    vectors = [f.result(5) for f in futures]
    assert embedder.batches == [4]
    np.testing.assert_allclose(vectors[1], HashEmbedder().embed(["Pyongyang"])[0])


@pytest.fixture
def own_client(tmp_path: Path, corpus_dir: Path) -> Iterator[TestClient]:
    """A server over a corpus copy of this test's own (uploads land in its folder)."""
    shutil.copytree(corpus_dir, tmp_path / "corpus")
    engine = build_engine(Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index",
                                   state_dir=tmp_path / "state"), embedder=HashEmbedder())
    with TestClient(create_app(engine=engine, sync=True)) as client:
        yield client


def _docx_with(xml: bytes, encrypted: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("word/document.xml")
        if encrypted:
            info.flag_bits |= 0x1  # "encrypted": zipfile asks for a password
        zf.writestr(info, xml)
    return out.getvalue()


def _pdf_with_trailer(extra: bytes) -> bytes:
    data = files.pdf(["Resolution 2270 was cited."])
    return data.replace(b"/Root 1 0 R >>", b"/Root 1 0 R " + extra + b" >>")


# A font whose glyphs all stand for lone surrogates (D800-D8FF).
SURROGATE_CMAP = b"""/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /X def
1 begincodespacerange <00> <FF> endcodespacerange
1 beginbfrange <00> <FF> <D800> endbfrange
endcmap CMapName currentdict /CMap defineresource pop end end"""


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("locked.docx", _docx_with(b"<w:document/>", encrypted=True)),
        ("bogus.docx", _docx_with(b'<?xml version="1.0" encoding="x-bogus"?><w:document/>')),
        ("v99.pdf", _pdf_with_trailer(b"/Encrypt << /Filter /Standard /V 99 /R 99 /O <00> /U <00> /P -4 >> "
                                      b"/ID [<00> <00>]")),
        ("d800.pdf", files.pdf(["Owls"], to_unicode=SURROGATE_CMAP)),
    ],
    ids=["docx-encrypted-member", "docx-unknown-encoding", "pdf-unknown-encryption", "pdf-maps-to-surrogates"],
)
def test_malformed_files_are_a_422_naming_the_file(own_client: TestClient, tmp_path: Path, corpus_dir: Path,
                                                   name: str, data: bytes) -> None:
    client = own_client
    before = client.get("/documents").json()
    response = client.post("/documents", files=[("files", (name, data))])
    assert response.status_code == 422, response.text
    assert name in response.json()["message"]
    assert client.get("/documents").json() == before
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == sorted(p.name for p in corpus_dir.iterdir())


def test_unreadable_corpus_files_are_skipped_and_listed_not_fatal(tmp_path: Path, corpus_dir: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir, corpus)
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "scan.pdf").write_bytes(files.pdf([""]))  # an image-only page: no text layer
    (corpus / "locked.docx").write_bytes(_docx_with(b"<w:document/>", encrypted=True))
    engine = build_engine(Settings(corpus_dir=corpus, index_dir=tmp_path / "index", state_dir=tmp_path / "state"),
                          embedder=HashEmbedder())
    report = engine.start()
    assert report is not None and set(report.skipped) == {"empty.txt", "scan.pdf", "locked.docx"}
    assert "skipped, unreadable" in report.summary() and "OCR" in report.skipped["scan.pdf"]
    with TestClient(create_app(engine=engine)) as client:
        health = client.get("/health").json()
        assert health["documents"] == 2 and set(health["skipped"]) == set(report.skipped)


KEYS = ["key-one-7c1d", "key-two-9e4a"]


@pytest.fixture
def limited(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(corpus_dir=engine.settings.corpus_dir, index_dir=engine.settings.index_dir,
                        api_keys=",".join(KEYS), rate_limit_per_minute=30, rate_limit_burst=3)
    with TestClient(create_app(engine=build_engine(settings, embedder=engine.embedder))) as client:
        yield client


def test_made_up_keys_share_their_address_bucket(limited: TestClient) -> None:
    statuses = [limited.get("/documents", headers={"Authorization": f"Bearer made-up-{n}"}).status_code
                for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


def test_a_key_is_one_bucket_however_its_header_is_spelled(limited: TestClient) -> None:
    spellings = [f"Bearer {KEYS[0]}", f"bearer {KEYS[0]}", f"BEARER  {KEYS[0]}", f"Bearer {KEYS[0]} "]
    statuses = [limited.get("/documents", headers={"Authorization": s}).status_code for s in spellings]
    assert statuses[3] == 429 and all(s in (200, 401) for s in statuses[:3])


def test_two_authorization_headers_are_refused(limited: TestClient) -> None:
    response = limited.get("/documents", headers=[("Authorization", f"Bearer {KEYS[0]}"),
                                                  ("Authorization", "Bearer other")])
    assert response.status_code == 400 and "one Authorization header" in response.json()["detail"]


def test_the_callers_remembered_are_bounded() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        return None

    limit = RateLimit(app, per_minute=60, burst=5, max_callers=100)  # type: ignore[arg-type]
    for n in range(10_000):
        limit._take(f"addr:10.0.{n // 256}.{n % 256}")
    assert len(limit._buckets) == 100
    assert "addr:10.0.39.15" in limit._buckets  # the most recent stay


def test_unicode_names_are_kept_and_collisions_refused(own_client: TestClient) -> None:
    client = own_client
    for name in ("报告.txt", "报告1.txt", "文件1.txt", "q?.txt"):
        response = client.post("/documents", files=[("files", (name, f"The note {name} counts nine owls.".encode()))])
        assert response.status_code == 200, response.text
    sources = {d["source"] for d in client.get("/documents").json()}
    assert {"报告.txt", "报告1.txt", "文件1.txt", "q_.txt"} <= sources
    clash = client.post("/documents", files=[("files", ("q*.txt", b"Another note about owls."))])
    assert clash.status_code == 422 and "q_.txt" in clash.json()["message"]
    assert "nine owls" in client.get("/documents/q_.txt").json()["text"]  # not replaced
    long = client.post("/documents", files=[("files", ("a" * 151 + ".txt", b"A long-named note about owls."))])
    assert long.status_code == 200 and long.json()["added"][0].endswith(".txt")


def test_a_document_over_the_sentence_limit_is_refused_and_later_writes_stay_fast(
    tmp_path: Path, corpus_dir: Path
) -> None:
    shutil.copytree(corpus_dir, tmp_path / "corpus")
    engine = build_engine(Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index",
                                   state_dir=tmp_path / "state", max_document_sentences=20_000), embedder=HashEmbedder())
    engine.sync()
    lines = "".join(f"Line {i} notes item {i * 7} in the ledger.\n" for i in range(30_000)).encode()
    with pytest.raises(InvalidDocument, match="30,000 sentences, over the limit of 20,000"):
        engine.add([("log.txt", lines)])
    assert not (tmp_path / "corpus" / "log.txt").exists()
    report = engine.add([("ledger.txt", lines[: len(lines) // 2])])  # 15,000 lines: indexed in one write
    assert report.added == ["ledger.txt"]
    (tmp_path / "corpus" / "log.txt").write_bytes(lines)  # in the folder: skipped, not fatal
    assert "log.txt" in engine.sync().skipped


def test_hostile_html_is_read_in_linear_time() -> None:
    began = time.perf_counter()
    found = extract("page.html", ("<p>Owls nest here.</p>" + "<a " * 50_000).encode())
    assert "Owls nest here." in found.text
    assert time.perf_counter() - began < 10  # html.parser took about a minute on a fifth of this


def _slow_pdf(megabytes: float) -> bytes:
    """Small on disk, seconds to read: every page shows thousands of text runs."""
    run = b"BT /F1 12 Tf 72 720 Td (owl) Tj ET\n"
    return files.pdf(["x", "x"], shared=run * int(megabytes * 2**20 / len(run)))


def test_a_pdf_decompression_bomb_is_refused_at_once(own_client: TestClient) -> None:
    bomb = files.pdf(["x"] * 8, shared=b"0 0 m 10 10 l S\n" * (70 * 2**20 // 16))  # 70 MB a page, 0.6 MB sent
    began = time.perf_counter()
    response = own_client.post("/documents", files=[("files", ("bomb.pdf", bomb))])
    assert response.status_code == 422 and "bomb.pdf" in response.json()["message"], response.text
    assert "limit" in response.json()["message"]
    assert time.perf_counter() - began < 20  # pypdf's own limit let each page inflate 70 MB: 52 s


def test_a_slow_file_costs_its_own_budget_not_other_requests(tmp_path: Path, corpus_dir: Path) -> None:
    shutil.copytree(corpus_dir, tmp_path / "corpus")
    settings = Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", state_dir=tmp_path / "state",
                        extract_seconds=1)
    engine = build_engine(settings, embedder=HashEmbedder())
    with TestClient(create_app(engine=engine, sync=True)) as client:
        uploads: list[int] = []
        done = threading.Event()

        def upload() -> None:
            for n in range(4):
                data = _slow_pdf(2)
                uploads.append(client.post("/documents", files=[("files", (f"slow{n}.pdf", data))]).status_code)
            done.set()

        thread = threading.Thread(target=upload)
        thread.start()
        asked = client.post("/ask", json={"question": "Which resolutions were cited?"})
        assert asked.status_code == 200 and not done.is_set()  # answered while the files were being read
        thread.join(60)
        assert uploads == [422] * 4
        response = client.post("/documents", files=[("files", ("slow.pdf", _slow_pdf(2)))])
        assert "took over 1 s" in response.json()["message"]
        assert not any(p.suffix == ".pdf" for p in (tmp_path / "corpus").iterdir())


def test_unchanged_corpus_files_are_not_read_again_at_start(tmp_path: Path, corpus_dir: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir, corpus)
    pdf = corpus / "owls.pdf"
    pdf.write_bytes(files.pdf(["Barn owls nest in church towers."]))
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", state_dir=tmp_path / "state")
    first = build_engine(settings, embedder=HashEmbedder())
    assert "owls.pdf" in (first.start() or pytest.fail("no report")).added
    first.close()
    # Same size and time, unreadable bytes: a start that read the file again would skip it.
    stat = pdf.stat()
    pdf.write_bytes(b"\0" * stat.st_size)
    os.utime(pdf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = build_engine(settings, embedder=HashEmbedder())
    report = again.start() or pytest.fail("no report")
    assert "owls.pdf" in report.unchanged and not report.skipped
    assert "church towers" in again.document("owls.pdf").text


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection (anything it says first is read and dropped)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except TimeoutError:
        return False


def test_slow_clients_are_cut_off_and_others_still_served(engine: Engine) -> None:
    settings = engine.settings.model_copy(update={"request_read_seconds": 1.0})
    app = create_app(engine=build_engine(settings, embedder=engine.embedder))
    with Running(app, server_config(app, settings, "127.0.0.1", 0)) as url:
        port = int(url.rsplit(":", 1)[1])
        trickling_headers = socket.create_connection(("127.0.0.1", port))
        trickling_headers.sendall(b"GET /health HTTP/1.1\r\nHost: footnote\r\n")
        stalled_body = socket.create_connection(("127.0.0.1", port))
        stalled_body.sendall(b"POST /ask HTTP/1.1\r\nHost: footnote\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 200\r\n\r\n{\"question\": \"Which")
        assert _closed_within(trickling_headers, 10) and _closed_within(stalled_body, 10)
        with httpx.Client(base_url=url) as client:
            assert client.get("/health").status_code == 200
            # A keep-alive connection that answers in time is not cut off by the deadline.
            time.sleep(0.6)
            assert client.post("/ask", json={"question": "Which resolutions were cited?"}).status_code == 200
            time.sleep(0.6)
            assert client.get("/health").status_code == 200


def test_name_problems_are_a_422_and_change_nothing(own_client: TestClient, tmp_path: Path) -> None:
    client = own_client
    corpus = tmp_path / "corpus"
    assert client.post("/documents", files=[("files", ("coll.txt", b"Owls hunt at night."))]).status_code == 200
    (corpus / "nest.txt").mkdir()
    before = sorted(p.relative_to(corpus) for p in corpus.rglob("*"))
    for name, needle in (("coll.txt/inner.txt", "which is a file"), ("nest.txt", "is a folder")):
        response = client.post("/documents", files=[("files", (name, b"Owls hunt at dawn."))])
        assert response.status_code == 422 and needle in response.json()["message"], response.text
    assert sorted(p.relative_to(corpus) for p in corpus.rglob("*")) == before
    long = client.post("/documents", files=[("files", ("报" * 120 + ".txt", b"A long name about owls."))])
    assert long.status_code == 200 and long.json()["added"][0].endswith(".txt")
    assert len(long.json()["added"][0].encode()) <= 255


class ExplodesOn(HashEmbedder):
    """Fails to embed a document holding a word: a write that fails after its file was read."""

    def embed(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        if any("explode" in t for t in texts):
            raise RuntimeError("embedding failed")
        return super().embed(texts)


def test_a_failed_write_leaves_the_corpus_folder_as_it_was(tmp_path: Path, corpus_dir: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir, corpus)
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", state_dir=tmp_path / "state")
    engine = build_engine(settings, embedder=ExplodesOn())
    engine.sync()
    names = sorted(p.name for p in corpus.iterdir())
    with TestClient(create_app(engine=engine), raise_server_exceptions=False) as client:
        response = client.post("/documents", files=[("files", ("new.txt", b"This note will explode."))])
        assert response.status_code == 500
        assert sorted(p.name for p in corpus.iterdir()) == names  # nothing written, nothing staged left over
        source = names[0]
        original = (corpus / source).read_bytes()

        def fail(sources: list[str]) -> None:
            raise RuntimeError("disk full")

        engine.store.delete = fail  # type: ignore[method-assign]
        assert client.delete(f"/documents/{source}").status_code == 500
        assert (corpus / source).read_bytes() == original  # put back, still indexed and served
        assert client.get(f"/documents/{source}").status_code == 200
    restarted = build_engine(settings, embedder=HashEmbedder())
    report = restarted.start() or pytest.fail("no report")
    assert "new.txt" not in report.added and not report.removed


def test_replacing_a_document_with_another_documents_text_is_applied(own_client: TestClient) -> None:
    client = own_client
    for name, text in (("a.txt", b"Owls hunt at night."), ("b.txt", b"Swifts sleep on the wing.")):
        assert client.post("/documents", files=[("files", (name, text))]).status_code == 200
    response = client.post("/documents", files=[("files", ("a.txt", b"Swifts sleep on the wing."))]).json()
    assert response["updated"] == ["a.txt"] and not response["duplicates"]
    assert client.get("/documents/a.txt").json()["text"] == "Swifts sleep on the wing."
    # A new name for text already indexed is still reported, not indexed twice.
    copy = client.post("/documents", files=[("files", ("c.txt", b"Owls hunt at night."))])
    assert copy.json()["duplicates"] == {}  # a.txt no longer holds that text: c.txt is new
    again = client.post("/documents", files=[("files", ("d.txt", b"Owls hunt at night."))]).json()
    assert again["duplicates"] == {"d.txt": "c.txt"}


def test_a_question_over_the_term_limit_is_a_422_and_memos_stay_bounded(client: TestClient, engine: Engine) -> None:
    words = [f"zq{n:05d}x" for n in range(70)]  # distinct made-up words: each an unseen term
    response = client.post("/ask", json={"question": " ".join(words)})
    assert response.status_code == 422 and "70 distinct search terms, over the limit of 64" in response.json()["message"]
    assert client.post("/ask", json={"question": " ".join(words[:60])}).status_code == 200
    memo = Memo[str, int](size=100)
    for n in range(10_000):
        memo.put(f"term{n}", n)
    assert len(memo) == 100 and memo.get("term9999") == 9999 and memo.get("term0") is None


def test_files_a_crash_left_half_written_are_cleared_at_start(tmp_path: Path, corpus_dir: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir, corpus)
    (corpus / ".owls.txt.staged").write_bytes(b"An upload that was never acknowledged.")
    (corpus / "sub").mkdir()
    (corpus / "sub" / ".old.txt.deleting").write_bytes(b"A delete that was never acknowledged.")
    engine = build_engine(Settings(corpus_dir=corpus, index_dir=tmp_path / "index", state_dir=tmp_path / "state"),
                          embedder=HashEmbedder())
    engine.start()
    assert not list(corpus.rglob(".*"))
    assert {d.source for d in engine.documents()} == {p.name for p in corpus_dir.iterdir() if p.suffix == ".txt"}


@pytest.mark.parametrize(("keys", "loopback", "address", "limited"), [
    ("", False, "127.0.0.1", False),  # the owner's own scripts, on a local server without keys
    ("", False, "::1", False),
    ("", False, "203.0.113.7", True),  # anyone else
    ("", True, "127.0.0.1", True),  # behind a proxy on the same host: FOOTNOTE_RATE_LIMIT_LOOPBACK=true
    (KEYS[0], False, "127.0.0.1", True),  # with keys, every key is limited, wherever it calls from
], ids=["loopback", "loopback-v6", "remote", "loopback-limited", "keyed"])
def test_loopback_callers_are_not_limited_without_keys(engine: Engine, keys: str, loopback: bool, address: str,
                                                       limited: bool) -> None:
    settings = engine.settings.model_copy(update={
        "api_keys": SecretStr(keys) if keys else None, "rate_limit_per_minute": 30, "rate_limit_burst": 3,
        "rate_limit_loopback": loopback})
    app = create_app(engine=build_engine(settings, embedder=engine.embedder))
    with TestClient(app, client=(address, 50000)) as client:
        headers = {"Authorization": f"Bearer {keys}"} if keys else {}
        statuses = [client.get("/documents", headers=headers).status_code for _ in range(6)]
    assert (429 in statuses) is limited, statuses
