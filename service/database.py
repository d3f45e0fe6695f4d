"""A PostgreSQL database that several Footnote servers share: a pool of connections, the schema
(created and migrated on start, never dropped), and its failures as domain errors.

A read is one statement in one round trip (``Database.read``); a write is one transaction
(``Database.transaction``): committed when the block ends, rolled back if it raises. A database that cannot be reached is ``DatabaseUnavailable`` (503 over HTTP);
the pool reconnects by itself once it is back, so no restart is needed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from .errors import DatabaseUnavailable, IndexMismatch

log = logging.getLogger(__name__)

# Any fixed number: taken while migrating, so two servers starting together migrate once.
MIGRATION_LOCK = 0x466F6F746E6F7465

# Schema versions, in order: append, never edit. The vector column takes its dimension when an
# index is created (the model decides it), see ``PostgresStore.create``.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE footnote_meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE footnote_stats (
        id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL, documents bigint NOT NULL,
        chunks bigint NOT NULL, sentences bigint NOT NULL, doc_length double precision NOT NULL,
        chunk_length double precision NOT NULL, next_document bigint NOT NULL, next_chunk bigint NOT NULL,
        next_sentence bigint NOT NULL
    );
    INSERT INTO footnote_stats VALUES (1, 0, 0, 0, 0, 0, 0, 1, 1, 1);
    CREATE TABLE footnote_documents (
        id bigint PRIMARY KEY, source text NOT NULL UNIQUE, sha256 text NOT NULL, title text, date text,
        body_start int NOT NULL, metadata jsonb NOT NULL, pages int[] NOT NULL, text text NOT NULL,
        chunk_lo bigint NOT NULL, chunk_hi bigint NOT NULL, sent_lo bigint NOT NULL, sent_hi bigint NOT NULL,
        length real NOT NULL, terms bigint[] NOT NULL, file_size bigint, file_mtime_ns bigint
    );
    CREATE INDEX footnote_documents_date ON footnote_documents (date);
    CREATE INDEX footnote_documents_sha256 ON footnote_documents (sha256);
    CREATE TABLE footnote_chunks (
        id bigint PRIMARY KEY, doc_id bigint NOT NULL, ord int NOT NULL, start int NOT NULL, "end" int NOT NULL,
        length real NOT NULL, terms bigint[] NOT NULL, sentences bigint[] NOT NULL
    );
    CREATE TABLE footnote_sentences (
        id bigint PRIMARY KEY, doc_id bigint NOT NULL, date text, start int NOT NULL, "end" int NOT NULL,
        first_chunk bigint NOT NULL, last_chunk bigint NOT NULL, vector vector NOT NULL
    );
    -- BM25 postings: one row per (term, chunk) and (term, document), with what scoring needs, so
    -- a question reads only its terms' index entries.
    CREATE TABLE footnote_chunk_terms (
        term bigint NOT NULL, chunk_id bigint NOT NULL, doc_id bigint NOT NULL, tf real NOT NULL, len real NOT NULL,
        PRIMARY KEY (term, chunk_id) INCLUDE (doc_id, tf, len)
    );
    CREATE TABLE footnote_doc_terms (
        term bigint NOT NULL, doc_id bigint NOT NULL, tf real NOT NULL, len real NOT NULL,
        PRIMARY KEY (term, doc_id) INCLUDE (tf, len)
    );
    CREATE TABLE footnote_stems (term text COLLATE "C" PRIMARY KEY, df int NOT NULL);
    CREATE TABLE footnote_feedback_answers (
        id text PRIMARY KEY, created timestamptz NOT NULL, channel text NOT NULL, asker text,
        question text NOT NULL, answer text NOT NULL, answerable boolean NOT NULL, mode text NOT NULL,
        sources jsonb NOT NULL
    );
    CREATE TABLE footnote_feedback_votes (
        answer_id text NOT NULL REFERENCES footnote_feedback_answers (id), voter text NOT NULL,
        vote text NOT NULL, created timestamptz NOT NULL, seq bigserial, PRIMARY KEY (answer_id, voter)
    );
    CREATE INDEX footnote_feedback_votes_created ON footnote_feedback_votes (created);
    CREATE TABLE footnote_seen (key text PRIMARY KEY, at double precision NOT NULL);
    CREATE INDEX footnote_seen_at ON footnote_seen (at);
    """,
    # 2: each term's document frequency over chunks and over documents, kept by every write, so a
    # question reads its terms' postings once (not twice, to count them first).
    """
    CREATE TABLE footnote_terms (term bigint PRIMARY KEY, chunk_df int NOT NULL, doc_df int NOT NULL);
    INSERT INTO footnote_terms
    SELECT term, coalesce(c.n, 0), coalesce(d.n, 0)
    FROM (SELECT term, count(*) AS n FROM footnote_chunk_terms GROUP BY term) AS c
    FULL JOIN (SELECT term, count(*) AS n FROM footnote_doc_terms GROUP BY term) AS d USING (term);
    """,
)


