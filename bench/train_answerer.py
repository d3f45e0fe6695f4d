"""Train the extractive answerer's decision model (service/answering/decision.py) on public data,
and report it on data it never saw.

    python -m bench.train_answerer            # train on the tuning half, write the model, report
    python -m bench.train_answerer --report   # report the model as it is, train nothing

Data: SQuAD v1.1 dev as an open corpus with questions it cannot answer. Its 48 articles, sorted
by title, are split in two halves: the 24 at odd positions (1, 3, 5, ... counting from 0) tune
and train; the 24 at even positions are for reporting only. Within a half, 12 articles are
indexed (one document per paragraph) and 12 held out: a question from an indexed article has a
gold span to find; a question from a held-out article must be refused. Each half is used both
ways round (split A, split B), so every article is once indexed and once held out. Near misses
too: one paragraph in ten of the indexed articles is left out of the index, and its questions
(those whose answer no indexed paragraph of the article holds) must be refused, though their
article's names and topic are all there.

Training: every sentence the answerer considers for a question is a row (label: it holds a gold
span); a logistic model over its features picks the sentence. A second logistic model, over the
chosen sentence's features (label: the answer is right), gives the confidence. The refusal
threshold and the runner-up rule are then chosen on the tuning half alone.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from service.answering.decision import ANSWER_FEATURES, CANDIDATE_FEATURES, DecisionModel, Logistic, Trees, sigmoid
from service.answering.extractive import RULES_THRESHOLD, answer_row, partial, quoted, rules_choice, rules_row
from service.evaluation import calibration

from .datasets import BENCH_DIR, _need
from .metrics import contains_answer
from .quality import DEFAULT_CACHE
from .systems import Footnote, workspace

SQUAD = BENCH_DIR / "squad-v1.1" / "dev-v1.1.json.zip"
QUESTIONS_PER_SIDE = 400  # answerable and unanswerable questions sampled per split (and half as many near misses)
NEAR_MISS_SHARE = 0.1  # of an indexed article's paragraphs, left out for near misses
TOP_K = 5
RULES_L2_GRID = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0)


@dataclass(frozen=True)
class Question:
    text: str
    answers: tuple[str, ...]  # empty: its paragraph is not indexed, so it must be refused
    near: bool = False  # its article is indexed, all but its paragraph: a near miss


@dataclass(frozen=True)
class Split:
    name: str
    documents: dict[str, str]
    questions: list[Question]


def halves() -> tuple[list[dict], list[dict]]:
    with zipfile.ZipFile(_need(SQUAD)) as zf:
        articles = sorted(json.loads(zf.read("dev-v1.1.json"))["data"], key=lambda a: a["title"])
    return articles[1::2], articles[0::2]  # (tuning: odd positions, evaluation: even positions)


def splits(articles: list[dict], half: str, per_side: int) -> list[Split]:
    out = []
    for name, indexed, held in ((f"{half} A", articles[0::2], articles[1::2]),
                                (f"{half} B", articles[1::2], articles[0::2])):
        rng = random.Random(f"{name}")
        documents: dict[str, str] = {}
        answerable, near = [], []
        for a in indexed:
            paragraphs = a["paragraphs"]
            left_out = set(random.Random(f"{name} {a['title']}").sample(
                range(len(paragraphs)), max(1, round(NEAR_MISS_SHARE * len(paragraphs)))))
            kept = [p["context"] for i, p in enumerate(paragraphs) if i not in left_out]
            for i, p in enumerate(paragraphs):
                if i not in left_out:
                    documents[f"{a['title']}-{i:03d}"] = p["context"]
                for qa in p["qas"]:
                    answers = tuple(dict.fromkeys(x["text"] for x in qa["answers"]))
                    if i not in left_out:
                        answerable.append(Question(qa["question"], answers))
                    elif not any(contains_answer(text, answers) for text in kept):  # else it is answered elsewhere
                        near.append(Question(qa["question"], (), near=True))
        refused = [Question(qa["question"], ()) for a in held for p in a["paragraphs"] for qa in p["qas"]]
        questions = (rng.sample(answerable, min(per_side, len(answerable)))
                     + rng.sample(refused, min(per_side, len(refused)))
                     + rng.sample(near, min(per_side // 2, len(near))))
        out.append(Split(name, documents, questions))
    return out


@dataclass
class Observed:
    """One question as the answerer saw it: its candidates' features and which hold a gold span."""

    question: Question
    features: np.ndarray  # candidates x CANDIDATE_FEATURES
    gold: np.ndarray  # bool per candidate
    top_score: float  # retrieval's score of the first passage


