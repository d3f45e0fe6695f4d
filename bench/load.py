"""A bounded load generator for a running Footnote server: N concurrent clients asking for a fixed
duration (each sends its next question when the last is answered, after a random pause averaging
`--think` seconds), a probe in its own process
timing `/health` meanwhile, and the server's RSS before and after.

    python -m bench.load --url http://127.0.0.1:8000 --clients 50 --seconds 60 [--think 0.25] [--pid PID]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import numpy as np

GOLD = Path(__file__).resolve().parent.parent / "tests/data/gold_qa.jsonl"


@dataclass
class LoadResult:
    clients: int
    seconds: float
    think: float
    latencies: list[float] = field(default_factory=list)  # /ask, seconds
    health: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    rss_before_mb: float | None = None
    rss_after_mb: float | None = None

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies) / self.seconds

    def p(self, q: float, samples: list[float] | None = None) -> float:
        data = self.latencies if samples is None else samples
        return float(np.percentile(np.array(data) * 1000, q)) if data else float("nan")

    def summary(self) -> str:
        drift = (
            f", RSS {self.rss_before_mb:.0f} -> {self.rss_after_mb:.0f} MB"
            if self.rss_before_mb is not None and self.rss_after_mb is not None else ""
        )
        return (
            f"{self.clients} clients x {self.seconds:.0f} s (pause {self.think:g} s): {len(self.latencies)} answers "
            f"({self.requests_per_s:.1f}/s), {len(self.failures)} failed; /ask p50 {self.p(50):.0f} ms, "
            f"p99 {self.p(99):.0f} ms; /health p99 {self.p(99, self.health):.1f} ms (n={len(self.health)}){drift}"
        )


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def questions() -> list[str]:
    return [json.loads(line)["question"] for line in GOLD.open()]


async def _run(url: str, clients: int, seconds: float, think: float, headers: dict[str, str]) -> LoadResult:
    result = LoadResult(clients, seconds, think)
    asked = questions()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits, headers=headers) as http:

        async def client(n: int) -> None:
            i = n
            # Pauses are random around `think` (and so is the first), so that clients do not all
            # ask in the same instant, as people do not.
            await asyncio.sleep(random.uniform(0, think))
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await http.post("/ask", json={"question": asked[i % len(asked)]})
                    if response.status_code != 200:
                        result.failures.append(f"{response.status_code} {response.text[:100]}")
                    else:
                        result.latencies.append(time.perf_counter() - started)
                except httpx.HTTPError as exc:
                    result.failures.append(repr(exc))
                i += clients
                await asyncio.sleep(random.uniform(0, 2 * think))

        await asyncio.gather(*(client(n) for n in range(clients)))
    return result


def _probe(url: str, seconds: float, out: Connection) -> None:
    """Times /health from its own process, so the load generator's own busy event loop does not
    count against the server."""
    times: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as http:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            failures += http.get("/health").status_code != 200
            times.append(time.perf_counter() - started)
            time.sleep(0.1)
    out.send((times, failures))


def run_load(url: str, clients: int, seconds: float, think: float = 0.0, pid: int | None = None,
             headers: dict[str, str] | None = None) -> LoadResult:
    before = rss_mb(pid)
    receive, send = multiprocessing.Pipe(duplex=False)
    probe = multiprocessing.get_context("spawn").Process(target=_probe, args=(url, seconds, send))
    probe.start()
    result = asyncio.run(_run(url, clients, seconds, think, headers or {}))
    result.health, health_failures = receive.recv()
    probe.join()
    result.failures.extend(["/health failed"] * health_failures)
    result.rss_before_mb, result.rss_after_mb = before, rss_mb(pid)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=0.0, help="Seconds a client pauses between questions.")
    parser.add_argument("--pid", type=int, help="The server's process id, for its RSS.")
    parser.add_argument("--key", help="An API key, if the server needs one.")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    print(run_load(args.url, args.clients, args.seconds, args.think, args.pid, headers).summary())


if __name__ == "__main__":
    main()
