"""Durability: a process ingesting documents is killed with SIGKILL at random moments; after each
kill a fresh load finds a consistent index holding every acknowledged document."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.store import IndexStore

pytestmark = pytest.mark.slow

KILLS = 20
SCRIPT = Path(__file__).with_name("ingest_until_killed.py")


def test_index_survives_sigkill_during_ingest(tmp_path: Path, corpus_dir: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(corpus_dir, corpus)
    rng = random.Random(7)
    acknowledged: set[str] = set()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(SCRIPT.parent.parent)}
    for kill in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(corpus), str(index), str(kill * 1000)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # Somewhere inside the next few ingests: embedding, writing data files, or the manifest swap.
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        acknowledged |= {line.split()[1] for line in out.splitlines() if line.startswith("ack ")}

        store = IndexStore(index)
        if not store.exists():  # killed while the first ingest was building the index
            assert not acknowledged
            continue
        snapshot = store.load()  # verifies every checksum in the manifest
        assert snapshot.vectors.ntotal == len(snapshot.sentences)
        assert {c.source for c in snapshot.chunks} == set(snapshot.documents)
        missing = acknowledged - set(snapshot.documents)
        assert not missing, f"after kill {kill + 1}: acknowledged but lost: {sorted(missing)}"
    assert len(acknowledged) >= KILLS  # the kills did land mid-run, after real work