def observe(split: Split, cache: Path, reuse: Path | None = None) -> list[Observed]:
    """Each question's candidates as the answerer sees them. With ``reuse``, observations are kept
    there (per split) and read back on later runs: for trying models, not for a final report."""
    saved = reuse / f"{split.name.replace(' ', '-')}.npz" if reuse else None
    if saved and saved.exists():
        data = np.load(saved)
        cuts = np.cumsum(data["counts"])[:-1]
        return [Observed(q, f, g, float(t)) for q, f, g, t in zip(
            split.questions, np.split(data["features"], cuts), np.split(data["gold"], cuts), data["top"])]
    observed = _observe(split, cache)
    if saved:
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez(saved, features=np.concatenate([o.features for o in observed]),
                 gold=np.concatenate([o.gold for o in observed]), counts=[len(o.gold) for o in observed],
                 top=[o.top_score for o in observed])
    return observed


def _observe(split: Split, cache: Path) -> list[Observed]:
    with workspace() as tmp:
        system = Footnote(Path(tmp), cache, answer_decision="learned")  # its features in full
        began = time.perf_counter()
        system.build(split.documents)
        print(f"  {split.name}: {len(split.documents)} documents indexed in {time.perf_counter() - began:.0f} s")
        asker = system.engine.asker
        out = []
        for q in split.questions:
            found = asker.retrieve(q.text, TOP_K, None)
            candidates = asker.answerer.candidates(q.text, found)
            features = np.stack([c.features for c in candidates]) if candidates else np.zeros((0, len(CANDIDATE_FEATURES)))
            gold = np.array([bool(q.answers) and contains_answer(c.text, q.answers) for c in candidates], bool)
            out.append(Observed(q, features, gold, found.scores()[0] if found.hits else 0.0))
        system.engine.close()
    return out


