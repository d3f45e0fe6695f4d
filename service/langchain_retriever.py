"""LangChain's face of Footnote: a standard ``BaseRetriever`` over the same search as `/ask`, local
(an engine, from settings or an index folder) or remote (a running server, by URL). Each
``Document`` carries the passage's exact offsets, so a chain can quote and verify it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from .models import Filters, Passage
from .settings import Settings


class Searcher(Protocol):
    """What the retriever needs: an ``Engine`` or a ``RemoteEngine``."""

    def search(self, question: str, top_k: int = 5, filters: Filters | None = None) -> list[Passage]: ...


class FootnoteRetriever(BaseRetriever):
    """``invoke(query, k=3, filters=Filters(...))``: the ``k`` best passages. Every call searches
    the index as it is then (uploads made since are seen)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Any = Field(description="An Engine or RemoteEngine (anything with Footnote's `search`).")
    k: int = Field(5, ge=1, le=50, description="Passages per call unless the call gives its own `k`.")
    filters: Filters | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, index_dir: Path | None = None,
                      **kwargs: Any) -> FootnoteRetriever:
        """Over a local index: ``settings`` (default: from the environment), or the index in
        ``index_dir``. The index is built from the corpus folder if there is none yet."""
        from .engine import build_engine

        settings = settings or Settings()
        if index_dir is not None:
            settings = settings.model_copy(update={"index_dir": Path(index_dir)})
        engine = build_engine(settings)
        engine.start()
        return cls(searcher=engine, **kwargs)

    @classmethod
    def from_url(cls, url: str, api_key: str | None = None, **kwargs: Any) -> FootnoteRetriever:
        """Over a running Footnote server (`POST /search`), with one of its API keys if it has any."""
        from .client import RemoteEngine

        return cls(searcher=RemoteEngine(url, api_key), **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None,
        filters: Filters | None = None,
    ) -> list[Document]:
        passages: list[Passage] = self.searcher.search(query, k or self.k, filters or self.filters)
        return [
            Document(
                page_content=p.text,
                id=f"{p.source}#{p.start}-{p.end}",
                metadata={"source": p.source, "chunk_id": p.chunk_id, "start": p.start, "end": p.end,
                          "page": p.page, "score": p.score, "rank": p.rank},
            )
            for p in passages
        ]
