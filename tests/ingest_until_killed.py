"""Run by test_crash.py as a subprocess: ingest documents one by one forever, printing
"ack NAME" only after each add returns (i.e. after the write is durably committed)."""

from __future__ import annotations

import sys
from pathlib import Path

from service.engine import build_engine
from service.settings import Settings
from tests.fake_embedder import HashEmbedder


def main(corpus: str, index: str, first: int) -> None:
    # Storage is what is under test: the hash embedder makes a write milliseconds, so kills land
    # in every phase of it (and in checkpoints, which test_crash.py makes frequent).
    engine = build_engine(Settings(corpus_dir=Path(corpus), index_dir=Path(index)), embedder=HashEmbedder())
    engine.sync()
    print("ready", flush=True)
    i = first
    while True:
        name = f"doc-{i:04d}.txt"
        text = f"Dispatch {i}. The relief convoy {i} reached checkpoint {i * 7} before nightfall. " * 3
        engine.add([(name, text.encode())])
        print(f"ack {name}", flush=True)
        if i % 2 == 1:
            print(f"deleting doc-{i - 1:04d}.txt", flush=True)
            engine.delete(f"doc-{i - 1:04d}.txt")
            print(f"deleted doc-{i - 1:04d}.txt", flush=True)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
