"""A bounded load test of a real `footnote serve` on loopback: 50 clients for 60 s on the seed
corpus (each asking a question a second: 50 people typing at once, far more than a team asks), with /health timed
from another process meanwhile. Figures are printed; the bounds are the service's promises."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from bench.load import run_load
from service.settings import Settings

from .test_cli import FOOTNOTE

pytestmark = pytest.mark.slow

CLIENTS, SECONDS, PAUSE = 50, float(os.environ.get("FOOTNOTE_LOAD_SECONDS", 60)), 1.0


def test_50_clients_for_a_minute(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "FOOTNOTE_CORPUS_DIR": str(settings.corpus_dir), "FOOTNOTE_INDEX_DIR": str(settings.index_dir),
           "FOOTNOTE_STATE_DIR": str(tmp_path), "FOOTNOTE_PORT": str(port), "FOOTNOTE_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([FOOTNOTE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
        run_load(url, 5, 3)  # warm up: first requests pay for lazy set-up
        result = run_load(url, CLIENTS, SECONDS, PAUSE, pid=server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("\n" + result.summary())
    assert result.failures == []
    assert len(result.latencies) > CLIENTS * SECONDS / 2  # the clients were answered all along
    assert result.p(99) < 1000, "/ask p99 under 1 s"
    assert result.p(99, result.health) < 50, "/health p99 under 50 ms"
