"""`footnote eval`: run a gold question set through an engine (local or remote) and score it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from .errors import CorpusError, DocumentNotFound
from .models import Answer, DocumentDetail
from .text import normalize


class Backend(Protocol):
    def ask(self, question: str, top_k: int = 5) -> Answer: ...

    def document(self, source: str) -> DocumentDetail: ...


class GoldQuestion(BaseModel):
    id: str
    question: str
    answer_must_contain: list[list[str]] = Field(
        default_factory=list, description="Groups; the answer must contain one string of each."
    )
    sources: list[str] = Field(default_factory=list, description="Documents that answer it.")
    answerable: bool = True


class QuestionResult(BaseModel):
    id: str
    question: str
    answerable: bool
    answered: bool
    answer_ok: bool
    citation_ok: bool
    retrieval_hit: bool
    spans_ok: bool
    latency_ms: float
    answer: str
    confidence: float | None = None


class ReliabilityBin(BaseModel):
    confidence: float = Field(description="Mean confidence of the answers in this bin.")
    accuracy: float = Field(description="Share of them that were right.")
    answers: int


class EvalReport(BaseModel):
    questions: int
    answer_accuracy: float = Field(description="Answerable questions answered with every required string.")
    citation_accuracy: float = Field(description="Answerable questions citing a gold source.")
    refusal_accuracy: float = Field(description="Unanswerable questions refused.")
    span_integrity: float = Field(description="Citations and passages whose quote is text[start:end].")
    retrieval_hit_at_k: float = Field(description="Answerable questions with a gold source among the passages.")
    top_k: int
    latency_p50_ms: float
    latency_p95_ms: float
    calibration_error: float | None = Field(
        description="Expected calibration error of `confidence` over the answers given (10 bins): 0 is perfect.")
    reliability: list[ReliabilityBin] = Field(description="Per confidence bin: mean confidence and accuracy.")
    failed: list[str] = Field(description="Ids of questions that missed any bar.")
    results: list[QuestionResult]


def load_gold(path: Path) -> list[GoldQuestion]:
    items = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(GoldQuestion.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise CorpusError(f"{path}:{n}: not a gold question ({exc.__class__.__name__})") from exc
    if not items:
        raise CorpusError(f"{path}: no questions")
    return items


def _plain(text: str) -> str:
    return " ".join(normalize(text).lower().split())


def _bare(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def contains(answer: str, needle: str) -> bool:
    """Case-, quote- and whitespace-insensitive containment; punctuation-blind as a fallback."""
    a, n = _plain(answer), _plain(needle)
    return n in a or _bare(n) in _bare(a)


def _spans_ok(backend: Backend, answer: Answer, texts: dict[str, str]) -> bool:
    spans = [(c.source, c.start, c.end, c.quote) for c in answer.citations]
    spans += [(p.source, p.start, p.end, p.text) for p in answer.passages]
    for source, start, end, quote in spans:
        if source not in texts:
            try:
                texts[source] = backend.document(source).text
            except DocumentNotFound:
                return False
        if texts[source][start:end] != quote:
            return False
    return True


def evaluate(backend: Backend, gold: list[GoldQuestion], top_k: int = 5) -> EvalReport:
    texts: dict[str, str] = {}
    results = []
    for item in gold:
        began = time.perf_counter()
        answer = backend.ask(item.question, top_k)
        latency = (time.perf_counter() - began) * 1000
        cited = {c.source for c in answer.citations}
        results.append(
            QuestionResult(
                id=item.id, question=item.question, answerable=item.answerable, answered=answer.answerable,
                answer_ok=answer.answerable
                and all(
                    any(contains(answer.answer, s) for s in group) for group in item.answer_must_contain
                ),
                citation_ok=bool(cited & set(item.sources)) if item.sources else bool(cited),
                retrieval_hit=bool({p.source for p in answer.passages} & set(item.sources)),
                spans_ok=_spans_ok(backend, answer, texts),
                latency_ms=round(latency, 2),
                answer=answer.answer,
                confidence=answer.confidence,
            )
        )
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]

    def share(rows: list[QuestionResult], ok: str) -> float:
        return round(sum(getattr(r, ok) for r in rows) / len(rows), 4) if rows else 1.0

    failed = [
        r.id for r in results
        if not r.spans_ok or not ((r.answer_ok and r.citation_ok) if r.answerable else not r.answered)
    ]
    latencies = np.array([r.latency_ms for r in results])
    given = [r for r in results if r.answered and r.confidence is not None]
    error, bins = calibration(np.array([r.confidence for r in given]),
                              np.array([r.answerable and r.answer_ok for r in given], float))
    return EvalReport(
        questions=len(results),
        answer_accuracy=share(answerable, "answer_ok"),
        citation_accuracy=round(sum(r.answered and r.citation_ok for r in answerable) / len(answerable), 4)
        if answerable else 1.0,
        refusal_accuracy=round(sum(not r.answered for r in unanswerable) / len(unanswerable), 4)
        if unanswerable else 1.0,
        span_integrity=share(results, "spans_ok"),
        retrieval_hit_at_k=share(answerable, "retrieval_hit"),
        top_k=top_k,
        latency_p50_ms=round(float(np.percentile(latencies, 50)), 2),
        latency_p95_ms=round(float(np.percentile(latencies, 95)), 2),
        calibration_error=round(error, 4) if given else None,
        reliability=bins,
        failed=failed,
        results=results,
    )


def calibration(confidence: np.ndarray, right: np.ndarray, bins: int = 10) -> tuple[float, list[ReliabilityBin]]:
    """Expected calibration error (the gap between confidence and accuracy, weighted by how many
    answers fall in each of ``bins`` equal-width bins) and the reliability diagram's bins."""
    edges = np.linspace(0, 1, bins + 1)
    table, error = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (confidence >= lo) & ((confidence < hi) | (hi == 1.0))
        if inside.any():
            table.append(ReliabilityBin(confidence=round(float(confidence[inside].mean()), 4),
                                        accuracy=round(float(right[inside].mean()), 4), answers=int(inside.sum())))
            error += inside.sum() / len(confidence) * abs(float(confidence[inside].mean()) - float(right[inside].mean()))
    return float(error), table
