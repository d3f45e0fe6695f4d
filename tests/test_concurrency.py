"""16 threads asking, adding and deleting at once on one engine: nothing raises, every answer to a
fixed question equals the single-threaded one, and the index ends holding exactly what was
acknowledged."""

from __future__ import annotations

import shutil
import threading
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from service.engine import Engine, build_engine
from service.settings import Settings

from .conftest import CORPUS

pytestmark = pytest.mark.slow

THREADS = 16
OPERATIONS = 192
QUESTION = "Which resolutions were cited?"
# Unrelated to the question, so adding them cannot change its answer.
TOPICS = ["the ferry timetable to Ostrava", "a bakery's sourdough starter", "tidal patterns near Brest",
          "the chess club's spring tournament", "repairs to the village bridge", "a violin maker's varnish"]


def test_ask_ingest_and_delete_from_16_threads(engine: Engine, tmp_path: Path) -> None:
    shutil.copytree(CORPUS, tmp_path / "corpus", ignore=shutil.ignore_patterns("*.md"))
    settings = Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", state_dir=tmp_path / "state")
    shared = build_engine(settings, embedder=engine.embedder)
    shared.sync()
    expected = shared.ask(QUESTION)
    added: deque[str] = deque()
    deleted: list[str] = []
    done: Counter[str] = Counter()
    lock = threading.Lock()

    def operate(i: int) -> None:
        kind = ("ask", "ask", "ask", "add", "delete", "search")[i % 6]
        if kind == "add":
            name = f"note_{i:03d}.txt"
            topic = TOPICS[i % len(TOPICS)]
            shared.add([(name, f"Note {i} on {topic}.\n\nIt was discussed at length on day {i}.".encode())])
            added.append(name)
        elif kind == "delete":
            try:
                name = added.popleft()
            except IndexError:
                kind = "ask"
            else:
                shared.delete(name)
                with lock:
                    deleted.append(name)
        if kind == "ask":
            answer = shared.ask(QUESTION)
            assert (answer.answer, answer.citations) == (expected.answer, expected.citations), f"operation {i}"
        elif kind == "search":
            assert shared.search(QUESTION, top_k=3)[0].source == expected.citations[0].source
        with lock:
            done[kind] += 1

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(operate, i) for i in range(OPERATIONS)]:
            future.result()  # re-raises any failure of a thread

    assert sum(done.values()) == OPERATIONS and done["add"] == OPERATIONS // 6 and done["ask"] >= OPERATIONS // 2
    print(f"\n{THREADS} threads: {dict(done)}")
    # What the engine serves, what is on disk, and the corpus folder all agree.
    kept = {p.name for p in CORPUS.glob("*.txt")} | set(added)
    assert {d.source for d in shared.documents()} == kept
    assert {d.source for d in build_engine(settings, embedder=engine.embedder).documents()} == kept  # on disk
    assert {p.name for p in settings.corpus_dir.iterdir()} == kept
    assert not set(deleted) & kept
