"""Footnote's retrieval at a million chunks, on synthetic data (the issue allows random vectors).

    python -m bench.scale [--chunks 1000000] [--questions 500] [--kinds ivf,hnsw]

- Vectors: ``--chunks`` unit vectors of 384 dimensions in clusters of 100 (Gaussian noise of
  0.06 a dimension around random centres: a question's 10 nearest share its cluster, at cosines
  0.50 to 0.46, so near-ties make recall hard). Each kind is built by ``service.vectors.build``
  as the service builds it; search runs one question at a time through ``service.vectors.search``
  with the default settings; recall@10 is against exact search of the same vectors. Memory is the
  process's RSS growth over the build.
- Keywords: the chunks' text is made of real SQuAD sentences (three per chunk, ten chunks per
  document), so terms have real frequencies; ``KeywordIndex`` (the two BM25 scorings of every
  question) is built and queried with SQuAD questions.

Writes the table, with the machine, to bench/SCALE.md.
"""

from __future__ import annotations

import argparse
import gc
import re
import time
from pathlib import Path

import numpy as np

from bench.datasets import load_squad
from bench.perf import machine, markdown_table, median_ms, p95_ms, timed
from service.retrieval import KeywordIndex
from service.text import Analyzer
from service.vectors import VectorIndexSpec, build, search

RESULTS = Path(__file__).resolve().parent / "SCALE.md"
DIM = 384
Row = tuple[str, str, str]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def clustered(n: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, DIM), np.float32)
    for i in range(0, n, 100_000):  # in slices, so the noise never needs a second full copy
        m = min(100_000, n - i)
        block = centres[rng.integers(0, len(centres), m)] + 0.06 * rng.standard_normal((m, DIM), np.float32)
        out[i : i + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def vectors(n: int, n_questions: int, kinds: list[str]) -> list[Row]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(n // 100, 1), DIM)).astype(np.float32)
    data, questions = clustered(n, centres, rng), clustered(n_questions, centres, rng)
    exact = build(data, DIM, VectorIndexSpec("flat"))
    truth: list[np.ndarray] = []
    exact_s = [timed(lambda q=q: truth.append(search(exact, q, 10, VectorIndexSpec("flat"))[1])) for q in questions]
    del exact
    gc.collect()
    rows: list[Row] = [(f"exact search (flat), {n:,} vectors", f"p50 {median_ms(exact_s):.1f} ms, "
                        f"p95 {p95_ms(exact_s):.1f} ms", "recall 1 by definition")]
    admitted = np.sort(rng.choice(n, n // 100, replace=False))  # a filter admitting 1% of the rows
    for kind in kinds:
        spec = VectorIndexSpec(kind)  # type: ignore[arg-type]
        before = rss_mb()
        started = time.perf_counter()
        index = build(data, DIM, spec)
        seconds = time.perf_counter() - started
        per_vector = (rss_mb() - before) * 2**20 / n
        latencies, found = [], 0
        for q, want in zip(questions, truth):
            started = time.perf_counter()
            _, got = search(index, q, 10, spec)
            latencies.append(time.perf_counter() - started)
            found += len(set(got) & set(want))
        filtered = [timed(lambda q=q: search(index, q, 10, spec, admitted)) for q in questions[:100]]
        setting = f"nprobe {spec.nprobe} of {index.nlist} lists" if kind == "ivf" else f"M {spec.hnsw_m}, efSearch {spec.ef_search}"
        rows += [
            (f"{kind} search ({setting})", f"p50 {median_ms(latencies):.2f} ms, "
             f"p95 {p95_ms(latencies):.2f} ms, recall@10 {found / (10 * len(questions)):.3f}",
             "target p50 <= 5 ms at recall@10 >= 0.95"),
            (f"{kind} build", f"{seconds:.0f} s, {per_vector:.0f} bytes a vector in memory",
             f"vectors alone: {4 * DIM} bytes"),
            (f"{kind} search, filter admitting 1%", f"p50 {median_ms(filtered):.1f} ms", ""),
        ]
        del index
        gc.collect()
    return rows


def keywords(n: int, n_questions: int) -> list[Row]:
    squad = load_squad()
    sentences = [s for text in squad.documents.values() for s in re.split(r"(?<=[.!?])\s+", text) if len(s) > 20]
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(sentences), (n, 3))
    before = rss_mb()
    chunks = [" ".join(sentences[i] for i in row) for row in picks]
    documents = [" ".join(chunks[i : i + 10]) for i in range(0, n, 10)]
    text_mb = rss_mb() - before
    before, started = rss_mb(), time.perf_counter()
    index = KeywordIndex(chunks, documents, np.arange(n, dtype=np.int64) // 10, Analyzer().stemmer, k1=0.5)
    seconds, per_chunk = time.perf_counter() - started, (rss_mb() - before) * 2**20 / n
    questions = [q.text for q in squad.queries[:n_questions]]
    latencies = [timed(lambda q=q: index.search(q, 100)) for q in questions]
    return [
        (f"BM25 (chunks + documents), {n:,} chunks in {len(documents):,} documents",
         f"p50 {median_ms(latencies):.1f} ms, p95 {p95_ms(latencies):.1f} ms",
         "every question scores both; compare with the vector search"),
        ("BM25 build", f"{seconds:.0f} s, {per_chunk:.0f} bytes a chunk in memory",
         f"the chunk text itself: {text_mb * 2**20 / n:.0f} bytes a chunk"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--kinds", default="ivf", help="comma-separated: ivf, hnsw (HNSW builds for minutes)")
    args = parser.parse_args()
    rows = vectors(args.chunks, args.questions, args.kinds.split(",")) + keywords(args.chunks, args.questions)
    header = ("what", "measured", "limit / reference")
    table = markdown_table(header, rows)
    report = (
        f"# Scale\n\nRegenerated by `python -m bench.scale --chunks {args.chunks} --questions {args.questions} "
        f"--kinds {args.kinds}` on {time.strftime('%Y-%m-%d')}.\n\nMachine: {machine()}.\n\n"
        "One vector per chunk here; the service indexes sentences (about 3 a chunk on SQuAD), so a "
        "million-chunk corpus holds about three million vectors.\n\n" + table + "\n"
    )
    print(report)
    RESULTS.write_text(report)


if __name__ == "__main__":
    main()
