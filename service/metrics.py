"""Footnote's own Prometheus metrics: where a question's time goes, what answers were given, what
was written. They live in a registry of their own (one per engine), so nothing is process-global
and two engines in one process never collide; the HTTP face exposes it at /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import Answer
from .store import Counts

# Fine enough at the low end for the p95/p99 of stages that take a few milliseconds.
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0,
           2.5, 5.0, 10.0, 30.0, 60.0)
STAGES = ("embed", "keyword", "dense", "fuse", "rerank", "answer", "llm")


class _IndexSize(Collector):
    """Documents and chunks, read from the store when scraped (never stale, never counted twice)."""

    def __init__(self, counts: Callable[[], Counts]) -> None:
        self.counts = counts

    def describe(self) -> list[GaugeMetricFamily]:
        # Without it the registry would collect once to learn the names, opening the store
        # (the whole index, at start) before the engine does.
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = self.counts()
        except Exception:  # an index not built yet, or a database away: no sample, not a failed scrape
            return
        yield GaugeMetricFamily("footnote_index_documents", "Documents in the index.", value=counts.documents)
        yield GaugeMetricFamily("footnote_index_chunks", "Chunks (passages) in the index.", value=counts.chunks)


class Metrics:
    def __init__(self, counts: Callable[[], Counts]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.stage_seconds = Histogram("footnote_stage_seconds", "Time per stage of answering a question.",
                                       ["stage"], buckets=SECONDS, registry=r)
        self.answers = Counter("footnote_answers", "Answers given, by mode and whether the documents covered "
                               "the question.", ["mode", "answerable"], registry=r)
        self.fallbacks = Counter("footnote_llm_fallbacks", "LLM-mode answers given extractively instead, by the "
                                 "LLM error's class.", ["reason"], registry=r)
        self.unsupported = Counter("footnote_unsupported_sentences", "Generated sentences their cited passage "
                                   "does not support.", registry=r)
        self.citations = Histogram("footnote_citations_per_answer", "Citations per answer.",
                                   buckets=(0, 1, 2, 3, 4, 5, 8, 13), registry=r)
        self.ingest_seconds = Histogram("footnote_ingest_seconds", "Time per write to the index (upload, "
                                        "delete or corpus sync).", buckets=SECONDS, registry=r)
        self.documents_written = Counter("footnote_documents_written", "Documents written to the index, by change.",
                                         ["change"], registry=r)
        for stage in STAGES:  # every stage appears from the first scrape, at zero
            self.stage_seconds.labels(stage)
        r.register(_IndexSize(counts))

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(stage).observe(time.perf_counter() - began)

    def answered(self, answer: Answer) -> None:
        self.answers.labels(answer.mode, str(answer.answerable).lower()).inc()
        self.citations.observe(len(answer.citations))
        if answer.unsupported:
            self.unsupported.inc(len(answer.unsupported))

    def fell_back(self, reason: str) -> None:
        self.fallbacks.labels(reason).inc()

    def wrote(self, seconds: float, added: int, updated: int, removed: int) -> None:
        self.ingest_seconds.observe(seconds)
        for change, count in (("added", added), ("updated", updated), ("removed", removed)):
            if count:
                self.documents_written.labels(change).inc(count)
