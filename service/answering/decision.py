"""The extractive answerer's decisions, learnt rather than hand-set: which sentence answers (a
logistic model over each candidate sentence's features) and how sure to be of it (a second
logistic model over the chosen sentence's, whose output is the answer's ``confidence``: among
answers given with confidence p, about p are right). Both are fitted by
``python -m bench.train_answerer`` on public data and read from ``answerer_model.json`` here:
plain numbers, no pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODEL = Path(__file__).with_name("answerer_model.json")

# What a candidate sentence is described by (extractive.Candidate.features, in this order).
CANDIDATE_FEATURES = (
    "dense",  # cosine of the sentence's embedding with the question's
    "lexical",  # share of the question's IDF weight the sentence's stems cover
    "inv_rank",  # 1 / rank of the passage holding it
    "type_expected",  # the question asks for a quantity or a date
    "type_found",  # ... and the sentence has one where expected
    "specific",  # shares a stem rarer than the corpus's topic words
    "names_doc",  # share of the question's names its document mentions (any spelling it defines)
    "names_sentence",  # share of them the sentence itself holds
    "names_near",  # names_doc, a missing name counting when a name the document uses stands in for it (the rules
    # work it out only for documents that could answer with it; elsewhere it is names_doc). A sentence using the
    # name that stands in counts the question's name in "lexical", "specific" and "names_sentence" too.
    "dense_gap",  # below the best cosine among the candidates
    "lexical_gap",  # below the best coverage among the candidates
    "log_chars",  # length of the sentence
    "passage_score",  # retrieval's score of the passage holding it
    "passage_lexical",  # share of the question's IDF weight the whole passage covers
    "neighbour_lexical",  # ... the sentence before or after it covers (an answer often follows its cue)
    "wh_found",  # who/where/which: holds a capitalised word the question does not (a name to answer with)
    "novel",  # share of its words the question does not use (an answer adds something)
    "question_terms",  # log of the question's distinct terms
    "predicate",  # share of the question's specific stems other than names the sentence covers
    "predicate_near",  # predicate, where a sentence covering none counts the words it says in other words
    # ("soldiers" ~ "troops"; worked out only for the sentence the rules would quote first, elsewhere it is predicate)
)
# What the chosen answer is described by, for its confidence ("best": the candidate model's logit
# of the chosen sentence, or under the rules their score; "margin": over the runner-up's).
ANSWER_FEATURES = ("best", "margin", "names_doc", "names_near", "type_missing", "dense", "lexical", "passage_score",
                   "top_passage_score")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


@dataclass(frozen=True)
class Logistic:
    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def logit(self, rows: np.ndarray) -> np.ndarray:
        return ((np.atleast_2d(rows) - self.mean) / self.scale) @ self.weights + self.bias

    @classmethod
    def fit(cls, names: tuple[str, ...], x: np.ndarray, y: np.ndarray, l2: float = 1.0,
            weight: np.ndarray | None = None) -> Logistic:
        """L2-regularised logistic regression by Newton's method on standardised features."""
        mean = x.mean(axis=0)
        scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
        z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
        w = np.zeros(z.shape[1])
        sample = np.ones(len(x)) if weight is None else weight
        penalty = np.full(z.shape[1], l2)
        penalty[-1] = 0.0  # the bias is not shrunk
        for _ in range(50):
            p = sigmoid(z @ w)
            gradient = z.T @ (sample * (p - y)) + penalty * w
            hessian = (z * (sample * p * (1 - p))[:, None]).T @ z + np.diag(penalty)
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(names, mean, scale, w[:-1], float(w[-1]))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "logistic", "features": list(self.names), "mean": self.mean.round(8).tolist(),
                "scale": self.scale.round(8).tolist(), "weights": self.weights.round(8).tolist(),
                "bias": round(self.bias, 8)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Logistic:
        return cls(tuple(data["features"]), np.array(data["mean"]), np.array(data["scale"]),
                   np.array(data["weights"]), float(data["bias"]))


@dataclass(frozen=True)
class Trees:
    """Gradient-boosted regression trees giving a log-odds score (as scikit-learn fits them),
    kept as plain arrays: per tree, each node's feature, threshold, children (-1: a leaf) and value."""

    names: tuple[str, ...]
    init: float
    rate: float
    trees: tuple[dict[str, np.ndarray], ...]

    def logit(self, rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(rows)
        total = np.full(len(rows), self.init)
        at = np.arange(len(rows))
        for tree in self.trees:
            node = np.zeros(len(rows), dtype=np.int64)
            while True:
                inner = tree["left"][node] >= 0
                if not inner.any():
                    break
                go_left = rows[at, tree["feature"][node]] <= tree["threshold"][node]
                node = np.where(inner, np.where(go_left, tree["left"][node], tree["right"][node]), node)
            total += self.rate * tree["value"][node]
        return total

    def to_json(self) -> dict[str, Any]:
        return {"kind": "trees", "features": list(self.names), "init": self.init, "rate": self.rate,
                "trees": [{k: (v.round(6) if v.dtype.kind == "f" else v).tolist() for k, v in t.items()}
                          for t in self.trees]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trees:
        kinds = {"feature": np.int64, "left": np.int64, "right": np.int64, "threshold": float, "value": float}
        return cls(tuple(data["features"]), float(data["init"]), float(data["rate"]),
                   tuple({k: np.array(t[k], dtype=kinds[k]) for k in kinds} for t in data["trees"]))


@dataclass(frozen=True)
class DecisionModel:
    candidate: Logistic | Trees
    answer: Logistic
    # Refuse below this confidence (FOOTNOTE_ANSWER_THRESHOLD overrides it), chosen on the tuning data.
    threshold: float
    # A second sentence joins the answer when its probability is at least this share of the best's.
    runner_up: float
    # The confidence of an answer the hand-set rules give (they decide; this says how sure to be).
    rules_answer: Logistic
    about: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def untrained(cls) -> DecisionModel:
        """All weights zero: what the trainer starts from when the features have changed."""

        def zero(names: tuple[str, ...]) -> Logistic:
            return Logistic(names, np.zeros(len(names)), np.ones(len(names)), np.zeros(len(names)), 0.0)

        return cls(zero(CANDIDATE_FEATURES), zero(ANSWER_FEATURES), 0.5, 0.5, zero(ANSWER_FEATURES),
                   {"untrained": True})

    @classmethod
    def load(cls, path: Path = MODEL) -> DecisionModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        kind = Trees if data["candidate"].get("kind") == "trees" else Logistic
        if "rules_answer" not in data:
            raise ValueError(f"{path}: has no confidence for the rules; retrain with `python -m bench.train_answerer`")
        model = cls(kind.from_json(data["candidate"]), Logistic.from_json(data["answer"]),
                    float(data["threshold"]), float(data["runner_up"]), Logistic.from_json(data["rules_answer"]),
                    data.get("about", {}))
        if (model.candidate.names != CANDIDATE_FEATURES or model.answer.names != ANSWER_FEATURES
                or model.rules_answer.names != ANSWER_FEATURES):
            raise ValueError(f"{path}: trained on other features; retrain with `python -m bench.train_answerer`")
        return model

    def save(self, path: Path = MODEL) -> None:
        data = {"candidate": self.candidate.to_json(), "answer": self.answer.to_json(),
                "threshold": round(self.threshold, 4), "runner_up": round(self.runner_up, 4),
                "rules_answer": self.rules_answer.to_json(), "about": self.about}
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
