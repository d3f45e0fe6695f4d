"""Durability: a process adding and deleting documents is killed with SIGKILL at random moments;
after each kill a fresh open finds a consistent index holding every acknowledged document and
none whose deletion was acknowledged."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.embedded_store import DATABASE
from service.engine import build_engine
from service.settings import Settings

from .fake_embedder import HashEmbedder

pytestmark = pytest.mark.slow

KILLS = 20
SCRIPT = Path(__file__).with_name("ingest_until_killed.py")


def test_index_survives_sigkill_during_writes(tmp_path: Path, corpus_dir: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(corpus_dir, corpus)
    rng = random.Random(7)
    acknowledged: set[str] = set()
    deleted: set[str] = set()
    deleting: set[str] = set()  # asked to delete; gone only if the delete was acknowledged
    # Checkpoints every few documents, so that kills land in them too.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(SCRIPT.parent.parent),
           "FOOTNOTE_CHECKPOINT_MIN_VECTORS": "20"}
    for kill in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(corpus), str(index), str(kill * 1000)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 1.0))  # somewhere inside a write, a delete or a file move
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        acknowledged |= {line.split()[1] for line in out.splitlines() if line.startswith("ack ")}
        deleted |= {line.split()[1] for line in out.splitlines() if line.startswith("deleted ")}
        deleting |= {line.split()[1] for line in out.splitlines() if line.startswith("deleting ")}

        with sqlite3.connect(index / DATABASE) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        engine = build_engine(Settings(corpus_dir=corpus, index_dir=index), embedder=HashEmbedder())
        engine.load()
        stored = {d.source: d for d in engine.documents()}
        missing = acknowledged - deleting - set(stored)
        assert not missing, f"after kill {kill + 1}: acknowledged but lost: {sorted(missing)}"
        assert not deleted & set(stored), f"after kill {kill + 1}: deleted but back: {sorted(deleted & set(stored))}"
        counts = engine.store.counts()
        assert counts.documents == len(stored) and counts.chunks == sum(d.chunks for d in stored.values())
        for source in sorted(acknowledged - deleting)[-3:]:  # the newest are searchable, by their own words
            number = source[4:8].lstrip("0") or "0"
            found = engine.index.keyword(f"relief convoy {number}", 1)
            assert engine.store.chunks(found.ids.tolist())[int(found.ids[0])].source == source
    assert len(acknowledged) >= KILLS  # the kills did land mid-run, after real work
