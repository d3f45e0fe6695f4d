"""The database store: the index in PostgreSQL with pgvector, shared by every server that points
at the database (``FOOTNOTE_DATABASE_URL``).

The tables hold what the embedded store holds: documents with their full text, chunks and
sentences with their exact offsets, each sentence's vector (``vector(<dimension>)``, HNSW,
cosine), and BM25 postings of chunks and whole documents with the statistics BM25 needs, kept in
step by every write. Search runs in SQL: nothing is loaded into the server's memory, so a start
costs nothing and a write by any server is seen by every other at its next question.

A document's upsert or delete is one transaction, so a reader sees the old document or the new
one, never half. Writers take turns on the stats row (it holds the id counters). As in the
embedded store, a document's chunks and sentences take consecutive ids, so a document is an id
range, and ids are never reused.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from .chunking import Chunk
from .database import Database
from .documents import Document
from .errors import IndexCorrupt, IndexMissing
from .keywords import Tokenizer, term_id
from .store import (
    EMPTY,
    Admitted,
    Counts,
    DocumentInfo,
    DocumentRows,
    FileStamp,
    IndexConfig,
    PreparedDocument,
    Scored,
    StoredSentence,
    chunk_stems,
)
from .text import Analyzer

# A filter admitting at most this many sentences is searched exactly (by id ranges); a wider one
# walks the HNSW graph with pgvector's iterative scan, checking the filter as it goes.
EXACT_FILTER_SENTENCES = 20_000

_VECTOR_INDEX = "CREATE INDEX IF NOT EXISTS footnote_sentences_vector ON footnote_sentences USING hnsw (vector vector_cosine_ops)"
# A nearest sentence with its score and the chunks holding it (which the dense signal needs next).
_NEAREST = "id, 1 - (vector <=> %(q)s::vector), first_chunk, last_chunk"
_INFO = "source, sha256, title, date, metadata, pages, chunk_hi - chunk_lo"

# BM25 as the embedded store computes it (``keywords.Field.scores``): Lucene's idf over live
# items (document frequencies kept in footnote_terms), tf / (tf + k1 (1 - b + b dl / avgdl)), a
# question's repeated term counted again (in
# float8 throughout: numeric arithmetic is ten times slower). Each chunk's score adds its
# document's, so a chunk holding none of the terms still scores its document's: the first k
# chunks of each of the k best documents stand for those (the rest tie with them or score less).
# A matched chunk outside the matched top k cannot reach the top k either way, so its lower
# "unmatched" score in the union never displaces a right one.
_KEYWORD_SQL = """
WITH q AS (SELECT * FROM unnest(%(terms)s::bigint[], %(repeats)s::float8[]) AS q(term, rep)),
st AS (SELECT documents::float8 AS nd, chunks::float8 AS nc, doc_length / greatest(documents, 1) AS doc_avg,
              chunk_length / greatest(chunks, 1) AS chunk_avg FROM footnote_stats),
w AS (SELECT q.term, q.rep * ln(1 + (st.nc - t.chunk_df + 0.5::float8) / (t.chunk_df + 0.5::float8)) AS cw,
             q.rep * ln(1 + (st.nd - t.doc_df + 0.5::float8) / (t.doc_df + 0.5::float8)) AS dw
      FROM q JOIN (SELECT * FROM footnote_terms WHERE term = ANY(%(terms)s)) AS t USING (term) CROSS JOIN st),
cs AS (SELECT p.chunk_id, min(p.doc_id) AS doc_id,
              sum(w.cw * p.tf / (p.tf + %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * p.len / st.chunk_avg))) AS s
       FROM footnote_chunk_terms p JOIN w USING (term) CROSS JOIN st WHERE p.term = ANY(%(terms)s) GROUP BY p.chunk_id),
ds AS (SELECT p.doc_id,
              sum(w.dw * p.tf / (p.tf + %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * p.len / st.doc_avg))) AS s
       FROM footnote_doc_terms p JOIN w USING (term) CROSS JOIN st WHERE p.term = ANY(%(terms)s) GROUP BY p.doc_id),
