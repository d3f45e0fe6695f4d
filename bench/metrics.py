"""Standard retrieval and answer metrics (BEIR nDCG/recall, SQuAD answer normalisation)."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence


def ndcg_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """BEIR's nDCG@k (as pytrec_eval computes it): gain = graded relevance, log2 discount."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted.intersection(ranked[:k])) / len(wanted) if wanted else 0.0


def hit_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    return float(any(relevant.get(d, 0) > 0 for d in ranked[:k]))


def squad_normalize(text: str) -> str:
    """SQuAD's official answer normalisation: lowercase, drop punctuation and articles."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_answer(answer: str, gold: Sequence[str]) -> bool:
    """Whether the normalised answer contains a normalised gold span as whole words."""
    padded = f" {squad_normalize(answer)} "
    return any(f" {g} " in padded for g in map(squad_normalize, gold) if g)


def distinct(sources: Sequence[str]) -> list[str]:
    """Document ranking from a passage ranking: each document at its best passage's place."""
    return list(dict.fromkeys(sources))
