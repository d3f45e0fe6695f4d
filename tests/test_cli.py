"""The installed `footnote` console script, run as a user runs it (subprocesses, real HTTP)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from . import files
from .conftest import DATA

pytestmark = pytest.mark.slow

FOOTNOTE = str(Path(sys.executable).with_name("footnote"))


@pytest.fixture(scope="module")
def env(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        **os.environ,
        "FOOTNOTE_CORPUS_DIR": str(corpus_dir),
        "FOOTNOTE_INDEX_DIR": str(tmp_path_factory.mktemp("cli-index")),
    }


def footnote(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FOOTNOTE, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def indexed(env: dict[str, str]) -> dict[str, str]:
    result = footnote(env, "index")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("indexed 2 documents")
    return env


def test_reindex_skips_unchanged_documents(indexed: dict[str, str]) -> None:
    result = footnote(indexed, "index")
    assert result.returncode == 0
    assert "2 unchanged" in result.stdout and "(0 of " in result.stdout, result.stdout


def test_index_paths_adds_documents_that_later_syncs_keep(env: dict[str, str], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(env["FOOTNOTE_CORPUS_DIR"], corpus)
    own = {**env, "FOOTNOTE_CORPUS_DIR": str(corpus), "FOOTNOTE_INDEX_DIR": str(tmp_path / "index")}
    extra = tmp_path / "inbox" / "brief.html"
    extra.parent.mkdir()
    extra.write_bytes(files.html("Brief", ["The ferry to Ostrava was cancelled twice."]))
    added = footnote(own, "index", str(extra))
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("indexed 3 documents") and "3 added" in added.stdout
    assert (corpus / "brief.html").read_bytes() == extra.read_bytes()
    synced = footnote(own, "index")
    assert "3 unchanged" in synced.stdout, synced.stdout


def test_ask_json_is_the_api_response_body(indexed: dict[str, str], client: TestClient) -> None:
    question = "Which resolutions were cited?"
    result = footnote(indexed, "ask", question, "--json", "--top-k", "3")
    assert result.returncode == 0, result.stderr
    api = client.post("/ask", json={"question": question, "top_k": 3})
    assert json.loads(result.stdout) == api.json()
    assert result.stdout.strip() == api.text


def test_ask_prints_the_answer_and_numbered_sources(indexed: dict[str, str]) -> None:
    result = footnote(indexed, "ask", "What does PRC stand for?")
    assert result.returncode == 0, result.stderr
    assert "People’s Republic of China" in result.stdout
    assert "Sources:" in result.stdout and "[1] 004_db5665c2341ed43f.txt" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ask", "   "), "question must not be empty"),
        (("eval", "does-not-exist.jsonl"), "cannot read"),
        (("ask", "hi", "--url", "http://127.0.0.1:9"), "cannot reach"),
        (("index", "no/such/dir"), "no such file or directory"),
    ],
)
def test_errors_are_one_line_without_traceback(indexed: dict[str, str], args: tuple[str, ...], message: str) -> None:
    result = footnote(indexed, *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in result.stderr


def test_ask_without_an_index_builds_it_first(env: dict[str, str], tmp_path: Path) -> None:
    fresh = {**env, "FOOTNOTE_INDEX_DIR": str(tmp_path / "fresh")}
    result = footnote(fresh, "ask", "In which city was the NATO summit held?")
    assert result.returncode == 0, result.stderr
    assert "no index yet: building it" in result.stderr and "index ready: 2 documents" in result.stderr
    assert "Washington" in result.stdout
    again = footnote(fresh, "ask", "In which city was the NATO summit held?")
    assert "no index yet" not in again.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ask_filters_by_source_and_rejects_bad_dates(indexed: dict[str, str]) -> None:
    only = "004_db5665c2341ed43f.txt"
    result = footnote(indexed, "ask", "Which resolutions were cited?", "--json", "--source", only)
    assert result.returncode == 0, result.stderr
    assert {p["source"] for p in json.loads(result.stdout)["passages"]} == {only}
    bad = footnote(indexed, "ask", "Which resolutions were cited?", "--date-from", "last week")
    assert bad.returncode == 1 and bad.stderr.startswith("error: bad filter")


@pytest.fixture(scope="module")
def server(indexed: dict[str, str]) -> Iterator[str]:
    with serving(indexed) as url:
        yield url


@contextmanager
def serving(env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [FOOTNOTE, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("footnote serve did not become healthy in 120 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_answers_over_real_http(server: str, indexed: dict[str, str]) -> None:
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["documents"] == 2
    result = footnote(indexed, "ask", "In which city was the NATO summit held?", "--url", server, "--json")
    assert result.returncode == 0, result.stderr
    assert "Washington" in json.loads(result.stdout)["answer"]


def test_eval_against_a_server(server: str, indexed: dict[str, str]) -> None:
    result = footnote(indexed, "eval", str(DATA / "gold_qa.jsonl"), "--url", server, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == 50 and report["span_integrity"] == 1.0
    assert report["failed"] == []


def test_remote_errors_are_reported_with_the_servers_message(server: str, indexed: dict[str, str]) -> None:
    result = footnote(indexed, "ask", "x" * 2001, "--url", server)
    assert result.returncode == 1
    assert "422" in result.stderr and "question" in result.stderr


def _gold_copies(tmp_path: Path, times: int) -> Path:
    lines = (DATA / "gold_qa.jsonl").read_text().splitlines()
    out = tmp_path / "gold.jsonl"
    out.write_text("".join(json.dumps({**json.loads(line), "id": f"{n}-{json.loads(line)['id']}"}) + "\n"
                           for n in range(times) for line in lines))
    return out


def test_a_local_batch_is_not_throttled_by_default(indexed: dict[str, str], tmp_path: Path) -> None:
    """Default limits (600 a minute, bursts of 60): a caller on 127.0.0.1 with no keys is the
    owner's own script, and 500 questions go through without a 429."""
    with serving({**indexed, "FOOTNOTE_RATE_LIMIT_PER_MINUTE": "600"}) as url:
        result = footnote(indexed, "eval", str(_gold_copies(tmp_path, 10)), "--url", url, "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["questions"] == 500 and report["failed"] == []


def test_remote_commands_wait_out_a_429(indexed: dict[str, str], tmp_path: Path) -> None:
    limited = {**indexed, "FOOTNOTE_API_KEYS": "cli-key-5e2a", "FOOTNOTE_RATE_LIMIT_PER_MINUTE": "120",
               "FOOTNOTE_RATE_LIMIT_BURST": "2"}
    with serving(limited) as url:
        # 8 questions at 2 a second after a burst of 2: the client waits when told to, and all are answered.
        gold = tmp_path / "few.jsonl"
        gold.write_text("".join((DATA / "gold_qa.jsonl").read_text().splitlines(keepends=True)[:8]))
        result = footnote({**indexed, "FOOTNOTE_API_KEY": "cli-key-5e2a"}, "eval", str(gold), "--url", url, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["questions"] == 8
        assert httpx.post(f"{url}/ask", json={"question": "Which resolutions were cited?"}).status_code == 401
