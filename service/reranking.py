"""Optional second-stage reranking of retrieved passages (off by default: no cross-encoder weights
ship with Footnote; users who have one name it in ``FOOTNOTE_RERANKER``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from .errors import FootnoteError

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class Reranker(Protocol):
    name: str

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        """One relevance score per passage; higher is better."""
        ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local path (or a model already in the Hugging
    Face cache), loaded on first use."""

    def __init__(self, name: str, device: str = "cpu") -> None:
        self.name = name
        self.device = device
        self._model: CrossEncoder | None = None
        self._lock = threading.Lock()

    def _load(self) -> CrossEncoder:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import CrossEncoder

                try:
                    self._model = CrossEncoder(self.name, device=self.device, local_files_only=True)
                except (OSError, ValueError) as exc:
                    raise FootnoteError(f"cannot load reranker {self.name!r}: give a local path") from exc
            return self._model

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        model = self._load()
        with self._lock:  # a shared fast tokenizer must not be used from two threads at once
            scores = model.predict([(question, p) for p in passages], show_progress_bar=False)
        return [float(s) for s in scores]
