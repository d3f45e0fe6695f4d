"""Regressions from the second hardening pass (a careless or hostile client must not hurt anyone
else): each test reproduces what was reported and checks the fix."""

from __future__ import annotations

import io
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.api.security import RateLimit
from service.embedding import QueryBatcher
from service.engine import Engine, build_engine
from service.errors import InvalidDocument
from service.loaders import extract
from service.settings import Settings

from . import files
from .fake_embedder import HashEmbedder

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


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("locked.docx", _docx_with(b"<w:document/>", encrypted=True)),
        ("bogus.docx", _docx_with(b'<?xml version="1.0" encoding="x-bogus"?><w:document/>')),
        ("v99.pdf", _pdf_with_trailer(b"/Encrypt << /Filter /Standard /V 99 /R 99 /O <00> /U <00> /P -4 >> "
                                      b"/ID [<00> <00>]")),
    ],
    ids=["docx-encrypted-member", "docx-unknown-encoding", "pdf-unknown-encryption"],
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