matched AS (SELECT cs.chunk_id, cs.s + coalesce(ds.s, 0) AS score FROM cs LEFT JOIN ds USING (doc_id) {chunk_filter}
            ORDER BY score DESC, cs.chunk_id LIMIT %(k)s),
top_docs AS (SELECT ds.doc_id, ds.s FROM ds {doc_filter} ORDER BY ds.s DESC, ds.doc_id LIMIT %(k)s),
unmatched AS (SELECT g AS chunk_id, t.s AS score FROM top_docs t CROSS JOIN LATERAL generate_series(
                  (SELECT chunk_lo FROM footnote_documents WHERE id = t.doc_id),
                  (SELECT least(chunk_hi, chunk_lo + %(k)s) - 1 FROM footnote_documents WHERE id = t.doc_id)) AS g)
SELECT chunk_id, max(score) AS score FROM (SELECT * FROM matched UNION ALL SELECT * FROM unmatched) AS c
GROUP BY chunk_id ORDER BY score DESC, chunk_id LIMIT %(k)s
"""


@dataclass(frozen=True)
class _Filter:
    doc_ids: list[int] | None  # documents named by source
    date_from: str | None
    date_to: str | None
    sentences: int
    ranges: list[tuple[int, int]] | None  # sentence id ranges, when few enough to search exactly

    def where(self, alias: str, params: dict[str, Any]) -> str:
        """The filter as SQL over a table with ``doc_id`` (or ``id``) and ``date`` columns."""
        clauses = []
        if self.doc_ids is not None:
            clauses.append(f"{alias} = ANY(%(doc_ids)s)")
            params["doc_ids"] = self.doc_ids
        if self.date_from:  # an undated document's NULL date compares as unknown: never admitted
            clauses.append("date >= %(date_from)s")
            params["date_from"] = self.date_from
        if self.date_to:
            clauses.append("date <= %(date_to)s")
            params["date_to"] = self.date_to
        return " AND ".join(clauses) or "true"


class PostgresStore:
    shared = True  # other servers write here too: see ``DocumentWriter``

    def __init__(self, database: Database, analyzer: Analyzer, k1: float = 1.2, b: float = 0.75,
                 ef_search: int = 100) -> None:
        self.db = database
        self.analyzer = analyzer
        self.tokenizer = Tokenizer(analyzer.stemmer)
        self.k1, self.b = k1, b
        self.ef_search = ef_search
        self._config: IndexConfig | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def _read_config(self) -> IndexConfig | None:
        rows = self.db.read("SELECT value FROM footnote_meta WHERE key = 'config'")
        return IndexConfig(**json.loads(rows[0][0])) if rows else None

    def exists(self) -> bool:
        return self._read_config() is not None

    def open(self) -> IndexConfig:
        config = self._read_config()
        if config is None:
            raise IndexMissing(f"no index in the database at {self.db.where}: run `footnote index` to build it")
        self._ensure_vector_index()  # a first build that did not finish leaves it missing
        self._config = config
        return config

    @property
    def config(self) -> IndexConfig:
        return self._config or self.open()

    def create(self, config: IndexConfig) -> None:
        """Empty the index tables and start one built with ``config`` (tables are kept: only
        their rows go). The vector column and its HNSW index take the model's dimension."""
        with self.db.transaction() as conn:
            conn.execute("LOCK TABLE footnote_stats IN EXCLUSIVE MODE")
            conn.execute("TRUNCATE footnote_documents, footnote_chunks, footnote_sentences, footnote_chunk_terms, "
                         "footnote_doc_terms, footnote_terms, footnote_stems")
            conn.execute("DROP INDEX IF EXISTS footnote_sentences_vector")
            conn.execute(f"ALTER TABLE footnote_sentences ALTER COLUMN vector TYPE vector({int(config.dimension)})")
            conn.execute(_VECTOR_INDEX)
            conn.execute("UPDATE footnote_stats SET version = version + 1, documents = 0, chunks = 0, sentences = 0, "
                         "doc_length = 0, chunk_length = 0")
            conn.execute("INSERT INTO footnote_meta VALUES ('config', %s) ON CONFLICT (key) DO UPDATE SET value = "
                         "excluded.value", (json.dumps(config.__dict__),))
        self._config = config

    def version(self) -> int:
        return int(self.db.read("SELECT version FROM footnote_stats")[0][0])

    def refresh(self) -> int:
        return self.version()  # nothing is held in memory: every read sees the tables as they are

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Many writes in a row. Into an empty index (a first build), the vectors go in without
        their HNSW index, which is built once at the end: many times faster than growing the
        graph row by row. (If the process dies first, the next ``open`` builds it.)"""
        if self.counts().sentences:
            yield
            return
        with self.db.transaction() as conn:
            conn.execute("DROP INDEX IF EXISTS footnote_sentences_vector")
        try:
            yield
        finally:
            self._ensure_vector_index()

    def _ensure_vector_index(self) -> None:
        with self.db.transaction() as conn:
            if _one(conn, "SELECT to_regclass('footnote_sentences_vector') IS NULL"):
                conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
                conn.execute(_VECTOR_INDEX)

    def checkpoint(self, force: bool = False) -> bool:
        """After a large write, fresh planner statistics (and the visibility map that makes the
        postings' index-only scans work); autovacuum does it too, later."""
        if not force:
            return False
        self.db.read("VACUUM (ANALYZE) footnote_chunk_terms, footnote_doc_terms, footnote_terms, footnote_sentences, "
                     "footnote_documents, footnote_chunks, footnote_stems")
        return True

    def close(self) -> None:
        self.db.close()

    # -- reading ----------------------------------------------------------------------------

    def counts(self) -> Counts:
        row = self.db.read("SELECT documents, chunks, sentences FROM footnote_stats")[0]
        return Counts(int(row[0]), int(row[1]), int(row[2]))

    @staticmethod
    def _info(row: tuple) -> DocumentInfo:
        return DocumentInfo(row[0], row[1], row[2], row[3], row[4], tuple(row[5]), int(row[6]), *row[7:])

    def documents(self) -> list[DocumentInfo]:
        rows = self.db.read(f"SELECT {_INFO}, char_length(text) FROM footnote_documents ORDER BY source")
        return [self._info(r) for r in rows]

    def infos(self, sources: Iterable[str]) -> dict[str, DocumentInfo]:
        wanted = list(dict.fromkeys(sources))
        if not wanted:
            return {}
        rows = self.db.read(f"SELECT {_INFO} FROM footnote_documents WHERE source = ANY(%s)", (wanted,))
        return {r[0]: self._info(r) for r in rows}

    def document(self, source: str) -> Document | None:
        rows = self.db.read("SELECT source, text, title, date, body_start, metadata, pages, sha256 "
                            "FROM footnote_documents WHERE source = %s", (source,))
        if not rows:
            return None
        row = rows[0]
        doc = Document(row[0], row[1], row[2], row[3], row[4], row[5], tuple(row[6]))
        if doc.sha256 != row[7]:
            raise IndexCorrupt(f"document {source!r} does not match its checksum")
        return doc

    def fingerprints(self) -> dict[str, tuple[str, FileStamp | None]]:
        rows = self.db.read("SELECT source, sha256, file_size, file_mtime_ns FROM footnote_documents")
        return {source: (sha, FileStamp(size, mtime) if size is not None else None) for source, sha, size, mtime in rows}

    def with_text(self, hashes: Collection[str]) -> dict[str, str]:
        if not hashes:
            return {}
        return dict(self.db.read("SELECT sha256, source FROM footnote_documents WHERE sha256 = ANY(%s)",
                                 (list(hashes),)))

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        rows = self.db.read(
            'SELECT c.id, d.source, c.ord, c.start, c."end", substr(d.text, c.start + 1, c."end" - c.start) '
            "FROM footnote_chunks c JOIN footnote_documents d ON d.id = c.doc_id WHERE c.id = ANY(%s)", (list(ids),))
        return {cid: Chunk(f"{source}#{ord_}", source, start, end, text) for cid, source, ord_, start, end, text in rows}

    def chunk_sentences(self, ids: Sequence[int]) -> dict[int, list[StoredSentence]]:
        if not ids:
            return {}
        rows = self.db.read(
            'SELECT c.id, d.source, s.id, s.start, s."end" FROM footnote_chunks c '
            "JOIN footnote_documents d ON d.id = c.doc_id "
            "CROSS JOIN LATERAL unnest(c.sentences) WITH ORDINALITY AS m(sid, n) "
            "JOIN footnote_sentences s ON s.id = m.sid WHERE c.id = ANY(%s) ORDER BY c.id, m.n", (list(ids),))
        out: dict[int, list[StoredSentence]] = {}
        for cid, source, sid, start, end in rows:
            out.setdefault(cid, []).append(StoredSentence(sid, source, start, end))
        return out

    def sentence_chunks(self, ids: Sequence[int]) -> dict[int, range]:
        if not ids:
            return {}
        rows = self.db.read("SELECT id, first_chunk, last_chunk FROM footnote_sentences WHERE id = ANY(%s)",
                            (list(ids),))
        return {sid: range(first, last + 1) for sid, first, last in rows}

    def sentence_vectors(self, ids: Sequence[int]) -> np.ndarray:
        dimension = self.config.dimension
        out = np.zeros((len(ids), dimension), np.float32)
        if not ids:
            return out
        at = {sid: i for i, sid in enumerate(ids)}
        for sid, blob in self.db.read("SELECT id, vector FROM footnote_sentences WHERE id = ANY(%s)", (list(ids),),
                                      binary=True):
            out[at[sid]] = _vector_from_binary(blob)
        return out

    # -- searching --------------------------------------------------------------------------

    def admit(self, sources: Collection[str] | None, date_from: str | None, date_to: str | None) -> Admitted:
        probe = _Filter(None, date_from, date_to, 0, None)
        params: dict[str, Any] = {}
        where = probe.where("id", params)
        if sources is not None:
            where += " AND source = ANY(%(sources)s)"
            params["sources"] = list(sources)
        rows = self.db.read(f"SELECT id, source, sent_lo, sent_hi FROM footnote_documents WHERE {where}", params)
        count = sum(hi - lo for _, _, lo, hi in rows)
        detail = _Filter(
            [r[0] for r in rows] if sources is not None else None, date_from, date_to, count,
            [(lo, hi) for _, _, lo, hi in rows] if count <= EXACT_FILTER_SENTENCES else None,
        )
        return Admitted(frozenset(r[1] for r in rows), detail)

    def keyword_search(self, question: str, k: int, admitted: Admitted | None) -> Scored:
        counts = Counter(term_id(t) for t in self.tokenizer.tokens(question))
        if not counts:
            return EMPTY
        params: dict[str, Any] = {"terms": list(counts), "repeats": [float(n) for n in counts.values()],
                                  "k1": self.k1, "b": self.b, "k": k}
        doc_filter = chunk_filter = ""
        if admitted is not None:
            detail: _Filter = admitted.detail  # type: ignore[assignment]
            if not admitted.sources:
                return EMPTY
            where = detail.where("d.id", params)
            doc_filter = f"JOIN footnote_documents d ON d.id = ds.doc_id WHERE {where}"
            chunk_filter = f"JOIN footnote_documents d ON d.id = cs.doc_id WHERE {where}"
        sql = _KEYWORD_SQL.format(doc_filter=doc_filter, chunk_filter=chunk_filter)
        # The row estimates of these aggregates are far too low: a nested loop over them is
        # quadratic. (Postings and terms are read by index without one: ``term = ANY(...)``;
        # documents by scalar look-ups.)
        rows = self.db.read(sql, params, local={"enable_nestloop": "off"})
        rows = [r for r in rows if r[1] > 0]
        if not rows:
            return EMPTY
        return Scored(np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.float32))

    def vector_search(self, query: np.ndarray, k: int, admitted: Admitted | None) -> Scored:
        params: dict[str, Any] = {"q": _vector_text(query), "k": k}
        # The graph is walked with ef_search candidates at a time, and on (iterative scan) until k
        # are found: a k of several hundred costs a few walks, not one walk that wide.
        local = {"hnsw.ef_search": str(self.ef_search), "hnsw.iterative_scan": "relaxed_order"}
        if admitted is None:
            rows = self.db.read(f"SELECT {_NEAREST} FROM footnote_sentences "
                                "ORDER BY vector <=> %(q)s::vector LIMIT %(k)s", params, local=local)
        else:
            detail: _Filter = admitted.detail  # type: ignore[assignment]
            if detail.sentences == 0:
                return EMPTY
            if detail.ranges is not None:  # few: every admitted sentence is compared
                params["lo"], params["hi"] = [r[0] for r in detail.ranges], [r[1] for r in detail.ranges]
                rows = self.db.read(
                    "WITH a AS MATERIALIZED (SELECT s.id, 1 - (s.vector <=> %(q)s::vector) AS score, s.first_chunk, "
                    "s.last_chunk FROM unnest(%(lo)s::bigint[], %(hi)s::bigint[]) AS r(lo, hi) "
                    "JOIN footnote_sentences s ON s.id >= r.lo AND s.id < r.hi) "
                    "SELECT * FROM a ORDER BY score DESC, id LIMIT %(k)s", params)
            else:  # many: the walk goes on until k admitted sentences are found
                where = detail.where("doc_id", params)
                rows = self.db.read(
                    f"SELECT {_NEAREST} FROM footnote_sentences "
                    f"WHERE {where} ORDER BY vector <=> %(q)s::vector LIMIT %(k)s", params, local=local)
        rows.sort(key=lambda r: (-r[1], r[0]))
        return Scored(np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.float32),
                      {r[0]: range(r[2], r[3] + 1) for r in rows})

    def stem_frequencies(self, stems: Collection[str]) -> dict[str, int]:
        if not stems:
            return {}
        return dict(self.db.read("SELECT term, df FROM footnote_stems WHERE df > 0 AND term = ANY(%s)",
                                 (list(stems),)))

    def related_stems(self, stem: str) -> frozenset[str]:
        shorter = [stem[:-n] for n in (1, 2) if len(stem) - n >= 4]
        rows = self.db.read(
            "SELECT term FROM footnote_stems WHERE df > 0 AND ((term > %s AND term < %s AND length(term) <= %s) "
            "OR term = ANY(%s))",
            (stem, stem + "\U0010ffff", len(stem) + 2 if len(stem) >= 4 else 0, shorter))
        return frozenset({stem, *(r[0] for r in rows)})

    # -- writing ----------------------------------------------------------------------------

    def upsert(self, documents: Sequence[PreparedDocument]) -> None:
        if not documents:
            return
        dimension = self.config.dimension
        prepared = [DocumentRows.of(p, self.tokenizer, self.analyzer, dimension) for p in documents]
        with self.db.transaction() as conn:
            self._remove(conn, [p.document.source for p in documents])
            row = conn.execute("SELECT next_document, next_chunk, next_sentence FROM footnote_stats FOR UPDATE").fetchone()
            assert row is not None
            doc_id, chunk_id, sent_id = row
            stems: Counter[str] = Counter()
            totals = Counter[str]()
            with conn.cursor() as cur:
                docs, chunks, sentences, chunk_terms, doc_terms = [], [], [], [], []
                for rows in prepared:
                    p, doc, stamp = rows.prepared, rows.prepared.document, rows.prepared.stamp
                    chunk_lo, sent_lo = chunk_id, sent_id
                    docs.append((doc_id, doc.source, doc.sha256, doc.title, doc.date, doc.body_start,
                                 Jsonb(doc.metadata), list(doc.pages), doc.text, chunk_lo,
                                 chunk_lo + len(rows.chunks), sent_lo, sent_lo + len(p.sentences), rows.length,
                                 rows.terms.tolist(), stamp.size if stamp else None, stamp.mtime_ns if stamp else None))
                    doc_terms += [(t, doc_id, f, rows.length) for t, f in zip(rows.terms.tolist(), rows.tfs.tolist())]
                    for i, c in enumerate(rows.chunks):
                        chunks.append((chunk_lo + i, doc_id, i, c.start, c.end, c.length, c.terms.tolist(),
                                       [sent_lo + s for s in c.sentences]))
                        chunk_terms += [(t, chunk_lo + i, doc_id, f, c.length)
                                        for t, f in zip(c.terms.tolist(), c.tfs.tolist())]
                        totals["chunk_length"] += c.length
                    for i, (s, (first, last)) in enumerate(zip(p.sentences, p.holders)):
                        sentences.append((sent_lo + i, doc_id, doc.date, s.start, s.end, chunk_lo + first,
                                          chunk_lo + last, _vector_binary(rows.vectors[i])))
                    stems.update(rows.stems)
                    totals["documents"] += 1
                    totals["chunks"] += len(rows.chunks)
                    totals["sentences"] += len(p.sentences)
                    totals["doc_length"] += rows.length
                    doc_id, chunk_id, sent_id = doc_id + 1, chunk_lo + len(rows.chunks), sent_lo + len(p.sentences)
                _copy(cur, "footnote_documents (id, source, sha256, title, date, body_start, metadata, pages, text, "
                      "chunk_lo, chunk_hi, sent_lo, sent_hi, length, terms, file_size, file_mtime_ns)",
                      ["int8", "text", "text", "text", "text", "int4", "jsonb", "int4[]", "text", "int8", "int8",
                       "int8", "int8", "float4", "int8[]", "int8", "int8"], docs)
                _copy(cur, 'footnote_chunks (id, doc_id, ord, start, "end", length, terms, sentences)',
                      ["int8", "int8", "int4", "int4", "int4", "float4", "int8[]", "int8[]"], chunks)
                # The vector goes as pgvector's binary form (COPY BINARY names no types).
                _copy(cur, 'footnote_sentences (id, doc_id, date, start, "end", first_chunk, last_chunk, vector)',
                      ["int8", "int8", "text", "int4", "int4", "int8", "int8", "bytea"], sentences)
                _copy(cur, "footnote_chunk_terms (term, chunk_id, doc_id, tf, len)",
                      ["int8", "int8", "int8", "float4", "float4"], chunk_terms)
                _copy(cur, "footnote_doc_terms (term, doc_id, tf, len)", ["int8", "int8", "float4", "float4"], doc_terms)
            self._count_stems(conn, stems, +1)
            self._count_terms(conn, [(r.terms.tolist(), [c.terms.tolist() for c in r.chunks]) for r in prepared], +1)
            conn.execute(
                "UPDATE footnote_stats SET version = version + 1, documents = documents + %s, chunks = chunks + %s, "
                "sentences = sentences + %s, doc_length = doc_length + %s, chunk_length = chunk_length + %s, "
                "next_document = %s, next_chunk = %s, next_sentence = %s",
                (totals["documents"], totals["chunks"], totals["sentences"], totals["doc_length"],
                 totals["chunk_length"], doc_id, chunk_id, sent_id))

    def delete(self, sources: Collection[str]) -> None:
        with self.db.transaction() as conn:
            self._remove(conn, list(sources))
            conn.execute("UPDATE footnote_stats SET version = version + 1")

    def reread(self, config: IndexConfig, metadata: Mapping[str, dict[str, str]]) -> None:
        with self.db.transaction() as conn:
            conn.execute("SELECT 1 FROM footnote_stats FOR UPDATE")  # writers take turns
            with conn.cursor() as cur:
                cur.executemany("UPDATE footnote_documents SET metadata = %s WHERE source = %s",
                                [(Jsonb(m), source) for source, m in metadata.items()])
            conn.execute("UPDATE footnote_meta SET value = %s WHERE key = 'config'", (json.dumps(config.__dict__),))
            conn.execute("UPDATE footnote_stats SET version = version + 1")
        self._config = config

    def _remove(self, conn: psycopg.Connection[Any], sources: list[str]) -> None:
        """Delete documents' rows and take their share out of the statistics (inside a write).
        The stats row is locked first: writers take turns, and counts never go stale."""
        conn.execute("SELECT 1 FROM footnote_stats FOR UPDATE")
        if not sources:
            return
        found = conn.execute(
            "SELECT id, text, chunk_lo, chunk_hi, sent_lo, sent_hi, length, terms FROM footnote_documents "
            "WHERE source = ANY(%s)", (sources,)).fetchall()
        for doc_id, text, chunk_lo, chunk_hi, sent_lo, sent_hi, length, terms in found:
            chunks = conn.execute('SELECT start, "end", length, terms FROM footnote_chunks WHERE id >= %s AND id < %s',
                                  (chunk_lo, chunk_hi)).fetchall()
            conn.execute("DELETE FROM footnote_chunk_terms WHERE term = ANY(%s) AND chunk_id >= %s AND chunk_id < %s",
                         (list({t for c in chunks for t in c[3]}), chunk_lo, chunk_hi))
            conn.execute("DELETE FROM footnote_doc_terms WHERE term = ANY(%s) AND doc_id = %s", (terms, doc_id))
            conn.execute("DELETE FROM footnote_sentences WHERE id >= %s AND id < %s", (sent_lo, sent_hi))
            conn.execute("DELETE FROM footnote_chunks WHERE id >= %s AND id < %s", (chunk_lo, chunk_hi))
            conn.execute("DELETE FROM footnote_documents WHERE id = %s", (doc_id,))
            self._count_stems(conn, chunk_stems(self.analyzer, text, [(c[0], c[1]) for c in chunks]), -1)
            self._count_terms(conn, [(terms, [c[3] for c in chunks])], -1)
            conn.execute(
                "UPDATE footnote_stats SET documents = documents - 1, chunks = chunks - %s, sentences = sentences - %s, "
                "doc_length = doc_length - %s, chunk_length = chunk_length - %s",
                (chunk_hi - chunk_lo, sent_hi - sent_lo, length, sum(c[2] for c in chunks)))

    @staticmethod
    def _count_terms(conn: psycopg.Connection[Any], documents: list[tuple[list[int], list[list[int]]]],
                     sign: int) -> None:
        """Add (or take back) documents' share of the BM25 document frequencies: (the document's
        term ids, each chunk's term ids) per document."""
        chunk_df: Counter[int] = Counter()
        doc_df: Counter[int] = Counter()
        for doc_terms, chunks in documents:
            doc_df.update(doc_terms)
            for terms in chunks:
                chunk_df.update(terms)
        terms = sorted(chunk_df.keys() | doc_df.keys())  # a fixed order, as in _count_stems
        if terms:
            conn.execute(
                "INSERT INTO footnote_terms (term, chunk_df, doc_df) SELECT * FROM unnest(%s::bigint[], %s::int[], "
                "%s::int[]) ON CONFLICT (term) DO UPDATE SET chunk_df = footnote_terms.chunk_df + excluded.chunk_df, "
                "doc_df = footnote_terms.doc_df + excluded.doc_df",
                (terms, [sign * chunk_df[t] for t in terms], [sign * doc_df[t] for t in terms]))

    @staticmethod
    def _count_stems(conn: psycopg.Connection[Any], stems: Counter[str], sign: int) -> None:
        if not stems:
            return
        terms = sorted(stems)  # a fixed order: concurrent writers lock rows alike, never in a cycle
        conn.execute(
            "INSERT INTO footnote_stems (term, df) SELECT * FROM unnest(%s::text[], %s::int[]) "
            "ON CONFLICT (term) DO UPDATE SET df = footnote_stems.df + excluded.df",
            (terms, [sign * stems[t] for t in terms]))


def _copy(cur: psycopg.Cursor[Any], target: str, types: list[str], rows: list[tuple]) -> None:
    if not rows:
        return
    with cur.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _vector_binary(vector: np.ndarray) -> bytes:
    """pgvector's binary form: dimension and a reserved word (int16, big-endian), then float32s."""
    return len(vector).to_bytes(2, "big") + b"\0\0" + vector.astype(">f4").tobytes()


def _vector_from_binary(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, ">f4", offset=4).astype(np.float32)


def _vector_text(vector: np.ndarray) -> str:
    # float32 -> repr of the float64 it widens to: exact, so the database sees the same vector.
    return "[" + ",".join(map(repr, np.asarray(vector, np.float32).astype(np.float64).ravel().tolist())) + "]"


def _one(conn: psycopg.Connection[Any], sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]
