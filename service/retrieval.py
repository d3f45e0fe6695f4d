"""Hybrid retrieval over chunks (the passages a user sees), from two signals:

- dense: the cosine of the question with a chunk's best sentence (FAISS inner product over unit
  sentence vectors). A sentence-sized vector is not diluted by the rest of its passage.
- keyword: BM25 of the chunk averaged with BM25 of its whole document (title + text), so a
  passage of a document that is about the question outranks a passage that merely mentions it.

Each signal's scores are standardised over its own top candidates (z-scores; a chunk one signal
did not retrieve gets that signal's lowest candidate score) and combined with fixed weights.
On benchmark tuning splits this beat reciprocal-rank fusion by 0.02-0.06 (bench/README.md).
Filters restrict both signals before ranking, so ``top_k`` passages still come back.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from .chunking import Chunk
from .embedding import Embedder
from .metrics import Metrics
from .models import Filters, Passage
from .store import Admitted, DocumentInfo, Scored, Store, StoredSentence
from .text import Analyzer, canonical

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """A bounded memo (least recently used out), so a long-running server's memory stays flat."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    row: int  # the chunk's id in the store
    score: float


@dataclass(frozen=True)
class Retrieval:
    """What a question retrieved, once per request: the view it was answered from, its vector
    and the passages. Answerers take this."""

    index: SearchIndex
    query: np.ndarray
    hits: list[Hit]
    # Puts the hits' fused scores on one scale whatever the corpus's size (``full_list_scale``).
    score_scale: float = 1.0

    def scores(self) -> list[float]:
        """The hits' scores as the answerer reads them: on a full candidate list's scale."""
        return [h.score * self.score_scale for h in self.hits]

    def passages(self) -> list[Passage]:
        infos = self.index.infos({h.chunk.source for h in self.hits})
        return [
            Passage(
                rank=rank, source=h.chunk.source, chunk_id=h.chunk.chunk_id, text=h.chunk.text,
                start=h.chunk.start, end=h.chunk.end,
                page=infos[h.chunk.source].page_at(h.chunk.start) if h.chunk.source in infos else None,
                score=round(h.score, 6),
            )
            for rank, h in enumerate(self.hits, start=1)
        ]


def full_list_scale(chunks: int, depth: int) -> float:
    """Fused scores are z-scores over each signal's candidate list, and the z-scores of n items
    cannot exceed sqrt(n - 1): over a corpus of fewer than ``depth`` chunks (the two seed articles
    are 13) they run lower than over a full list. This factor puts them on a full list's scale
    (1 from ``depth`` chunks up), so that the answerer's models, trained on larger corpora, read
    one scale."""
    return math.sqrt((depth - 1) / (chunks - 1)) if 1 < chunks < depth else 1.0


