"""BM25 over postings held as sorted arrays, so that the index can grow by segments.

A segment is immutable: the sorted term ids (64-bit hashes of the stems), an offset per term and
the postings (item ids, term frequencies). The store keeps one large base segment, written at a
checkpoint, plus one small segment per write since. A question reads only the postings of its
own terms in each segment, and document frequencies are counted over live postings at question
time, so the scores are exact BM25 whatever has been added or deleted since the checkpoint.

Tokens and scores are those of bm25s (``method="lucene"``), the library this replaces, so
rankings are unchanged: lowercase, ``\\w\\w+`` words, stop words dropped, Snowball stems;
``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, ``tf / (tf + k1 (1 - b + b dl / avgdl))``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .text import STOPWORDS, ThreadStemmer

_SPLIT = re.compile(r"(?u)\b\w\w+\b")


def term_id(stem: str) -> int:
    """A stable 64-bit id for a stem (the same in every process and on every machine)."""
    return int.from_bytes(hashlib.blake2b(stem.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "little", signed=True)


class Tokenizer:
    """The keyword side's tokens, as bm25s makes them."""

    def __init__(self, stemmer: ThreadStemmer) -> None:
        self.stemmer = stemmer

    def tokens(self, text: str) -> list[str]:
        words = [w for w in _SPLIT.findall(text.lower()) if w not in STOPWORDS]
        return self.stemmer.stemWords(words) if words else []

    def bag(self, text: str) -> tuple[np.ndarray, np.ndarray, int]:
        """Term ids, their frequencies and the token count of one text."""
        counts = Counter(self.tokens(text))
        ids = np.fromiter((term_id(t) for t in counts), np.int64, len(counts))
        tfs = np.fromiter(counts.values(), np.float32, len(counts))
        return ids, tfs, sum(counts.values())


def pack_bag(ids: np.ndarray, tfs: np.ndarray) -> bytes:
    """One item's terms as stored in its row: int64 ids then float32 frequencies."""
    return ids.astype("<i8").tobytes() + tfs.astype("<f4").tobytes()


def unpack_bag(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    n = len(blob) // 12
    return np.frombuffer(blob, "<i8", n), np.frombuffer(blob, "<f4", n, offset=8 * n)


@dataclass(frozen=True)
class Segment:
    terms: np.ndarray  # int64, sorted, unique
    offsets: np.ndarray  # int64, len(terms) + 1
    items: np.ndarray  # int64 item ids, ascending within a term
    tfs: np.ndarray  # float32

    @staticmethod
    def build(items: Sequence[int] | np.ndarray, bags: Sequence[tuple[np.ndarray, np.ndarray]]) -> Segment:
        """A segment from items (ascending ids) and each one's (term ids, frequencies)."""
        sizes = np.fromiter((len(b[0]) for b in bags), np.int64, len(bags))
        if not sizes.sum():
            return Segment(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        terms = np.concatenate([b[0] for b in bags]).astype(np.int64, copy=False)
        tfs = np.concatenate([b[1] for b in bags]).astype(np.float32, copy=False)
        owners = np.repeat(np.asarray(items, np.int64), sizes)
        order = np.argsort(terms, kind="stable")  # stable: item ids stay ascending within a term
        terms, owners, tfs = terms[order], owners[order], tfs[order]
        unique, starts = np.unique(terms, return_index=True)
        offsets = np.append(starts, len(terms)).astype(np.int64)
        return Segment(unique, offsets, owners, tfs)

    @staticmethod
    def merge(segments: Sequence[Segment], live: np.ndarray) -> Segment:
        """One segment holding the live postings of ``segments`` (given in ascending id order)."""
        parts = [s for s in segments if len(s.items)]
        if not parts:
            return Segment.build([], [])
        lengths = [np.diff(s.offsets) for s in parts]
        terms = np.concatenate([np.repeat(s.terms, n) for s, n in zip(parts, lengths)])
        items = np.concatenate([s.items for s in parts])
        tfs = np.concatenate([s.tfs for s in parts])
        keep = live[items]
        terms, items, tfs = terms[keep], items[keep], tfs[keep]
        order = np.argsort(terms, kind="stable")
        terms, items, tfs = terms[order], items[order], tfs[order]
        unique, starts = np.unique(terms, return_index=True)
        return Segment(unique, np.append(starts, len(terms)).astype(np.int64), items, tfs)

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(np.searchsorted(self.terms, term))
        if i == len(self.terms) or self.terms[i] != term:
            return _NO_ITEMS, _NO_TFS
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.items[a:b], self.tfs[a:b]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.terms, self.offsets, self.items, self.tfs))


_NO_ITEMS = np.zeros(0, np.int64)
_NO_TFS = np.zeros(0, np.float32)


@dataclass(frozen=True)
class Field:
    """One BM25 field (chunks, or whole documents): segments plus per-item lengths and liveness,
    indexed by item id. The arrays may be longer than ``size``; ids at or past it do not exist."""

    segments: tuple[Segment, ...]
    lengths: np.ndarray  # float32 token counts
    live: np.ndarray  # bool
    size: int

    def scores(self, terms: Sequence[int], k1: float, b: float) -> np.ndarray:
        """BM25 of every item id below ``size`` (0 for dead items and items without the terms); a
        term repeated in the question counts again, as in bm25s."""
        out = np.zeros(self.size, np.float32)
        live = self.live[: self.size]
        n = int(np.count_nonzero(live))
        if n == 0:
            return out
        avgdl = np.float32(float(np.sum(self.lengths[: self.size], where=live, dtype=np.float64)) / n)
        for term, repeat in Counter(terms).items():
            found = [s.postings(term) for s in self.segments]
            items = np.concatenate([f[0] for f in found])
            if not len(items):
                continue
            tfs = np.concatenate([f[1] for f in found])
            alive = self.live[items]
            items, tfs = items[alive], tfs[alive]
            df = len(items)
            if df == 0:
                continue
            idf = np.float32(np.log(1 + (n - df + 0.5) / (df + 0.5)))
            norm = np.float32(k1) * (np.float32(1 - b) + np.float32(b) * self.lengths[items] / avgdl)
            out[items] += idf * tfs / (norm + tfs) * np.float32(repeat)  # ids are unique within a term
        return out
