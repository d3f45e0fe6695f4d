"""Small slices of the public benchmarks (../shared/bench), through the same engine as /ask, with
floors on their metrics and plain BM25 on the same slice as the bar to clear. The full sets run
in bench/quality.py."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench.datasets import Dataset, load_scifact, load_squad
from bench.metrics import contains_answer, hit_at_k, ndcg_at_k
from bench.systems import Footnote, PlainBM25

from .conftest import ROOT, shared

pytestmark = pytest.mark.slow


def _scifact_slice(size: int = 200, queries: int = 40) -> Dataset:
    full = load_scifact(shared("bench/scifact"))
    chosen = full.queries[:queries]
    wanted = {d for q in chosen for d in q.relevant}
    fill = [d for d in full.documents if d not in wanted][: size - len(wanted)]
    return Dataset("scifact", {d: full.documents[d] for d in sorted(wanted) + fill}, chosen)


def _squad_slice(per_article: int = 3, questions: int = 150) -> Dataset:
    """The first paragraphs of every article (48 topics), and questions on them."""
    full = load_squad(shared("bench/squad-v1.1/dev-v1.1.json.zip"), sample=0)
    documents = {d: t for d, t in full.documents.items() if int(d.rsplit("-", 1)[1]) < per_article}
    chosen = [q for q in full.tuning if next(iter(q.relevant)) in documents][::2][:questions]
    return Dataset("squad", documents, chosen)


def _footnote(tmp_path: Path, data: Dataset) -> Footnote:
    system = Footnote(tmp_path, cache_dir=None)
    system.build(data.documents)
    return system


def test_scifact_slice_ranks_relevant_abstracts_above_bm25(tmp_path: Path) -> None:
    data = _scifact_slice()
    footnote, bm25 = _footnote(tmp_path, data), PlainBM25()
    bm25.build(data.documents)
    scores = {
        name: statistics.mean(ndcg_at_k(system.rank(q.text, 10), q.relevant) for q in data.queries)
        for name, system in (("footnote", footnote), ("bm25", bm25))
    }
    assert scores["footnote"] >= 0.80, scores
    assert scores["footnote"] > scores["bm25"], scores


def test_squad_slice_finds_paragraphs_and_quotes_answers(tmp_path: Path) -> None:
    data = _squad_slice()
    footnote = _footnote(tmp_path, data)
    results = [footnote.answer(q.text, 5) for q in data.queries]
    hit1 = statistics.mean(hit_at_k(r[1], q.relevant, 1) for r, q in zip(results, data.queries))
    accuracy = statistics.mean(contains_answer(r[0], q.answers) for r, q in zip(results, data.queries))
    median_chars = statistics.median(len(r[0]) for r in results)
    assert hit1 >= 0.85, hit1
    # 0.72 before the rules refused a best sentence saying nothing of what is asked (near misses): 0.69;
    # 0.68 since names standing in and sentences pointing back count in the score (tuning half: +0.015).
    assert accuracy >= 0.67, accuracy
    assert median_chars <= 250, median_chars


def test_the_scale_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    """bench/scale_service.py at a few thousand chunks: builds, serves, asks, writes and reports
    (its numbers are for bench/SCALE.md, not asserted here)."""
    shared("bench/scifact")
    out = tmp_path / "SCALE.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FOOTNOTE_MODEL_CACHE_DIR": str(ROOT / ".cache" / "test-models")}
    result = subprocess.run(
        [sys.executable, "-m", "bench.scale_service", "--chunks", "2000", "--questions", "10",
         "--ingest-during", "20", "--work", str(tmp_path / "work"), "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = out.read_text()
    assert "| chunks |" in table and "upload / delete" in table and "During an upload of 20 documents" in table
