"""Footnote's speed beside its limits, on SQuAD v1.1 dev paragraphs (../shared/bench).

    python -m bench.perf [--paragraphs 2067] [--questions 200] [--rounds 3] [--seconds 20]

1. Ingest: `Engine.sync` (what `footnote index` runs: chunking, sentence embedding, BM25, the
   atomic save) against the limit, the same sentence texts through `SentenceTransformer.encode`
   (torch) alone, and against the configured backend's embedding alone (ONNX Runtime by
   default), in this process; medians of `rounds` alternating runs; peak RSS.
2. Query floor: embedding the question + the FAISS search + the BM25 search alone, per question,
   with torch's `encode([q])` and with the configured backend; against it `Engine.ask` (the full
   extractive answer) in process and `/ask` over HTTP (uvicorn, one client), and LangChain's
   stock `similarity_search` (torch) on the same questions when the `bench` extra is installed.
3. Load: 1, 8 and 32 clients against `footnote serve` (no pauses), with /health timed from
   another process; the target at 8 clients is 0.8 x cores / (CPU seconds per answer).
4. Startup: `footnote serve` to a healthy /health, index already built.

Prints the table and writes it, with the machine it ran on, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from bench.datasets import load_squad
from bench.load import run_load
from service.api import create_app
from service.chunking import chunk_document, chunk_sentences
from service.documents import load_documents
from service.embedding import SentenceTransformerEmbedder
from service.engine import Engine, build_engine
from service.retrieval import SearchIndex
from service.settings import Settings

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FOOTNOTE = str(Path(sys.executable).with_name("footnote"))

Row = tuple[str, str, str, str]  # what, measured, limit or reference, verdict


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p95_ms(samples: list[float]) -> float:
    return float(np.percentile(np.array(samples) * 1000, 95))


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, ("---",) * len(header), *rows])


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def ingest(corpus: Path, work: Path, rounds: int) -> tuple[list[Row], Engine, SentenceTransformerEmbedder]:
    settings = Settings(corpus_dir=corpus, index_dir=work / "index", state_dir=work / "state", rate_limit_per_minute=0)
    engine = build_engine(settings)
    engine.embedder.warm_up()
    reference = SentenceTransformerEmbedder(settings.embedding_model, batch_size=settings.embed_batch_size)
    documents = load_documents([corpus])
    chunks = {d.source: chunk_document(d, settings.chunk_size, settings.chunk_overlap) for d in documents}
    texts = [d.text[s.start : s.end] for d in documents for s in chunk_sentences(d, chunks[d.source])]
    n_chunks = sum(len(c) for c in chunks.values())
    encode, embed, full = [], [], []
    for _ in range(rounds):  # alternating, so drift on a shared machine hits all alike
        encode.append(timed(lambda: reference.model.encode(
            texts, batch_size=settings.embed_batch_size, normalize_embeddings=True, show_progress_bar=False)))
        embed.append(timed(lambda: engine.embedder.embed(texts)))
        full.append(timed(lambda: engine.sync(rebuild=True)))
    limit, alone, ours = statistics.median(encode), statistics.median(embed), statistics.median(full)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    backend = settings.embedding_backend
    return [
        ("ingest (footnote index)", f"{n_chunks / ours:.0f} chunks/s ({len(texts) / ours:.0f} sentences/s)",
         f"SentenceTransformer.encode (torch) alone: {n_chunks / limit:.0f} chunks/s",
         f"{limit / ours:.2f} of the limit (target >= 0.9)"),
        (f"embedding alone ({backend} backend)", f"{n_chunks / alone:.0f} chunks/s",
         "the rest of ingest: chunking, BM25, the atomic save", f"ingest = {alone / ours:.2f} of embedding alone"),
        ("ingest peak RSS", f"{peak:.0f} MB", f"{len(documents)} docs, {n_chunks} chunks, {len(texts)} sentences", ""),
    ], engine, reference


def serve_in_thread(engine: Engine) -> tuple[uvicorn.Server, str]:
    server = uvicorn.Server(uvicorn.Config(create_app(engine=engine), host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def floor(index: SearchIndex, embed: Callable[[list[str]], np.ndarray], questions: list[str], depth: int) -> list[float]:
    out = []
    for q in questions:
        started = time.perf_counter()
        vector = embed([q])[0]
        index.dense(vector, depth)
        index.keyword(q, depth)
        out.append(time.perf_counter() - started)
    return out


def queries(
    engine: Engine, reference: SentenceTransformerEmbedder, questions: list[str], documents: dict[str, str]
) -> list[Row]:
    index = engine.index
    for q in questions:  # warm-up: memoized term look-ups fill on a question's first ask
        engine.ask(q)
    torch_floor = floor(index, reference.embed, questions, engine.settings.candidates)
    floor_ = floor(index, engine.embedder.embed, questions, engine.settings.candidates)
    asks = [timed(lambda q=q: engine.ask(q)) for q in questions]
    server, url = serve_in_thread(engine)
    with httpx.Client(base_url=url, timeout=30) as http:
        over_http = [timed(lambda q=q: http.post("/ask", json={"question": q}).raise_for_status()) for q in questions]
    server.should_exit = True
    f50, t50 = median_ms(floor_), median_ms(torch_floor)
    backend = engine.settings.embedding_backend
    rows: list[Row] = [
        ("query floor, torch: SentenceTransformer.encode + FAISS + BM25",
         f"p50 {t50:.1f} ms, p95 {p95_ms(torch_floor):.1f} ms", "", ""),
        (f"query floor, {backend} backend: embed + FAISS + BM25", f"p50 {f50:.1f} ms, p95 {p95_ms(floor_):.1f} ms",
         "", f"{f50 / t50:.2f} x the torch floor"),
        ("Engine.ask (full cited answer)", f"p50 {median_ms(asks):.1f} ms, p95 {p95_ms(asks):.1f} ms",
         f"1.3 x floor = {1.3 * f50:.1f} ms ({backend}), {1.3 * t50:.1f} ms (torch)",
         f"{median_ms(asks) / f50:.2f} x the {backend} floor, {median_ms(asks) / t50:.2f} x the torch floor"),
        ("/ask over HTTP, one client", f"p50 {median_ms(over_http):.1f} ms, p95 {p95_ms(over_http):.1f} ms",
         f"floor + 3 ms = {f50 + 3:.1f} ms", f"floor + {median_ms(over_http) - f50:.1f} ms"),
    ]
    try:
        from bench.systems import LangChainStock
    except ImportError:
        return rows
    try:
        stock = LangChainStock(engine.settings.embedding_model, Path(tempfile.mkdtemp()))
    except ImportError:  # the bench extra is not installed
        return rows
    stock.build(documents)
    assert stock.store is not None
    searches = [timed(lambda q=q: stock.store.similarity_search(q, k=5)) for q in questions]
    rows.append(("LangChain stock similarity_search", f"p50 {median_ms(searches):.1f} ms, p95 {p95_ms(searches):.1f} ms",
                 "Footnote's full answer should be faster",
                 f"Footnote {median_ms(asks) / median_ms(searches):.2f} x its time"))
    return rows


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_and_load(corpus: Path, index: Path, work: Path, seconds: float) -> list[Row]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "FOOTNOTE_CORPUS_DIR": str(corpus), "FOOTNOTE_INDEX_DIR": str(index),
           "FOOTNOTE_STATE_DIR": str(work / "state"), "FOOTNOTE_PORT": str(port), "FOOTNOTE_LOG_LEVEL": "WARNING",
           "FOOTNOTE_RATE_LIMIT_PER_MINUTE": "0"}
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = subprocess.Popen([FOOTNOTE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        startup = time.perf_counter() - started
        run_load(url, 4, 3)  # warm-up
        rows: list[Row] = [("startup: footnote serve to healthy /health", f"{startup:.1f} s", "index already built", "")]
        cores = os.cpu_count() or 1
        per_answer = None
        for clients in (1, 8, 32):
            before = cpu_seconds(server.pid)
            result = run_load(url, clients, seconds, pid=server.pid)
            used = cpu_seconds(server.pid) - before
            if clients == 1:
                per_answer = used / max(len(result.latencies), 1)
            target = f"0.8 x {cores} / {per_answer * 1000:.1f} ms = {0.8 * cores / per_answer:.0f}/s" if per_answer else ""
            rows.append((
                f"load: {clients} client(s), {seconds:.0f} s",
                f"{result.requests_per_s:.1f}/s, p50 {result.p(50):.0f} ms, p99 {result.p(99):.0f} ms, "
                f"/health p99 {result.p(99, result.health):.1f} ms, {len(result.failures)} errors",
                target if clients == 8 else (f"{used / max(len(result.latencies), 1) * 1000:.1f} ms CPU per answer"
                                             if clients == 1 else ""),
                f"{result.requests_per_s / (0.8 * cores / per_answer):.2f} of target" if clients == 8 and per_answer else "",
            ))
        return rows
    finally:
        server.terminate()
        server.wait(timeout=30)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    import torch

    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, torch {torch.__version__}, no GPU used"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=2067, help="SQuAD paragraphs to index (of 2,067).")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20, help="Per load level.")
    args = parser.parse_args()
    squad = load_squad()
    documents = dict(list(squad.documents.items())[: args.paragraphs])
    questions = [q.text for q in squad.queries if next(iter(q.relevant)) in documents][: args.questions]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        corpus.mkdir()
        for doc_id, text in documents.items():
            (corpus / f"{doc_id.replace('/', '_')}.txt").write_text(text, encoding="utf-8")
        ingest_rows, engine, reference = ingest(corpus, work, args.rounds)
        rows += ingest_rows
        rows += queries(engine, reference, questions, documents)
        rows += serve_and_load(corpus, engine.settings.index_dir, work, args.seconds)
        shutil.rmtree(work / "state", ignore_errors=True)
    header = ("what", "measured", "limit / reference", "verdict")
    table = markdown_table(header, rows)
    report = (
        f"# Performance\n\nRegenerated by `python -m bench.perf --paragraphs {args.paragraphs} --questions "
        f"{args.questions} --rounds {args.rounds} --seconds {args.seconds:g}` on {time.strftime('%Y-%m-%d')}.\n\n"
        f"Machine: {machine()}. The load generator runs on the same machine.\n\n{table}\n"
    )
    print(report)
    RESULTS.write_text(report)


if __name__ == "__main__":
    main()
