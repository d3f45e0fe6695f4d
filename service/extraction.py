"""Reading untrusted files under a budget: formats with parsers (PDF, HTML, .docx) are read in
worker processes with a time limit and a memory cap, so a hostile file costs its budget and a
422, never a server core for minutes or the server's memory.

The workers are plain ``python -m service.extraction`` processes (not multiprocessing's, which
would re-import the caller's main module in each). They live between files; one that runs over
its time or dies is killed and replaced."""

from __future__ import annotations

import os
import pickle
import resource
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

from .errors import CorpusError, InvalidDocument
from .loaders import TEXT_SUFFIXES, Extracted, extract, suffix_of


@dataclass(frozen=True)
class Budget:
    seconds: float
    memory_bytes: int


class _Worker:
    def __init__(self, memory_bytes: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.extraction", str(memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self.replies = Connection(os.dup(self.process.stdout.fileno()), writable=False)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        for end in (self.requests, self.replies, self.process.stdin, self.process.stdout):
            if end is not None:
                end.close()


class Extractor:
    """``extract`` with a budget. At most ``workers`` files are read at once; the rest wait."""

    def __init__(self, budget: Budget, workers: int) -> None:
        self.budget = budget
        self._slots = threading.BoundedSemaphore(workers)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, data: bytes) -> Extracted:
        if suffix_of(name) in TEXT_SUFFIXES:  # decoding is linear: no parser to exhaust
            return extract(name, data)
        with self._slots:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            outcome = self._ask(worker, name, data)
        if isinstance(outcome, CorpusError):
            raise outcome
        return outcome

    def _ask(self, idle: _Worker | None, name: str, data: bytes) -> Extracted | CorpusError:
        request = pickle.dumps((name, data))
        if idle is not None:
            try:
                idle.requests.send_bytes(request)
            except OSError:  # it died while idle: a fresh one takes the file
                idle.stop()
                idle = None
        worker = idle or _Worker(self.budget.memory_bytes)
        try:
            if idle is None:
                worker.requests.send_bytes(request)
            if not worker.replies.poll(self.budget.seconds):
                raise InvalidDocument(f"{name}: reading it took over {self.budget.seconds:g} s; refused")
            outcome: Extracted | CorpusError = pickle.loads(worker.replies.recv_bytes())
        except (EOFError, BrokenPipeError):  # it died without answering: the memory cap, or a parser's crash
            outcome = InvalidDocument(
                f"{name}: reading it needed over {self.budget.memory_bytes // 2**20} MB of memory; refused")
        except BaseException:
            worker.stop()
            raise
        if isinstance(outcome, Extracted):
            with self._lock:
                self._idle.append(worker)
        else:  # a worker that failed once is not trusted with the next file
            worker.stop()
        return outcome

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


def _serve(memory_bytes: int) -> None:
    """The worker's loop: a file in, its text (or the error) out, until the server closes the pipe."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    requests = Connection(os.dup(0), writable=False)
    replies = Connection(os.dup(1), readable=False)
    # Anything a parser prints must not land in the reply pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    while True:
        try:
            name, data = pickle.loads(requests.recv_bytes())
        except EOFError:
            return
        outcome: Extracted | CorpusError
        try:
            outcome = extract(name, data)
        except CorpusError as exc:
            outcome = exc
        except MemoryError:
            outcome = InvalidDocument(f"{name}: reading it needed over {memory_bytes // 2**20} MB of memory; refused")
        except Exception as exc:  # a parser's own bug on a malformed file is still the file's problem
            outcome = InvalidDocument(f"{name}: not readable ({type(exc).__name__})")
        replies.send_bytes(pickle.dumps(outcome))


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
