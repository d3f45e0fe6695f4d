"""The systems compared on a benchmark: Footnote itself (built and queried through the same
engine as `footnote index` and `/ask`), LangChain's stock tutorial pipeline, and plain BM25."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Protocol

from service.embedding import resolve_model_path
from service.engine import Engine, build_engine
from service.settings import Settings

from .metrics import distinct


class System(Protocol):
    name: str

    def build(self, documents: dict[str, str]) -> None: ...

    def rank(self, question: str, depth: int) -> list[str]:
        """Document ids, best first, at most ``depth``."""
        ...


class Footnote:
    name = "Footnote"

    def __init__(self, workdir: Path, cache_dir: Path | None, **overrides: object) -> None:
        self.workdir = workdir
        self.settings = Settings(
            corpus_dir=workdir / "corpus", index_dir=workdir / "index",
            embedding_cache_dir=cache_dir, **overrides,  # type: ignore[arg-type]
        )
        self.engine: Engine = build_engine(self.settings)
        if self.settings.database_url:
            self.name = "Footnote (PostgreSQL)"

    def build(self, documents: dict[str, str]) -> None:
        corpus = self.settings.corpus_dir
        corpus.mkdir(parents=True, exist_ok=True)
        for doc_id, text in documents.items():
            (corpus / f"{doc_id}.txt").write_text(text, encoding="utf-8")
        self.engine.sync()

    def rank(self, question: str, depth: int) -> list[str]:
        passages = self.engine.search(question, top_k=min(3 * depth, 50))
        return distinct([p.source.removesuffix(".txt") for p in passages])[:depth]

    def answer(self, question: str, depth: int) -> tuple[str, list[str]]:
        """The extractive answer (as `/ask` gives it) and the document ranking it came from."""
        result = self.engine.ask(question, top_k=depth)
        return result.answer, distinct([p.source.removesuffix(".txt") for p in result.passages])


class LangChainStock:
    """The usual tutorial: RecursiveCharacterTextSplitter(1000, 200), HuggingFaceEmbeddings with
    the same MiniLM, FAISS.from_documents and similarity_search. Document embeddings go through
    LangChain's own CacheBackedEmbeddings so reruns skip the encoder."""

    name = "LangChain stock"

    def __init__(self, model: str, cache_dir: Path) -> None:
        from langchain_classic.embeddings import CacheBackedEmbeddings
        from langchain_classic.storage import LocalFileStore
        from langchain_huggingface import HuggingFaceEmbeddings

        base = HuggingFaceEmbeddings(model_name=resolve_model_path(model))
        self.embeddings = CacheBackedEmbeddings.from_bytes_store(
            base, LocalFileStore(str(cache_dir / "langchain")), namespace=model, key_encoder="sha256"
        )
        self.store = None

    def build(self, documents: dict[str, str]) -> None:
        from langchain_community.vectorstores import FAISS
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        docs = splitter.create_documents(list(documents.values()), [{"id": k} for k in documents])
        self.store = FAISS.from_documents(docs, self.embeddings)

    def rank(self, question: str, depth: int) -> list[str]:
        assert self.store is not None
        hits = self.store.similarity_search(question, k=3 * depth)
        return distinct([d.metadata["id"] for d in hits])[:depth]


class PlainBM25:
    """bm25s as its README shows it: English stop words, Snowball stemmer, default parameters."""

    name = "BM25 (bm25s)"

    def __init__(self) -> None:
        import bm25s
        import Stemmer

        self._bm25s = bm25s
        self.stemmer = Stemmer.Stemmer("english")
        self.model = bm25s.BM25()
        self.ids: list[str] = []

    def build(self, documents: dict[str, str]) -> None:
        self.ids = list(documents)
        tokens = self._bm25s.tokenize(list(documents.values()), stopwords="en", stemmer=self.stemmer, show_progress=False)
        self.model.index(tokens, show_progress=False)

    def rank(self, question: str, depth: int) -> list[str]:
        tokens = self._bm25s.tokenize([question], stopwords="en", stemmer=self.stemmer, show_progress=False)
        rows, _ = self.model.retrieve(tokens, k=min(depth, len(self.ids)), show_progress=False, n_threads=1)
        return [self.ids[int(r)] for r in rows[0]]


def workspace() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="footnote-bench-")