class SearchIndex:
    """The index as one question sees it: the store at one version, with memos of the per-term
    and per-document look-ups that answering repeats. Everything it reads is looked up by key
    (a term, a chunk, a document), so nothing here grows with the corpus. A write makes a new
    view, with empty memos."""

    def __init__(self, store: Store, analyzer: Analyzer, version: int) -> None:
        self.store = store
        self.analyzer = analyzer
        self.version = version
        n = max(store.counts().chunks, 1)
        self.chunks = n
        # A term never seen is as informative as the rarest possible one.
        self.unseen_idf = math.log(1 + (n + 0.5) / 0.5)
        # Terms in 40% or more of the chunks (the corpus's own topic words) identify nothing.
        common = 0.4 * n
        self.common_idf = math.log(1 + (n - common + 0.5) / (common + 0.5))
        self._idf: Memo[str, float] = Memo(65536)
        self._kin: Memo[str, frozenset[str]] = Memo(65536)
        self._infos: Memo[str, DocumentInfo] = Memo(4096)
        self._words: Memo[str, tuple[frozenset[str], list[str]]] = Memo(64)
        self._sentences: Memo[int, list[StoredSentence]] = Memo(16384)

    def _idf_of(self, df: int) -> float:
        return math.log(1 + (self.chunks - df + 0.5) / (df + 0.5))

    def idfs(self, terms: set[str]) -> dict[str, float]:
        """IDF of each stem over chunks, or of its closest relative in the corpus (korean -> korea)."""
        missing = [t for t in terms if self._idf.get(t) is None]
        if missing:
            found = self.store.stem_frequencies(missing)
            for t in missing:
                if t in found:
                    self._idf.put(t, self._idf_of(found[t]))
                else:
                    kin = self.store.stem_frequencies(self.kin(t) - {t})
                    self._idf.put(t, min((self._idf_of(df) for df in kin.values()), default=self.unseen_idf))
        return {t: self._idf.get(t) or self.unseen_idf for t in terms}

    def idf(self, term: str) -> float:
        return self.idfs({term})[term]

    def kin(self, term: str) -> frozenset[str]:
        """The corpus's stems that are forms of ``term`` (``related``), itself included."""
        found = self._kin.get(term)
        return found if found is not None else self._kin.put(term, self.store.related_stems(term))

    def sentence_terms(self, text: str) -> frozenset[str]:
        return frozenset(self.analyzer.terms(text))

    def infos(self, sources: set[str]) -> dict[str, DocumentInfo]:
        missing = [s for s in sources if self._infos.get(s) is None]
        for source, info in self.store.infos(missing).items():
            self._infos.put(source, info)
        found = {s: self._infos.get(s) for s in sources}
        return {s: info for s, info in found.items() if info is not None}

    def info(self, source: str) -> DocumentInfo:
        return self.infos({source})[source]

    def document_words(self, source: str) -> tuple[frozenset[str], list[str]]:
        """Every word of a document, lowercased: as a set, and sorted (for "does it mention X")."""
        found = self._words.get(source)
        if found is None:
            doc = self.store.document(source)
            words = frozenset(canonical(w) for w in self.analyzer.words(doc.text)) if doc else frozenset()
            found = self._words.put(source, (words, sorted(words)))
        return found

    def mentions(self, source: str, word: str) -> bool:
        """Whether a document has ``word`` or a form of it (``text.related``: korea/korean), found
        by look-ups rather than a scan of the document's words."""
        words, ordered = self.document_words(source)
        if word in words or any(word[:-n] in words for n in (1, 2) if len(word) - n >= 4):
            return True
        if len(word) < 4:
            return False
        for w in ordered[bisect_left(ordered, word):]:  # the words it begins sort together, from here
            if not w.startswith(word):
                return False
            if len(w) - len(word) <= 2:
                return True
        return False

    def refers(self, source: str, name: str, forms: dict[str, list[list[str]]]) -> bool:
        """Whether a document mentions ``name``, or every word of another form of it (``forms``:
        an acronym's long forms, as documents define them)."""
        return self.mentions(source, name) or any(
            all(self.mentions(source, w) for w in form) for form in forms.get(name, ()))

    def chunk_sentences(self, rows: list[int]) -> dict[int, list[StoredSentence]]:
        missing = [r for r in rows if self._sentences.get(r) is None]
        for row, sentences in self.store.chunk_sentences(missing).items():
            self._sentences.put(row, sentences)
        return {r: self._sentences.get(r) or [] for r in rows}

    def sentence_vectors(self, ids: list[int]) -> np.ndarray:
        return self.store.sentence_vectors(ids)

    def admitted(self, filters: Filters | None) -> Admitted | None:
        if filters is None:
            return None
        return self.store.admit(
            filters.source, filters.date_from.isoformat() if filters.date_from else None,
            filters.date_to.isoformat() if filters.date_to else None,
        )

    def dense(self, query: np.ndarray, k: int, admitted: Admitted | None = None) -> Scored:
        """Chunks by the cosine of their best sentence among the ``3k`` nearest sentences."""
        found = self.store.vector_search(query, 3 * k, admitted)
        holders = found.holders if found.holders is not None else self.store.sentence_chunks(found.ids.tolist())
        best: dict[int, float] = {}
        for score, sid in zip(found.scores.tolist(), found.ids.tolist()):
            for chunk_row in holders.get(sid, ()):
                best.setdefault(chunk_row, score)  # results come best first
        ranked = sorted(best.items(), key=lambda item: -item[1])[:k]
        return Scored(np.array([r for r, _ in ranked], np.int64), np.array([s for _, s in ranked], np.float32))

    def keyword(self, question: str, k: int, admitted: Admitted | None = None) -> Scored:
        return self.store.keyword_search(question, k, admitted)


class HybridRetriever:
    def __init__(
        self, embedder: Embedder, metrics: Metrics, candidates: int = 100, dense_weight: float = 0.5,
        keyword_weight: float = 0.5,
    ) -> None:
        self.embedder = embedder
        self.metrics = metrics
        self.candidates = candidates
        self.dense_weight = dense_weight
        self.keyword_weight = keyword_weight
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="keyword")
            return self._executor

    def search(
        self, index: SearchIndex, question: str, query: np.ndarray | Future[np.ndarray], top_k: int,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """``query`` may still be being embedded (a Future): the keyword side runs meanwhile."""
        depth = max(self.candidates, top_k)
        admitted = index.admitted(filters)
        # The keyword side runs beside the question's embedding and the dense search (both
        # searches wait on the store, not on the interpreter).
        keyword_search = self._pool().submit(self._keyword, index, question, depth, admitted)
        with self.metrics.timed("embed"):  # what is left of it once the keyword search is under way
            vector = query.result() if isinstance(query, Future) else query
        with self.metrics.timed("dense"):
            dense, dense_floor = index.dense(vector, depth, admitted).standardized()
        keyword, keyword_floor = keyword_search.result().standardized()
        with self.metrics.timed("fuse"):
            return self._fused(index, dense, dense_floor, keyword, keyword_floor, top_k)

    def _keyword(self, index: SearchIndex, question: str, depth: int, admitted: Admitted | None) -> Scored:
        with self.metrics.timed("keyword"):
            return index.keyword(question, depth, admitted)

    def _fused(self, index: SearchIndex, dense: dict[int, float], dense_floor: float, keyword: dict[int, float],
               keyword_floor: float, top_k: int) -> list[Hit]:
        fused = {
            row: self.dense_weight * dense.get(row, dense_floor) + self.keyword_weight * keyword.get(row, keyword_floor)
            for row in dense.keys() | keyword.keys()
        }
        ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        # Chunks are read in slices of the ranking: most questions need only the first one.
        chunks: dict[int, Chunk] = {}
        hits: list[Hit] = []
        for at, (row, score) in enumerate(ranked):
            if row not in chunks:
                chunks.update(index.store.chunks([r for r, _ in ranked[at : at + 2 * top_k + 10]]))
            chunk = chunks.get(row)
            if chunk is None:  # deleted since the search began
                continue
            # A chunk overlapping a better one repeats its sentences; the slot goes to new text.
            if not any(h.chunk.source == chunk.source and h.chunk.start < chunk.end and chunk.start < h.chunk.end
                       for h in hits):
                hits.append(Hit(chunk, row, score))
                if len(hits) == top_k:
                    break
        return hits
