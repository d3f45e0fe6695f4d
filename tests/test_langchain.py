"""FootnoteRetriever as LangChain apps use it: LangChain's own standard retriever tests (local and
over HTTP), exact offsets, and a retriever that sees writes made after it was built."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests
from pydantic import SecretStr

from service.api import create_app
from service.engine import Engine, build_engine
from service.langchain_retriever import FootnoteRetriever
from service.models import Filters
from service.settings import Settings

from .fake_openai import Running

KEY = "lc-key-81d0"


class FootnoteStandard(RetrieversIntegrationTests):
    """LangChain's suite over a ``searcher`` a subclass provides (not collected itself)."""

    searcher: object

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return FootnoteRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"searcher": self.searcher}

    @property
    def retriever_query_example(self) -> str:
        return "Which resolutions were cited?"


class TestLocalRetrieverStandard(FootnoteStandard):
    @pytest.fixture(autouse=True)
    def _searcher(self, engine: Engine) -> None:
        self.searcher = engine


@pytest.fixture(scope="module")
def server(engine: Engine) -> Iterator[str]:
    """A real server (uvicorn on 127.0.0.1) with keys, over the session's index."""
    keyed = build_engine(engine.settings.model_copy(update={"api_keys": SecretStr(KEY)}), embedder=engine.embedder)
    with Running(create_app(engine=keyed)) as url:
        yield url


class TestRemoteRetrieverStandard(FootnoteStandard):
    @pytest.fixture(autouse=True)
    def _searcher(self, server: str) -> None:
        self.searcher = FootnoteRetriever.from_url(server, api_key=KEY).searcher


def test_documents_carry_exact_offsets_locally_and_remotely(engine: Engine, server: str) -> None:
    for retriever in (FootnoteRetriever(searcher=engine, k=3), FootnoteRetriever.from_url(server, api_key=KEY, k=3)):
        docs = retriever.invoke("What does PRC stand for?")
        assert len(docs) == 3
        for doc in docs:
            text = engine.document(doc.metadata["source"]).text
            assert text[doc.metadata["start"] : doc.metadata["end"]] == doc.page_content
        assert "People’s Republic of China" in docs[0].page_content


def test_per_call_filters(engine: Engine) -> None:
    only = "004_db5665c2341ed43f.txt"
    docs = FootnoteRetriever(searcher=engine).invoke("North Korea", filters=Filters(source=[only]), k=2)
    assert len(docs) == 2 and {d.metadata["source"] for d in docs} == {only}


def test_a_retriever_sees_later_uploads(tmp_path: Path, corpus_dir: Path, embedder) -> None:  # noqa: ANN001
    shutil.copytree(corpus_dir, tmp_path / "corpus")
    settings = Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", state_dir=tmp_path / "state")
    engine = build_engine(settings, embedder=embedder)
    engine.sync()
    retriever = FootnoteRetriever(searcher=engine, k=1)
    engine.add([("owls.txt", b"Barn owls roost in the bell tower of Saint Oswald's church.")])
    assert retriever.invoke("Where do the barn owls roost?")[0].metadata["source"] == "owls.txt"
    with TestClient(create_app(engine=engine)) as client:  # and an upload over HTTP, to a served engine
        client.post("/documents", files=[("files", ("swifts.txt", b"Common swifts sleep on the wing over Lisbon."))])
        assert retriever.invoke("Where do swifts sleep?")[0].metadata["source"] == "swifts.txt"


def test_from_settings_opens_an_index_folder(settings: Settings, engine: Engine) -> None:
    retriever = FootnoteRetriever.from_settings(settings.model_copy(update={"index_dir": Path("/nonexistent")}),
                                                index_dir=settings.index_dir, k=2)
    assert retriever.searcher.settings.index_dir == settings.index_dir
    assert [d.metadata["source"] for d in retriever.invoke("Which resolutions were cited?")] == [
        p.source for p in engine.search("Which resolutions were cited?", 2)]
