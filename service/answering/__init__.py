"""Answerers: from a question and what was retrieved for it (once per request), an Answer."""

from __future__ import annotations

from typing import Protocol

from ..models import Answer
from ..retrieval import Retrieval


class Answerer(Protocol):
    def answer(self, question: str, found: Retrieval) -> Answer:
        """The answer with its citations, or a refusal (``answerable`` false, no citations)."""
        ...