def answer_rows(model: Logistic | Trees, observed: list[Observed]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Per question: the features of the sentence the candidate model picks, whether it is right,
    and every candidate's logit (best first order is by these)."""
    rows, labels, logits = [], [], []
    for o in observed:
        if not len(o.features):
            rows.append(np.zeros(len(ANSWER_FEATURES)))
            labels.append(False)
            logits.append(np.zeros(0))
            continue
        z = model.logit(o.features)
        order = np.argsort(-z, kind="stable")
        best = order[0]
        margin = z[best] - z[order[1]] if len(z) > 1 else 10.0
        rows.append(answer_row(o.features[best], z[best], margin, o.top_score))
        labels.append(bool(o.gold[best]))
        logits.append(z)
    return np.array(rows), np.array(labels, float), logits


class Outcome(NamedTuple):
    answered: float  # of the answerable questions, answered correctly
    refused: float  # of the questions whose article is not indexed, refused
    near_refused: float  # of the near misses (article indexed, paragraph not), refused
    sentences: float  # quoted per answer


def summarise(observed: list[Observed], given: list[list[int] | None]) -> Outcome:
    """What the answers ``given`` (per question: the candidates quoted, or None: refused) add up to."""
    answerable = [(o, g) for o, g in zip(observed, given) if o.question.answers]
    elsewhere = [g for o, g in zip(observed, given) if not o.question.answers and not o.question.near]
    near = [g for o, g in zip(observed, given) if o.question.near]
    answers = [g for g in given if g is not None]
    return Outcome(sum(g is not None and bool(o.gold[g].any()) for o, g in answerable) / max(1, len(answerable)),
                   sum(g is None for g in elsewhere) / max(1, len(elsewhere)),
                   sum(g is None for g in near) / max(1, len(near)),
                   sum(len(g) for g in answers) / max(1, len(answers)))


def outcome(observed: list[Observed], logits: list[np.ndarray], confidence: np.ndarray, threshold: float,
            runner_up: float, max_sentences: int = 2) -> Outcome:
    """How the learned decision does, as the answerer decides."""
    given: list[list[int] | None] = []
    for o, z, p in zip(observed, logits, confidence):
        order = np.argsort(-z, kind="stable")
        chosen = [int(i) for i in order[: quoted(z[order], runner_up, max_sentences)]]
        given.append(chosen if len(z) and p >= threshold and not partial(o.features[chosen]) else None)
    return summarise(observed, given)


def fit_trees(rows: np.ndarray, gold: np.ndarray) -> Trees:
    """Gradient-boosted trees (scikit-learn), kept as the plain arrays ``Trees`` evaluates."""
    from sklearn.ensemble import GradientBoostingClassifier

    rate = 0.1
    boosted = GradientBoostingClassifier(n_estimators=150, max_depth=3, learning_rate=rate, subsample=0.8,
                                         random_state=0).fit(rows, gold)
    prior = gold.mean()
    trees = Trees(CANDIDATE_FEATURES, float(np.log(prior / (1 - prior))), rate, tuple(
        {"feature": t.tree_.feature.astype(np.int64), "threshold": t.tree_.threshold.astype(float),
         "left": t.tree_.children_left.astype(np.int64), "right": t.tree_.children_right.astype(np.int64),
         "value": t.tree_.value[:, 0, 0].astype(float)} for t in boosted.estimators_[:, 0]))
    assert np.allclose(trees.logit(rows[:500]), boosted.decision_function(rows[:500]), atol=1e-6)
    return trees


def rules_answers(observed: list[Observed], max_sentences: int = 2) -> list[tuple[list[int], np.ndarray | None]]:
    """Per question, what the hand-set rules (FOOTNOTE_ANSWER_DECISION=rules) quote and, when they
    answer, what their confidence model reads (None: refused)."""
    out: list[tuple[list[int], np.ndarray | None]] = []
    for o in observed:
        x = o.features
        if not len(x):
            out.append(([], None))
            continue
        chosen, score = rules_choice(x, RULES_THRESHOLD, max_sentences)
        answers = bool(chosen) and not partial(x[chosen])
        out.append((chosen, rules_row(x, score, chosen[0], o.top_score) if answers else None))
    return out


def rules_outcome(observed: list[Observed]) -> tuple[Outcome, np.ndarray, np.ndarray]:
    """How the rules do, and the rows and labels (right or not) of the answers they give."""
    given = rules_answers(observed)
    rows = [row for _, row in given if row is not None]
    labels = [float(bool(o.question.answers) and bool(o.gold[chosen].any()))
              for o, (chosen, row) in zip(observed, given) if row is not None]
    return (summarise(observed, [chosen if row is not None else None for chosen, row in given]),
            np.array(rows).reshape(-1, len(ANSWER_FEATURES)), np.array(labels))


def rules_l2(observed: dict[str, list[Observed]]) -> float:
    """The regularisation of the rules' confidence model: the one whose confidence, fitted on one
    tuning split's answers, is best calibrated on the other's (both ways round)."""
    answers = {name: rules_outcome(split)[1:] for name, split in observed.items()}

    def error(l2: float) -> float:
        a, b = answers.values()
        return float(np.mean([calibration(sigmoid(Logistic.fit(ANSWER_FEATURES, *fit, l2=l2).logit(test[0])), test[1])[0]
                              for fit, test in ((a, b), (b, a))]))

    return min(RULES_L2_GRID, key=error)


def train(observed: list[Observed], kind: str, l2_rules: float = 1.0) -> DecisionModel:
    rows = np.concatenate([o.features for o in observed if len(o.features)])
    gold = np.concatenate([o.gold for o in observed if len(o.features)]).astype(float)
    candidate = fit_trees(rows, gold) if kind == "trees" else Logistic.fit(CANDIDATE_FEATURES, rows, gold, l2=1.0)
    x, y, logits = answer_rows(candidate, observed)
    answer = Logistic.fit(ANSWER_FEATURES, x, y, l2=1.0)
    confidence = sigmoid(answer.logit(x))

    def paid(r: float) -> float:  # a second sentence must pay for itself (each costs 2 points of accuracy)
        got = outcome(observed, logits, confidence, 0.0, r)
        return got.answered - 0.02 * got.sentences

    def balance(t: float) -> float:  # answering what can be answered and refusing the rest, against their targets
        got = outcome(observed, logits, confidence, t, runner_up)
        return min(got.answered / 0.80, got.refused / 0.92)

    runner_up = max((0.5, 0.6, 0.7, 0.8, 0.9, 1.01), key=paid)
    threshold = max(np.linspace(0.05, 0.95, 91), key=balance)
    _, rows, labels = rules_outcome(observed)
    return DecisionModel(candidate, answer, float(threshold), runner_up,
                         Logistic.fit(ANSWER_FEATURES, rows, labels, l2=l2_rules))


def cross_check(observed: dict[str, list[Observed]]) -> str:
    """Which kind of sentence model generalises better, judged within the tuning half: trained on
    one split, measured on the other, both ways round."""
    names = list(observed)
    scores = {}
    for kind in ("logistic", "trees"):
        results = []
        for a, b in ((names[0], names[1]), (names[1], names[0])):
            model = train(observed[a], kind)
            x, y, logits = answer_rows(model.candidate, observed[b])
            confidence = sigmoid(model.answer.logit(x))
            got = outcome(observed[b], logits, confidence, model.threshold, model.runner_up)
            results.append((got.answered, got.refused, calibration(confidence, y)[0]))
        mean = np.mean(results, axis=0)
        scores[kind] = mean[0] + mean[1] - mean[2]
        print(f"  cross-check {kind}: answered correctly {mean[0]:.3f}, refused correctly {mean[1]:.3f}, "
              f"ECE {mean[2]:.3f}")
    return max(scores, key=lambda k: scores[k])


def report(model: DecisionModel, observed_by_split: dict[str, list[Observed]]) -> dict[str, dict]:
    out = {}
    for name, observed in observed_by_split.items():
        x, y, logits = answer_rows(model.candidate, observed)
        confidence = sigmoid(model.answer.logit(x))
        got = outcome(observed, logits, confidence, model.threshold, model.runner_up)
        ece, table = calibration(confidence, y)
        answerable = [o for o in observed if o.question.answers]
        reachable = sum(bool(o.gold.any()) for o in answerable) / max(1, len(answerable))
        order = np.argsort(-confidence)
        curve = [(c, float(y[order[: max(1, round(c * len(y)))]].mean())) for c in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
                                                                                      0.7, 0.8, 0.9, 1.0)]
        rules, rows, labels = rules_outcome(observed)
        rules_ece, rules_table = calibration(sigmoid(model.rules_answer.logit(rows)), labels)
        print(f"  {name}, rules: answered correctly {rules.answered:.3f}, refused correctly {rules.refused:.3f}, "
              f"near misses refused {rules.near_refused:.3f}, ECE of their answers' confidence {rules_ece:.3f}")
        out[name] = {"rules": {"answered_correctly": round(rules.answered, 3),
                               "refused_correctly": round(rules.refused, 3),
                               "near_misses_refused": round(rules.near_refused, 3),
                               "ece": round(rules_ece, 3), "reliability": [b.model_dump() for b in rules_table]},
                     "answered_correctly": round(got.answered, 3), "refused_correctly": round(got.refused, 3),
                     "near_misses_refused": round(got.near_refused, 3),
                     "sentences_per_answer": round(got.sentences, 2), "ece": round(ece, 3),
                     "reliability": [b.model_dump() for b in table],
                     "risk_coverage": [(c, round(a, 3)) for c, a in curve], "questions": len(observed),
                     "near_misses": sum(o.question.near for o in observed),
                     "gold_among_candidates": round(reachable, 3)}
        print(f"  {name}: answered correctly {got.answered:.3f}, refused correctly {got.refused:.3f}, near misses "
              f"refused {got.near_refused:.3f}, ECE {ece:.3f}, {got.sentences:.2f} sentences per answer; a gold "
              f"span among the candidates: {reachable:.3f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="Report the current model; train nothing.")
    parser.add_argument("--model", choices=("trees", "logistic"), default=None,
                        help="What picks the sentence (default: the kind that does better across the tuning "
                             "half's two splits).")
    parser.add_argument("--per-side", type=int, default=QUESTIONS_PER_SIDE)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=Path("bench/answerer-report.json"))
    parser.add_argument("--reuse", type=Path, default=None,
                        help="Keep observations here and reuse them (model experiments only).")
    args = parser.parse_args()
    tuning, evaluation = halves()
    results: dict[str, dict] = {}
    if not args.report:
        try:
            DecisionModel.load()
        except ValueError:  # the features changed: observing needs a model of the new shape
            DecisionModel.untrained().save()
        print("tuning half (odd positions): observing")
        observed = {s.name: observe(s, args.cache, args.reuse) for s in splits(tuning, "tuning", args.per_side)}
        kind = args.model or cross_check(observed)
        l2 = rules_l2(observed)
        print(f"  the rules' confidence: L2 {l2:g}, chosen across the tuning splits")
        model = train([o for split in observed.values() for o in split], kind, l2)
        model = DecisionModel(model.candidate, model.answer, model.threshold, model.runner_up, model.rules_answer, about={
            "trained_on": "SQuAD v1.1 dev, the 24 articles at odd positions by title (open corpus: 12 indexed, "
                          "12 held out, both ways round)",
            "questions": sum(len(v) for v in observed.values()),
            "command": "python -m bench.train_answerer",
            "sentence_model": kind,
            "rules_confidence_l2": l2,
        })
        model.save()
        print(f"model written: threshold {model.threshold:.2f}, runner-up {model.runner_up:.2f}")
        results["tuning"] = report(model, observed)
    model = DecisionModel.load()
    print("evaluation half (even positions): observing")
    held_out = {s.name: observe(s, args.cache, args.reuse) for s in splits(evaluation, "evaluation", args.per_side)}
    results["evaluation"] = report(model, held_out)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"report written to {args.out}")


if __name__ == "__main__":
    main()
