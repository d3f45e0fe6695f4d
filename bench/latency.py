"""Index build time and in-process /ask latency over the seed questions.

    python -m bench.latency [--rounds 5]

Builds the default corpus into a temp index through the same code as `footnote index`, then
asks every gold question (tests/data, plus ../shared/eval when present) `rounds` times, both
through Engine.ask and through the FastAPI app (TestClient, no network), and prints p50/p95.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from service.api import create_app
from service.engine import build_engine
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
GOLD = [ROOT / "tests/data/gold_qa.jsonl", ROOT.parent / "shared/eval/seed_qa.jsonl"]


def percentiles(samples: list[float]) -> str:
    a = np.array(samples) * 1000
    return f"p50 {np.percentile(a, 50):7.1f} ms   p95 {np.percentile(a, 95):7.1f} ms   (n={len(a)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for path in GOLD if path.exists() for line in path.open()]

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(corpus_dir=ROOT / "corpus", index_dir=Path(tmp))
        engine = build_engine(settings)
        began = time.perf_counter()
        engine.embedder.warm_up()
        load = time.perf_counter() - began
        report = engine.sync()
        print(f"model load            {load:7.2f} s")
        print(f"index build           {report.seconds:7.2f} s   ({report.documents} documents, {report.chunks} chunks)")
        began = time.perf_counter()
        engine.sync()
        print(f"index re-sync         {time.perf_counter() - began:7.2f} s   (nothing changed)")

        for q in questions:  # warm caches once, as a running server would be
            engine.ask(q)
        samples = []
        for _ in range(args.rounds):
            for q in questions:
                t = time.perf_counter()
                engine.ask(q)
                samples.append(time.perf_counter() - t)
        print(f"engine.ask            {percentiles(samples)}")

        with TestClient(create_app(engine=engine)) as client:
            samples = []
            for _ in range(args.rounds):
                for q in questions:
                    t = time.perf_counter()
                    assert client.post("/ask", json={"question": q}).status_code == 200
                    samples.append(time.perf_counter() - t)
        print(f"POST /ask (in-proc)   {percentiles(samples)}")


if __name__ == "__main__":
    main()