class Database:
    """One pool per process. Nothing connects until first use."""

    def __init__(self, url: str, pool_size: int = 10, timeout: float = 5.0) -> None:
        self.url = url
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """Host, port and database of the URL, never its password (for messages and logs)."""
        try:
            parts = conninfo_to_dict(self.url)
        except psycopg.ProgrammingError:
            return "(an unparsable FOOTNOTE_DATABASE_URL)"
        return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"

    def _unavailable(self, exc: Exception) -> DatabaseUnavailable:
        # psycopg's own message may quote the connection string: only its class is passed on.
        return DatabaseUnavailable(f"the database at {self.where} is unavailable ({type(exc).__name__})")

    def open(self) -> ConnectionPool:
        """Migrate the schema (on first use) and start the pool; fails fast if unreachable."""
        with self._lock:
            if self._pool is not None:
                return self._pool
            try:
                with psycopg.connect(self.url, connect_timeout=math.ceil(self.timeout), autocommit=True) as conn:
                    migrate(conn)
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc) from None
            pool = ConnectionPool(
                self.url, min_size=1, max_size=self.pool_size, timeout=self.timeout, open=False,
                kwargs={"connect_timeout": math.ceil(self.timeout), "autocommit": True}, name="footnote",
            )
            try:
                pool.open(wait=True, timeout=self.timeout)
            except PoolTimeout as exc:
                pool.close()
                raise self._unavailable(exc) from None
            self._pool = pool
            return pool

    def read(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None, binary: bool = False,
             local: Mapping[str, str] | None = None) -> list[tuple[Any, ...]]:
        """One statement's rows, in one round trip (with ``local`` settings for it, sent in the
        same pipeline). Reads are idempotent: one that meets a connection broken while it sat in
        the pool (the database restarted) is tried once more, on a new one."""
        pool = self.open()
        for attempt in (1, 2):
            try:
                with pool.connection() as conn, conn.cursor(binary=binary) as cur:
                    if not local:
                        cur.execute(query, params)
                        return cur.fetchall() if cur.description else []
                    with conn.pipeline(), conn.transaction():
                        for name, value in local.items():
                            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
                        return cur.execute(query, params).fetchall()
            except PoolTimeout as exc:
                raise self._unavailable(exc) from None
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    log.warning("database %s: %s", self.where, type(exc).__name__)
                    raise self._unavailable(exc) from None
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction: committed when the block ends, rolled back if it
        raises. The connection is checked first (and replaced once if it broke while idle)."""
        pool = self.open()
        try:
            conn = pool.getconn()
            try:
                conn.execute("")
            except psycopg.OperationalError:
                pool.putconn(conn)  # broken: the pool discards it
                conn = pool.getconn()
            try:
                with conn.transaction():
                    yield conn
            finally:
                pool.putconn(conn)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("database %s: %s", self.where, type(exc).__name__)
            raise self._unavailable(exc) from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema to the newest version this code knows; refuse a newer one."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS footnote_schema (version int PRIMARY KEY, applied timestamptz NOT NULL)")
        row = conn.execute("SELECT coalesce(max(version), 0) FROM footnote_schema").fetchone()
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise IndexMismatch(
                f"the database schema is at version {current}, newer than this Footnote knows "
                f"({len(MIGRATIONS)}): upgrade Footnote on this server"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with conn.transaction():
                conn.execute(MIGRATIONS[version - 1])
                conn.execute("INSERT INTO footnote_schema VALUES (%s, now())", (version,))
            log.info("database schema migrated to version %d", version)
        return len(MIGRATIONS)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
