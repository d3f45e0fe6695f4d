"""Answers people were shown and how they voted on them, so owners can see which answers failed.

A local SQLite file: every write is one transaction, readers never block writers (WAL), and
several workers on one host can share it."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

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


class FeedbackStore:
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
        """Keep what was shown, so a later vote refers to it; returns its id."""
        answer_id = uuid.uuid4().hex
        sources = [
            FeedbackSource(id=c.id, source=c.source, quote=c.quote, start=c.start, end=c.end).model_dump()
            for c in answer.citations
        ]
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (answer_id, _now(), channel, asker, answer.question, answer.answer, int(answer.answerable),
                 answer.mode, json.dumps(sources)),
            )
        return answer_id

    def vote(self, answer_id: str, voter: str, vote: Vote) -> None:
        """A voter's latest vote on an answer replaces their earlier one."""
        with self._connect() as conn:
            if conn.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone() is None:
                raise DocumentNotFound(f"no recorded answer {answer_id!r}")
            conn.execute(
                "INSERT INTO votes VALUES (?, ?, ?, ?) ON CONFLICT (answer_id, voter) "
                "DO UPDATE SET vote = excluded.vote, created = excluded.created",
                (answer_id, voter, vote, _now()),
            )

    def entries(self, vote: Vote | None = None, limit: int = 100) -> list[FeedbackEntry]:
        """Votes, newest first, with the answer each was about."""
        if not self.path.exists():
            return []
        query = (
            "SELECT a.id, a.question, a.answer, a.answerable, a.mode, a.sources, a.channel, a.asker, "
            "v.voter, v.vote, v.created FROM votes v JOIN answers a ON a.id = v.answer_id"
        )
        args: list[object] = []
        if vote is not None:
            query += " WHERE v.vote = ?"
            args.append(vote)
        query += " ORDER BY v.created DESC, v.rowid DESC LIMIT ?"
        args.append(limit)
        with self._connect() as conn:
            rows = conn.execute(query, args).fetchall()
        return [
            FeedbackEntry(
                answer_id=r[0], question=r[1], answer=r[2], answerable=bool(r[3]), mode=r[4],
                sources=json.loads(r[5]), channel=r[6], asker=r[7], voter=r[8], vote=r[9],
                voted_at=dt.datetime.fromisoformat(r[10]),
            )
            for r in rows
        ]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
