"""How well a sentence supports a question or a claim, in one place for both answerers: the
extractive answerer ranks sentences by it, and LLM mode checks each generated sentence with it.

Support is semantic similarity (the cosine of the two embeddings) blended with how much of the
question's informative vocabulary (IDF-weighted stems, any form of each) the sentence holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ..retrieval import SearchIndex
from ..text import Analyzer

# A grid search on SQuAD questions outside every evaluation sample found 0.45-0.55 dense equally
# good; the answerer's decision model (decision.py) reweighs both for answering.
W_DENSE = 0.5
W_LEXICAL = 0.5


Score = TypeVar("Score", float, np.ndarray)

# Words that frame what kind of answer is asked for ("in which year", "what is X called", "what does
# X stand for", "when was X born": a life is written as a span of dates) rather than what is asked
# about the question's names: the answer need not repeat them. From SQuAD's tuning half, where they
# were most of the predicate words that right answers did not hold; and the verbs that ask for what
# was said ("what did Moscow state"), which a report of it seldom repeats ("say" is a stop word).
FRAME_WORDS = frozenset(
    "name names named call called calls mean means meaning stand stands abbreviation acronym title titles "
    "year years date day month time job career profession occupation nationality located location known "
    "term word type kind sort another born birth die died death "
    "state states stated declare declares declared announce announces announced claim claims claimed "
    "describe describes described mention mentions mentioned report reports reported cite cites cited "
    "tell tells told".split())


def support(dense: Score, lexical: Score) -> Score:
    """Of one sentence, or of many at once (arrays)."""
    return W_DENSE * dense + W_LEXICAL * lexical


@dataclass(frozen=True)
class Vocabulary:
    """A question's (or a claim's) stems with their IDF weights, and the corpus's forms of each."""

    weights: dict[str, float]
    kin: dict[str, frozenset[str]]
    specific: frozenset[str]  # stems rarer than the corpus's topic words
    # Specific stems that are not names: what is asked about them ("impose sanctions", "veto").
    predicate: frozenset[str]
    # Stems of its FRAME_WORDS: any sentence covers them (an answer need not repeat "year" or "called").
    frame: frozenset[str]

    @classmethod
    def of(cls, text: str, index: SearchIndex, analyzer: Analyzer) -> Vocabulary:
        weights = index.idfs(set(analyzer.terms(text)))
        specific = frozenset(t for t, w in weights.items() if w > index.common_idf)
        names = {t for n in analyzer.names(text) for t in analyzer.terms(n)}
        frame = frozenset(analyzer.terms(" ".join(w for w in analyzer.words(text) if w in FRAME_WORDS)))
        return cls(weights, {t: index.kin(t) for t in weights}, specific, specific - names, frame)

    def coverage(self, terms: frozenset[str]) -> tuple[float, bool]:
        """The share of the IDF weight a sentence's stems cover, and whether it holds a specific one."""
        matched = [t for t in self.weights if not self.kin[t].isdisjoint(terms)]
        return self._share(matched, self.weights), not self.specific.isdisjoint(matched)

    def predicate_coverage(self, terms: frozenset[str]) -> float:
        """The share of the predicate's IDF weight a sentence's stems cover (1.0: the question has
        none, only names)."""
        return self.predicate_share([t for t in self.predicate if not self.kin[t].isdisjoint(terms)])

    def predicate_share(self, matched: Iterable[str]) -> float:
        """The share of the predicate's IDF weight ``matched`` (its stems) and its frame carry (1.0: no
        predicate)."""
        if not self.predicate:
            return 1.0
        said = set(matched) | self.frame
        return self._share([t for t in self.predicate if t in said], self.predicate)

    def _share(self, matched: list[str], among: Iterable[str]) -> float:
        return sum(self.weights[t] for t in matched) / (sum(self.weights[t] for t in among) or 1.0)
