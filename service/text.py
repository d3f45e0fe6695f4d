"""Word-level text analysis shared by keyword search and answer selection."""

from __future__ import annotations

import re
import threading

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

# Beyond English function words: the words questions use to ask, which say nothing about the
# answer ("how many", "what kind", "according to", "what did X say about").
STOPWORDS = frozenset(STOPWORDS_EN) | frozenset(
    "what which who whom whose when where why how does did do is are was were be been say says said "
    "about according many much kind kinds type sort".split()
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
# Periods inside acronyms (U.N. -> UN) and possessive 's are not word material.
_ACRONYM_DOTS = re.compile(r"\b((?:[A-Za-z]\.){2,})")
_POSSESSIVE = re.compile(r"'s\b", re.I)
_WORD = re.compile(r"[A-Za-z0-9]+")
# Months however a document abbreviates them (Sept. 26 = September 26 = 26 September).
_MONTHS = "january february march april may june july august september october november december".split()
MONTH_FORMS = {**{m[:3]: m for m in _MONTHS}, "sept": "september", **{m: m for m in _MONTHS}}


def canonical(word: str) -> str:
    """A lowercased word in the one form names are compared in (month abbreviations spelt out)."""
    return MONTH_FORMS.get(word, word)


def normalize(text: str) -> str:
    text = text.translate(_APOSTROPHES)
    text = _ACRONYM_DOTS.sub(lambda m: m.group(1).replace(".", ""), text)
    return _POSSESSIVE.sub("", text)


class ThreadStemmer:
    """An English Snowball stemmer per thread: PyStemmer's stemmers must not be shared between
    threads, and questions are answered on several at once."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _stemmer(self) -> Stemmer.Stemmer:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = Stemmer.Stemmer("english")
        return stemmer

    # PyStemmer's method names, which bm25s's tokenizer calls.
    def stemWord(self, word: str) -> str:  # noqa: N802
        return self._stemmer().stemWord(word)

    def stemWords(self, words: list[str]) -> list[str]:  # noqa: N802
        return self._stemmer().stemWords(words)


class Analyzer:
    """Lowercased, stop-word-free, Snowball-stemmed terms (as bm25s indexes them)."""

    def __init__(self) -> None:
        self.stemmer = ThreadStemmer()

    def words(self, text: str) -> list[str]:
        return [w.lower() for w in _WORD.findall(normalize(text))]

    def terms(self, text: str) -> list[str]:
        words = [w for w in self.words(text) if w not in STOPWORDS]
        return self.stemmer.stemWords(words)

    def names(self, question: str) -> list[str]:
        """Capitalized words, acronyms and numbers of a question that are not question words,
        lowercased: the things a question is about, which an answering document must mention."""
        found = []
        for i, word in enumerate(_WORD.findall(normalize(question))):
            # A question's first word is capitalized anyway; count it only if it is an acronym.
            if i == 0 and not (word.isupper() and len(word) > 1):
                continue
            if (word[0].isupper() or word.isdigit()) and word.lower() not in STOPWORDS:
                found.append(canonical(word.lower()))
        return found


def related(a: str, b: str) -> bool:
    """Whether two stems are forms of one word (korea/korean, militari/militarili): equal, or one
    (4+ letters) a prefix of the other longer by at most two letters."""
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 4 and len(long_) - len(short) <= 2 and long_.startswith(short)
