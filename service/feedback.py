"""Answers people were shown and how they voted on them, so owners can see which answers failed;
and the keys of deliveries already handled (Slack events), so a retry is answered once.

Each lives in a local SQLite file (every write one transaction, readers never blocking writers,
several workers on one host sharing it) or, with a database configured, in PostgreSQL, shared by
every server."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Protocol

from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from .database import Database
from .errors import DocumentNotFound
from .models import Answer

Vote = Literal["up", "down"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id TEXT PRIMARY KEY, created TEXT NOT NULL, channel TEXT NOT NULL, asker TEXT,
    question TEXT NOT NULL, answer TEXT NOT NULL, answerable INTEGER NOT NULL, mode TEXT NOT NULL,
    sources TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    answer_id TEXT NOT NULL REFERENCES answers(id), voter TEXT NOT NULL, vote TEXT NOT NULL,
    created TEXT NOT NULL, PRIMARY KEY (answer_id, voter)
);
CREATE INDEX IF NOT EXISTS votes_by_time ON votes(created);
"""


class FeedbackSource(BaseModel):
    id: int
    source: str
    quote: str
    start: int
    end: int


class FeedbackEntry(BaseModel):
    answer_id: str
    question: str
    answer: str
    answerable: bool
    mode: str
    sources: list[FeedbackSource]
    channel: str = Field(description="Where it was asked, e.g. slack:C0123.")
    asker: str | None
    voter: str
    vote: Vote
    voted_at: dt.datetime


class FeedbackStore(Protocol):
    def record_answer(self, answer: Answer, channel: str, asker: str | None) -> str:
        """Keep what was shown, so a later vote refers to it; returns its id."""

    def vote(self, answer_id: str, voter: str, vote: Vote) -> None:
        """A voter's latest vote on an answer replaces their earlier one."""

    def entries(self, vote: Vote | None = None, limit: int = 100) -> list[FeedbackEntry]:
        """Votes, newest first, with the answer each was about."""


class SeenKeys(Protocol):
    def first_time(self, key: str) -> bool:
        """True once per key (within ``SEEN_FOR_S``), however many servers are asked."""


# Slack retries an event for up to about an hour; remember keys a little longer.
SEEN_FOR_S = 2 * 3600
_ENTRY = ("SELECT a.id, a.question, a.answer, a.answerable, a.mode, a.sources, a.channel, a.asker, "
          "v.voter, v.vote, v.created FROM {votes} v JOIN {answers} a ON a.id = v.answer_id")


def _shown(answer: Answer) -> list[dict]:
    return [FeedbackSource(id=c.id, source=c.source, quote=c.quote, start=c.start, end=c.end).model_dump()
            for c in answer.citations]


def _entry(r: tuple) -> FeedbackEntry:
    return FeedbackEntry(
        answer_id=r[0], question=r[1], answer=r[2], answerable=bool(r[3]), mode=r[4],
        sources=json.loads(r[5]) if isinstance(r[5], str) else r[5], channel=r[6], asker=r[7], voter=r[8],
        vote=r[9], voted_at=r[10] if isinstance(r[10], dt.datetime) else dt.datetime.fromisoformat(r[10]),
    )


class SqliteFeedback:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            with conn:  # one transaction, committed or rolled back
                yield conn
        finally:
            conn.close()

    def record_answer(self, answer: Answer, channel: str, asker: str | None) -> str:
        answer_id = uuid.uuid4().hex
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (answer_id, _now(), channel, asker, answer.question, answer.answer, int(answer.answerable),
                 answer.mode, json.dumps(_shown(answer))),
            )
        return answer_id

    def vote(self, answer_id: str, voter: str, vote: Vote) -> None:
        with self._connect() as conn:
            if conn.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone() is None:
                raise DocumentNotFound(f"no recorded answer {answer_id!r}")
            conn.execute(
                "INSERT INTO votes VALUES (?, ?, ?, ?) ON CONFLICT (answer_id, voter) "
                "DO UPDATE SET vote = excluded.vote, created = excluded.created",
                (answer_id, voter, vote, _now()),
            )

    def entries(self, vote: Vote | None = None, limit: int = 100) -> list[FeedbackEntry]:
        if not self.path.exists():
            return []
        query = _ENTRY.format(votes="votes", answers="answers") + (" WHERE v.vote = ?" if vote else "")
        query += " ORDER BY v.created DESC, v.rowid DESC LIMIT ?"
        with self._connect() as conn:
            rows = conn.execute(query, [*([vote] if vote else []), limit]).fetchall()
        return [_entry(r) for r in rows]


class PostgresFeedback:
    def __init__(self, database: Database) -> None:
        self.db = database

    def record_answer(self, answer: Answer, channel: str, asker: str | None) -> str:
        answer_id = uuid.uuid4().hex
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO footnote_feedback_answers VALUES (%s, now(), %s, %s, %s, %s, %s, %s, %s)",
                (answer_id, channel, asker, answer.question, answer.answer, answer.answerable, answer.mode,
                 Jsonb(_shown(answer))),
            )
        return answer_id

    def vote(self, answer_id: str, voter: str, vote: Vote) -> None:
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM footnote_feedback_answers WHERE id = %s", (answer_id,)).fetchone() is None:
                raise DocumentNotFound(f"no recorded answer {answer_id!r}")
            conn.execute(
                "INSERT INTO footnote_feedback_votes (answer_id, voter, vote, created) VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (answer_id, voter) DO UPDATE SET vote = excluded.vote, created = excluded.created, "
                "seq = nextval(pg_get_serial_sequence('footnote_feedback_votes', 'seq'))",
                (answer_id, voter, vote),
            )

    def entries(self, vote: Vote | None = None, limit: int = 100) -> list[FeedbackEntry]:
        query = _ENTRY.format(votes="footnote_feedback_votes", answers="footnote_feedback_answers")
        query += (" WHERE v.vote = %s" if vote else "") + " ORDER BY v.created DESC, v.seq DESC LIMIT %s"
        with self.db.transaction() as conn:
            rows = conn.execute(query, [*([vote] if vote else []), limit]).fetchall()
        return [_entry(r) for r in rows]


class SqliteSeenKeys:
    """Keys in SQLite: a retry reaching another worker on the same host is still caught."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL)")
        return conn

    def first_time(self, key: str) -> bool:
        now = time.time()
        conn = self._connect()
        try:
            with conn:
                conn.execute("DELETE FROM seen WHERE at < ?", (now - SEEN_FOR_S,))
                return conn.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (key, now)).rowcount == 1
        finally:
            conn.close()


class PostgresSeenKeys:
    """Keys in the shared database: a retry delivered to another server is still caught."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def first_time(self, key: str) -> bool:
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM footnote_seen WHERE at < %s", (now - SEEN_FOR_S,))
            cur = conn.execute("INSERT INTO footnote_seen VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", (key, now))
            return cur.rowcount == 1


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
