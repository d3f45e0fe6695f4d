"""The default answerer: quote the retrieved sentences that answer the question, or refuse.

Every sentence of the retrieved passages is a candidate, described by the features of
``decision.CANDIDATE_FEATURES``: how close it is to the question in meaning and in informative
vocabulary (``support.py``), where retrieval ranked its passage, whether it holds the kind of
answer asked for ("when" -> a date, "how many" -> a quantity), and whether its document mentions
what the question names (a name it spells differently, or only by another name, counts by
meaning). A model trained on public data (``decision.py``) picks the sentence and says how
likely the answer is right: that is the answer's ``confidence``, and below the threshold the
question is refused. A question asking for a quantity or a date is also refused when the chosen
sentence holds none: the documents answer it only in part. Under the rules, so is one whose best
sentence says nothing of what the question asks about its names (a near miss: the names and the
topic are there, the event is not).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import aliases
from ..models import Answer, Citation
from ..retrieval import Memo, Retrieval, SearchIndex
from ..text import MONTH_FORMS, STOPWORDS, Analyzer, canonical, related
from .decision import CANDIDATE_FEATURES, DecisionModel, sigmoid
from .support import Vocabulary, support

NOT_COVERED = "The documents do not cover this question."
# The hand-set policy's constants: a grid search on SQuAD questions outside the benchmark sample,
# constrained to pass the project's own gold questions (tests/data/gold_qa.jsonl) and the seed set.
# 0.38 refuses more of the SQuAD tuning half's unanswerable questions (0.873 against 0.840, as
# many answered) but puts the flagship answer's second sentence (0.365) on its edge, where adding
# unrelated documents flips it: kept at 0.36.
RULES_THRESHOLD = 0.36  # least score of a sentence that answers
RULES_RANK = 0.04  # nudge toward the passages retrieval ranked first (/ rank)
RULES_TYPE = 0.05  # nudge toward sentences holding the expected answer type
RULES_SEMANTIC_ALONE = 0.6  # cosine at which a sentence answers without a specific shared term
RULES_MARGIN = 0.08  # a runner-up within this of the best is quoted too
# Questions answered with a name: who, whom, whose, where, which/what + a noun.
_WANTS_NAME = re.compile(r"\b(?:who|whom|whose|where|which|what (?:country|city|team|company|organi[sz]ation|"
                         r"group|state|name|person|place|river|university|party))\b", re.I)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{2,}\b")
# A name stands in for a question's name the document lacks (Pyongyang ~ North Korea) when its
# cosine reaches STAND_IN and leads every other name's by STAND_IN_LEAD: set from capital/country
# pairs (0.72-0.83 with leads of 0.15 and more) against neighbouring countries (0.68-0.75).
STAND_IN = 0.7
STAND_IN_LEAD = 0.1
# A word of the question's predicate is said in other words by a sentence's word this near in
# meaning: synonyms in context run 0.59-0.75 (stop ~ cease, drones ~ unmanned, soldiers ~ military),
# words of near-miss questions against their sentences 0.52 and under (impose ~ condemned).
PREDICATE_NEAR = 0.55
# A sentence's own words (lowercase: not names), for matching a question's predicate by meaning.
_LOWER_WORD = re.compile(r"\b[a-z][a-z-]{2,}\b")
# Names of a document's retrieved sentences compared with a question's missing name, at most.
MAX_PHRASES = 24
# A capitalised phrase of a sentence ("North Korea", "Pyongyang"), for matching names by meaning.
_PHRASE = re.compile(r"\b[A-Z][\w’'-]*(?:\s+(?:of\s+|the\s+)?[A-Z][\w’'-]*)*")

_ANAPHOR = re.compile(r"\W*(?:this|these|that|those|it|its|they|their|he|his|she|her|such)\b", re.I)
_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
_MONTHS = "|".join(sorted(MONTH_FORMS, key=len, reverse=True))  # longest first: "september" before "sep"
_DATE = re.compile(
    rf"\b(?:(?:{_MONTHS})\.?\s+\d{{1,2}}|\d{{4}}|{'|'.join(sorted(_WEEKDAYS))}|"
    rf"yesterday|today|(?:last|next)\s+(?:week|month|year))\b",
    re.I,
)
_QUANTITY = re.compile(
    r"\b(?:\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"(?:thir|four|fif|six|seven|eigh|nine)teen|(?:twen|thir|for|fif|six|seven|eigh|nine)ty|dozens?|scores?|"
    r"hundreds?|thousands?|millions?|billions?|trillions?|several|many|few|couple|half|double|twice)\b",
    re.I,
)


_PERCENT = re.compile(r"\d[\d,.]*\s*(?:%|per\s*cent|percent)|\b(?:half|a third|a quarter|majority|most)\b", re.I)
# A question about what is to come ("the next", "upcoming") is answered only by a sentence
# that speaks of the future: a past event of the same kind is a near miss, not an answer.
_ASKS_FUTURE = re.compile(r"\b(?:next|upcoming|forthcoming|going to|future)\b", re.I)
_FUTURE = r"\b(?:will|shall|next|upcoming|planned|plans?|scheduled|going to|to be held|future|forthcoming)\b"


def _expected_type(question: str) -> re.Pattern[str] | None:
    """What the answer should contain: for "how many troops", a quantity shortly before "troop"
    (so "thousands of combat troops" beats "millions of rounds ... troops"); for "when", a date;
    for "what percentage", a share; for a question about the future, a sentence about it."""
    q = question.lower()
    kind: str | None = None
    if m := re.search(r"\bhow (?:many|much)\s+([a-z]{3,})", q):
        stem = re.escape(m.group(1)[:4])
        kind = rf"(?:{_QUANTITY.pattern})(?:\W+\w+){{0,3}}?\W+{stem}"
    elif re.search(r"\b(?:percentage|proportion|per ?cent|what share|what fraction)\b", q):
        kind = _PERCENT.pattern
    elif re.search(r"\bhow (?:many|much|large|big|far|old)\b|\b(?:what|which) (?:is|was|are|were) the "
                   r"(?:population|number|amount|cost|price|size|total|value)\b", q):
        kind = _QUANTITY.pattern
    elif re.search(r"\b(?:when|what (?:day|date|year|month|time))\b", q):
        kind = _DATE.pattern
    if _ASKS_FUTURE.search(q):
        # Both at once when both are asked ("when will ..."): a lookahead for the future anywhere.
        kind = rf"^(?=[\s\S]*{_FUTURE})[\s\S]*?" + (f"(?:{kind})" if kind else "")
    return re.compile(kind, re.I) if kind else None


@dataclass(frozen=True)
class Candidate:
    source: str
    start: int
    end: int
    text: str
    passage_rank: int
    features: np.ndarray  # decision.CANDIDATE_FEATURES
    logit: float = 0.0

    def feature(self, name: str) -> float:
        return float(self.features[CANDIDATE_FEATURES.index(name)])


@dataclass(frozen=True)
class Decision:
    chosen: list[Candidate]  # the sentences quoted, best first (empty: nothing to quote)
    confidence: float | None  # how likely the best sentence answers (None: the rules refused)
    answerable: bool


Embed = Callable[[list[str]], np.ndarray]


class ExtractiveAnswerer:
    """``learned``: the decision model answers or refuses by its calibrated confidence; otherwise the
    hand-set rules do, and a model calibrated on what they answer gives their answers' confidence."""

    def __init__(self, analyzer: Analyzer, model: DecisionModel, learned: bool, threshold: float | None,
                 max_sentences: int, embed: Embed) -> None:
        self.analyzer = analyzer
        self.model = model
        self.learned = learned
        default = model.threshold if learned else RULES_THRESHOLD
        self.threshold = default if threshold is None else threshold
        self.max_sentences = max_sentences
        self.embed = embed
        self._vectors: Memo[str, np.ndarray] = Memo(8192)

    def candidates(self, question: str, retrieval: Retrieval) -> list[Candidate]:
        """Every sentence of the retrieved passages with its features, best first by the model."""
        index, hits, scores = retrieval.index, retrieval.hits, retrieval.scores()
        vocabulary = Vocabulary.of(question, index, self.analyzer)
        held = index.chunk_sentences([h.row for h in hits])
        forms = self._forms(index, {h.chunk.source for h in hits})
        other = _OtherForms.of(forms, self.analyzer)
        # sentence id -> (passage rank, passage score, text, passage coverage, neighbour coverage, its own
        # coverage, its stems with the other forms of the names it uses, its own stems)
        found: dict[int, tuple[int, float, str, float, float, tuple[float, bool], frozenset[str], frozenset[str]]] = {}
        sentences = {}
        for rank, (hit, score) in enumerate(zip(hits, scores), start=1):
            inside = held.get(hit.row, [])
            texts = [hit.chunk.span(x.start, x.end) for x in inside]
            own = [index.sentence_terms(t) for t in texts]
            stems = [other.add(t) for t in own]
            # "This increases the threat": a sentence opening on a word that points back is about what the
            # sentence before it says (on SQuAD's tuning half, +0.015 answered correctly; its names alone
            # gave +0.008, half its terms +0.009).
            stems = [t | stems[i - 1] if i and _ANAPHOR.match(texts[i]) else t for i, t in enumerate(stems)]
            covered = [vocabulary.coverage(t) for t in stems]
            passage = vocabulary.coverage(other.add(index.sentence_terms(hit.chunk.text)))[0]
            for i, x in enumerate(inside):
                if x.id not in found:
                    neighbour = max((c[0] for c in covered[max(0, i - 1) : i] + covered[i + 1 : i + 2]), default=0.0)
                    found[x.id] = (rank, score, texts[i], passage, neighbour, covered[i], stems[i], own[i])
                    sentences[x.id] = x
        if not found:
            return []
        rows = list(found)
        dense = index.sentence_vectors(rows) @ retrieval.query.astype(np.float32)
        names = list(dict.fromkeys(self.analyzer.names(question)))
        name_terms = {n: frozenset(self.analyzer.terms(n)) for n in names}
        expected = _expected_type(question)
        coverage = [found[r][5] for r in rows]
        best_dense, best_lexical = float(dense.max()), max(c[0] for c in coverage)
        asked = {canonical(w) for w in self.analyzer.words(question)}
        wants_name = bool(_WANTS_NAME.search(question))
        question_terms = math.log(len(vocabulary.weights) + 1)
        out = []
        # Per document, not per sentence: a name a document lacks costs a scan of its words.
        absent = {source: [n for n in names if not index.refers(source, n, forms)]
                  for source in {x.source for x in sentences.values()}}
        in_doc = {source: _share([n not in a for n in names]) for source, a in absent.items()}
        for row, cos, (lexical, specific) in zip(rows, dense.tolist(), coverage):
            x, (rank, score, text, passage, neighbour, _, terms, own_terms) = sentences[row], found[row]
            words = {canonical(w) for w in self.analyzer.words(text)}
            # Its own words only: an acronym's long form ("NATO": treaty) names, it does not predicate.
            predicate = vocabulary.predicate_coverage(own_terms)
            novel_names = {m.lower() for m in _CAPITALISED.findall(text)} - asked
            features = np.array([
                cos, lexical, 1.0 / rank, float(expected is not None),
                float(expected is not None and bool(expected.search(text))), float(specific),
                in_doc[x.source], _share([n in words or any(related(n, w) for w in words)
                                           or not terms.isdisjoint(name_terms[n]) for n in names]),
                in_doc[x.source], best_dense - cos, best_lexical - lexical, math.log(len(text) + 1),
                score, passage, neighbour, float(wants_name and bool(novel_names)),
                len(words - asked) / max(1, len(words)), question_terms, predicate, predicate,
            ])
            out.append(Candidate(x.source, x.start, x.end, text, rank, features))
        table = np.stack([c.features for c in out])
        # Names and words matched by meaning cost embedding calls: made only for documents lacking one
        # of the question's names (under the rules only where it could change the answer, see _scope),
        # and for the sentence the rules would quote first when it holds none of the question's predicate.
        threshold = RULES_THRESHOLD if self.learned else self.threshold
        sentence_stems = [found[r][6] for r in rows]
        replaceable = {source: _replaceable(a) for source, a in absent.items()}  # per document, once
        scope = (np.ones(len(out), bool) if self.learned else
                 self._scope(out, table, threshold, [replaceable[c.source] for c in out],
                             sentence_stems, name_terms, vocabulary))
        in_scope = {c.source for c, ok in zip(out, scope) if ok}
        near, stood = self._names_near(names, {s: (absent[s], replaceable[s]) for s in in_scope},
                                       [(c.source, c.text) for c, ok in zip(out, scope) if ok])
        for c, row, t in zip(out, table, sentence_stems):
            if c.source in near or row[_F["names_doc"]] == 1.0:
                row[_F["names_near"]] = near.get(c.source, 1.0)
            # A sentence using the name that stands in says the question's name ("North Korea" for Pyongyang).
            if said := [n for n, phrase in stood.get(c.source, {}).items() if _uses(c.text, phrase, self.analyzer)]:
                t = t.union(*(name_terms[n] for n in said))
                row[_F["lexical"]], specific = vocabulary.coverage(t)
                row[_F["specific"]] = float(specific)
                row[_F["names_sentence"]] = min(1.0, row[_F["names_sentence"]] + len(said) / len(names))
        table[:, _F["lexical_gap"]] = table[:, _F["lexical"]].max() - table[:, _F["lexical"]]
        supported = rules_scores(table)
        first = rules_order(table, supported, threshold, _tiebreak(out))[:1]
        if first and table[first[0], _F["predicate"]] == 0.0:
            table[first[0], _F["predicate_near"]] = self._predicate_near(question, vocabulary, out[first[0]].text)
        logits = self.model.candidate.logit(table)
        ranked = [Candidate(c.source, c.start, c.end, c.text, c.passage_rank, row, float(z))
                  for c, row, z in zip(out, table, logits)]
        ranked.sort(key=lambda c: (-c.logit, c.passage_rank, c.source, c.start))
        return ranked

    @staticmethod
    def _scope(out: list[Candidate], table: np.ndarray, threshold: float, replaceable: list[list[str]],
               stems: list[frozenset[str]], name_terms: dict[str, frozenset[str]], vocabulary: Vocabulary,
               ) -> np.ndarray:
        """Under the rules, the sentences whose documents get names matched by meaning, their names
        compared: every sentence of a document with one over the threshold; and, when none could
        answer otherwise, of the one document whose sentence would score best were the names it lacks
        (``replaceable``, per sentence) there, the sentences that then could."""
        supported = rules_scores(table)
        docs = {c.source for c, score in zip(out, supported) if score >= threshold}
        scope = np.array([c.source in docs for c in out])
        if rules_allow(table, supported, threshold).any():
            return scope
        whole = table.copy()
        whole[:, _F["lexical"]] = [vocabulary.coverage(t.union(*(name_terms[n] for n in r)))[0] if r
                                   else f[_F["lexical"]] for t, r, f in zip(stems, replaceable, table)]
        potential = rules_scores(whole)
        widened = [out[i].source for i in np.argsort(-potential, kind="stable")
                   if potential[i] >= threshold and replaceable[i] and out[i].source not in docs][:1]
        return scope | np.array([c.source in widened and p >= threshold for c, p in zip(out, potential)])

    def _forms(self, index: SearchIndex, sources: set[str]) -> dict[str, list[list[str]]]:
        """The long forms of the acronyms the retrieved documents define, as words: "prc" ->
        [["people", "republic", "china"]]."""
        forms: dict[str, list[list[str]]] = {}
        for info in index.infos(sources).values():
            for short, long_ in aliases.decode(info.metadata.get("aliases", "")).items():
                words = [canonical(w) for w in self.analyzer.words(long_) if w not in aliases.SMALL]
                forms.setdefault(short.lower(), []).append(words)
        return forms

    def _names_near(self, names: list[str], missing: dict[str, tuple[list[str], list[str]]],
                    sentences: list[tuple[str, str]]) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
        """Per document of ``missing`` (source -> the question's names it lacks, and those of them
        another may stand in for): the share of the names it accounts for, a missing name counting
        when a name of the document's retrieved ``sentences`` stands in for it (Pyongyang ~ North
        Korea); and which name stands in for which. Documents that mention every name, or lack only
        numbers and dates, are absent (their share is as counted)."""
        missing = {s: m for s, m in missing.items() if m[1]}
        if not missing:
            return {}, {}
        wanted = sorted({n for _, standable in missing.values() for n in standable})
        # In retrieval's order, so the cap keeps the names of the best passages.
        phrases = {s: list(dict.fromkeys(p for src, text in sentences if src == s for p in _PHRASE.findall(text)))
                   [:MAX_PHRASES] for s in missing}
        pool = sorted({p for ps in phrases.values() for p in ps})
        of = self._vectors_of(wanted + pool)
        words = {p: {canonical(w) for w in self.analyzer.words(p)} for p in pool}
        share, stood = {}, {}
        for source, (absent, standable) in missing.items():
            found = {n: p for n in standable
                     if (p := self._stand_in([(float(of[n] @ of[p]), p) for p in phrases[source]], words))}
            share[source] = (len(names) - len(absent) + len(found)) / len(names)
            stood[source] = found
        return share, stood

    def _predicate_near(self, question: str, vocabulary: Vocabulary, text: str) -> float:
        """The share of the question's predicate a sentence says in other words: a word of the
        predicate counts when one of the sentence's own words (lowercase: not a name) is at least
        PREDICATE_NEAR near it in meaning ("soldiers" ~ "troops", "stop" ~ "cease")."""
        asked = {w: stems[0] for w in dict.fromkeys(self.analyzer.words(question))
                 if (stems := self.analyzer.terms(w)) and stems[0] in vocabulary.predicate - vocabulary.frame}
        own = [w for w in dict.fromkeys(_LOWER_WORD.findall(text)) if w not in STOPWORDS]
        if not asked or not own:
            return vocabulary.predicate_share(())
        of = self._vectors_of(list(asked) + own)
        near = (np.stack([of[w] for w in asked]) @ np.stack([of[w] for w in own]).T).max(axis=1)
        return vocabulary.predicate_share([t for t, cos in zip(asked.values(), near) if cos >= PREDICATE_NEAR])

    @staticmethod
    def _stand_in(scored: list[tuple[float, str]], words: dict[str, set[str]]) -> str | None:
        """The name that stands in for a missing one, if any: near in meaning, and clearly nearer
        than any other name (a capital and its country, Tokyo ~ Japan 0.76 against 0.56; not France,
        as near to Europe 0.71 as to Russia 0.68). Forms of the nearest ("North Korea's", "Russian")
        are not others."""
        if not scored:
            return None
        best, name = max(scored)
        rivals = [c for c, p in scored if not _same_name(words[p], words[name])]
        return name if best >= STAND_IN and best - max(rivals, default=0.0) >= STAND_IN_LEAD else None

    def _vectors_of(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Names and phrases embedded once: the same documents' names recur from question to question."""
        known = {t: v for t in texts if (v := self._vectors.get(t)) is not None}
        missing = [t for t in texts if t not in known]
        if missing:
            known.update((t, self._vectors.put(t, v)) for t, v in zip(missing, self.embed(missing)))
        return known

    def decide(self, question: str, retrieval: Retrieval) -> Decision:
        ranked = self.candidates(question, retrieval)
        if not ranked:
            return Decision([], 0.0 if self.learned else None, False)
        top = retrieval.scores()[0]
        return self._learned(ranked, top) if self.learned else self._rules(ranked, top)

    def _confidence(self, ranked: list[Candidate], best: Candidate, top: float) -> float:
        """The answer model's probability that ``best`` answers the question."""
        runner_up = max((c.logit for c in ranked if c is not best), default=best.logit - 10.0)
        row = answer_row(best.features, best.logit, best.logit - runner_up, top)
        return float(sigmoid(self.model.answer.logit(row))[0])

    def _learned(self, ranked: list[Candidate], top: float) -> Decision:
        best = ranked[0]
        confidence = self._confidence(ranked, best, top)
        chosen = ranked[: quoted(np.array([c.logit for c in ranked]), self.model.runner_up, self.max_sentences)]
        return Decision(chosen, confidence, confidence >= self.threshold and not _partial(chosen))

    def _rules(self, ranked: list[Candidate], top: float) -> Decision:
        """The hand-set policy: the support score with small nudges toward the first passages and
        the expected answer type; a sentence may answer only if it reaches the threshold, shares a
        specific term with the question (or is close in meaning on its own), and its document
        accounts for every name the question uses (by any form, or a name standing in for it). A
        runner-up nearly as good is quoted too."""

        features = np.stack([c.features for c in ranked])
        picked, scores = rules_choice(features, self.threshold, self.max_sentences, _tiebreak(ranked))
        if not picked:
            return Decision([], None, False)
        chosen = [ranked[i] for i in picked]
        if _partial(chosen):
            return Decision(chosen, None, False)
        row = rules_row(features, scores, picked[0], top)
        return Decision(chosen, float(sigmoid(self.model.rules_answer.logit(row))[0]), True)

    def answer(self, question: str, found: Retrieval) -> Answer:
        """The quoted answer, or a refusal (no citations)."""
        decision = self.decide(question, found)
        confidence = None if decision.confidence is None else round(decision.confidence, 4)
        if not decision.answerable:
            return Answer(question=question, answer=NOT_COVERED, answerable=False, citations=[],
                          passages=found.passages(), confidence=confidence)
        citations = []
        parts = []
        docs = found.index.infos({c.source for c in decision.chosen})
        for n, c in enumerate(decision.chosen, start=1):
            doc = docs[c.source]
            citations.append(Citation(id=n, source=c.source, title=doc.title, date=doc.date, quote=c.text,
                                      start=c.start, end=c.end, page=doc.page_at(c.start)))
            parts.append(f"{c.text} [{n}]")
        return Answer(question=question, answer=" ".join(parts), answerable=True, citations=citations,
                      passages=found.passages(), confidence=confidence)


_F = {name: i for i, name in enumerate(CANDIDATE_FEATURES)}


def answer_row(features: np.ndarray, logit: float, margin: float, top_score: float) -> np.ndarray:
    """What the confidence model reads (decision.ANSWER_FEATURES) of a chosen sentence: its
    features, its logit and margin over the runner-up, and retrieval's first score."""
    f = features
    return np.array([logit, margin, f[_F["names_doc"]], f[_F["names_near"]],
                     float(f[_F["type_expected"]] and not f[_F["type_found"]]), f[_F["dense"]], f[_F["lexical"]],
                     f[_F["passage_score"]], top_score])


def quoted(logits: np.ndarray, runner_up: float, max_sentences: int) -> int:
    """How many candidates (logits best first) the learned decision quotes: the best, and each
    next one at least ``runner_up`` times as likely as the best."""
    probabilities = sigmoid(np.asarray(logits[:max_sentences], float))
    n = 1
    while n < len(probabilities) and probabilities[n] >= runner_up * probabilities[0]:
        n += 1
    return n


def rules_choice(features: np.ndarray, threshold: float, max_sentences: int,
                 tiebreak: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
    """The rows the rules quote, best first (empty: none may answer), and every row's score. A
    runner-up within RULES_MARGIN of the best is quoted too; equal scores go by ``tiebreak``
    (default: row order). When the best says nothing of what the question asks about its names
    (its predicate, in any words), the question is refused rather than answered by the next best:
    that a sentence further down holds the word is no sign it answers."""
    f = features
    scores = rules_scores(f)
    order = rules_order(f, scores, threshold, tiebreak)
    if not order or f[order[0], _F["predicate_near"]] == 0:
        return [], scores
    best = order[0]
    chosen = [best] + [i for i in order[1:max_sentences] if scores[i] >= scores[best] - RULES_MARGIN]
    if f[best, _F["type_expected"]] and not f[chosen, _F["type_found"]].any() and max_sentences > 1:
        # Asked "how many", the best says what happened but not how many: a sentence holding the number
        # that says as much of what is asked tells the rest ("thousands of combat troops deployed").
        typed = [i for i in order if f[i, _F["type_found"]] and f[i, _F["predicate_near"]] >= f[best, _F["predicate_near"]]]
        chosen = [best, typed[0]] if typed else chosen
    return chosen, scores


def rules_order(features: np.ndarray, scores: np.ndarray, threshold: float,
                tiebreak: np.ndarray | None = None) -> list[int]:
    """The rows the rules let answer, best first; equal scores go by ``tiebreak`` (default: row order)."""
    allowed = rules_allow(features, scores, threshold)
    secondary = np.arange(len(scores)) if tiebreak is None else tiebreak
    return [int(i) for i in np.lexsort((secondary, -scores)) if allowed[i]]


def _tiebreak(candidates: list[Candidate]) -> np.ndarray:
    """Each candidate's place among equal scores: the first passages first, then document order."""
    order = sorted(range(len(candidates)), key=lambda i: (candidates[i].passage_rank, candidates[i].source,
                                                          candidates[i].start))
    return np.argsort(order)


def rules_row(features: np.ndarray, scores: np.ndarray, best: int, top_score: float) -> np.ndarray:
    """What the rules' confidence model reads of their chosen sentence (row ``best``)."""
    runner_up = max((float(v) for i, v in enumerate(scores) if i != best), default=float(scores[best]) - 1.0)
    return answer_row(features[best], float(scores[best]), float(scores[best]) - runner_up, top_score)


def rules_scores(features: np.ndarray) -> np.ndarray:
    """The rules' score of each candidate (rows of features)."""
    f = features
    return (support(f[:, _F["dense"]], f[:, _F["lexical"]]) + RULES_RANK * f[:, _F["inv_rank"]]
            + RULES_TYPE * f[:, _F["type_found"]])


def rules_allow(features: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which candidates the rules let answer: over the threshold, their document accounting for the
    question's names, sharing a specific term or close in meaning on their own."""
    f = features
    return ((scores >= threshold) & (f[:, _F["names_near"]] == 1.0)
            & ((f[:, _F["specific"]] > 0) | (f[:, _F["dense"]] >= RULES_SEMANTIC_ALONE)))


def partial(features: np.ndarray) -> bool:
    """Asked for a quantity or a date that none of these sentences (rows, the first the best)
    holds: answered only in part."""
    return bool(features[0, _F["type_expected"]]) and not features[:, _F["type_found"]].any()


def _partial(chosen: list[Candidate]) -> bool:
    return partial(np.stack([c.features for c in chosen]))


@dataclass(frozen=True)
class _OtherForms:
    """The acronyms the retrieved documents define, as stems: a sentence that uses one form of a
    name holds the other too ("PRC" holds people, republic, china; those three hold "prc")."""

    long: dict[str, list[frozenset[str]]]

    @classmethod
    def of(cls, forms: dict[str, list[list[str]]], analyzer: Analyzer) -> _OtherForms:
        return cls({short: [frozenset(analyzer.terms(" ".join(f))) for f in fs] for short, fs in forms.items()})

    def add(self, terms: frozenset[str]) -> frozenset[str]:
        extra: set[str] = set()
        for short, longs in self.long.items():
            for form in longs:
                if short in terms:
                    extra |= form
                elif form and form <= terms:
                    extra.add(short)
        return terms | extra if extra else terms


def _replaceable(names: list[str]) -> list[str]:
    """The names another may stand in for: not numbers or dates (2016 is not 2015, nor September
    October, however near their vectors)."""
    return [n for n in names if not n.isdigit() and n not in MONTH_FORMS and n not in _WEEKDAYS]


def _uses(text: str, name: str, analyzer: Analyzer) -> bool:
    """Whether a sentence uses a name, in any of its forms ("North Korea’s" for "North Korea")."""
    wanted = {canonical(w) for w in analyzer.words(name)}
    return any(_same_name({canonical(w) for w in analyzer.words(p)}, wanted) for p in _PHRASE.findall(text))


def _same_name(a: set[str], b: set[str]) -> bool:
    """Whether two names are forms of one ("North Korea" and "North Korea's", "Russia" and "Russian"):
    every word of the shorter is a form of a word of the longer."""
    short, long_ = sorted((a, b), key=len)
    return bool(short) and all(any(related(w, v) for v in long_) for w in short)


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 1.0
