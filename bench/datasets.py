"""The public benchmarks in ../shared/bench as plain corpora and questions."""

from __future__ import annotations

import csv
import gzip
import json
import random
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"


@dataclass(frozen=True)
class Query:
    qid: str
    text: str
    relevant: dict[str, int]  # document id -> graded relevance
    answers: tuple[str, ...] = ()


@dataclass
class Dataset:
    name: str
    documents: dict[str, str]  # document id -> text, as every system indexes it
    queries: list[Query]
    tuning: list[Query] = field(default_factory=list)  # disjoint from ``queries``


def _need(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(f"benchmark data not found: {path} (see ../shared/bench/README.md)")
    return path


def load_scifact(root: Path = BENCH_DIR / "scifact", split: str = "test") -> Dataset:
    documents: dict[str, str] = {}
    with gzip.open(_need(root / "corpus.jsonl.gz"), "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            documents[row["_id"]] = f"{row['title']}\n\n{row['text']}"
    texts = {}
    with open(root / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            texts[row["_id"]] = row["text"]

    def qrels(name: str) -> list[Query]:
        rel: dict[str, dict[str, int]] = defaultdict(dict)
        with open(root / "qrels" / f"{name}.tsv", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter="\t")
            next(reader)
            for qid, doc, score in reader:
                rel[qid][doc] = int(score)
        return [Query(qid, texts[qid], dict(docs)) for qid, docs in rel.items()]

    other = "train" if split == "test" else "test"
    return Dataset("scifact", documents, qrels(split), qrels(other))


def load_squad(
    path: Path = BENCH_DIR / "squad-v1.1" / "dev-v1.1.json.zip", sample: int = 2000, seed: int = 0
) -> Dataset:
    """Paragraphs are the documents; a fixed random sample of questions is evaluated and the
    rest are left for tuning."""
    with zipfile.ZipFile(_need(path)) as zf:
        data = json.loads(zf.read("dev-v1.1.json"))["data"]
    documents: dict[str, str] = {}
    questions: list[Query] = []
    for article in data:
        for i, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}-{i:03d}"
            documents[doc_id] = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                questions.append(Query(qa["id"], qa["question"], {doc_id: 1}, answers))
    rng = random.Random(seed)
    chosen = set(rng.sample(range(len(questions)), min(sample, len(questions))))
    return Dataset(
        "squad",
        documents,
        [q for i, q in enumerate(questions) if i in chosen],
        [q for i, q in enumerate(questions) if i not in chosen],
    )
