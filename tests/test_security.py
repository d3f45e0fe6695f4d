"""Keys on every route (read from the app's own OpenAPI schema, so a new route cannot slip
through), the per-key rate limit, and secrets that never reach a log line or a response body."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.engine import Engine, build_engine
from service.logs import RedactingFormatter
from service.settings import Settings

from .conftest import CANARY_KEY
from .fake_openai import FakeLLM, Reply
from .fake_slack import FakeSlack
from .test_cli import FOOTNOTE
from .test_llm import QUESTION, cite
from .test_slack import event_body, mention, signed

KEYS = ("k1-3f9a", "k2-77c0")
MALFORMED = [None, "Bearer wrong-key", f"Basic {KEYS[0]}", "Bearer", KEYS[0], f"Bearer {KEYS[0]} extra",
             f"bearer{KEYS[0]}", "Bearer " + "x" * 5000]


@pytest.fixture(scope="module")
def secured(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        corpus_dir=engine.settings.corpus_dir, index_dir=engine.settings.index_dir,
        state_dir=tmp_path_factory.mktemp("state"), api_keys=",".join(KEYS),
        slack_bot_token="xoxb-unused", slack_signing_secret="unused-secret", slack_api_url="http://127.0.0.1:9/api/",
    )
    with TestClient(create_app(engine=build_engine(settings, embedder=engine.embedder))) as client:
        yield client


def operations(client: TestClient) -> list[tuple[str, str]]:
    schema = client.get("/openapi.json").json()
    return [(method.upper(), path.replace("{source}", "nope.txt")) for path, ops in schema["paths"].items() for method in ops]


def test_every_route_but_health_refuses_a_missing_wrong_or_malformed_key(secured: TestClient) -> None:
    ops = operations(secured)
    assert len(ops) >= 10 and ("POST", "/slack/events") in ops
    for method, path in ops:
        for header in MALFORMED:
            response = secured.request(method, path, headers={"Authorization": header} if header else {})
            if path == "/health":
                assert response.status_code == 200, (method, path, header)
            else:
                # /slack/events takes no API key: it is Slack's signature that is missing there.
                assert response.status_code == 401, (method, path, header, response.status_code)
                assert "WWW-Authenticate" in response.headers or path == "/slack/events"


def test_every_route_opens_to_either_key(secured: TestClient) -> None:
    for method, path in operations(secured):
        if path == "/slack/events":
            continue
        for key in KEYS:
            response = secured.request(method, path, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code != 401, (method, path)


def test_the_docs_stay_readable_without_a_key(secured: TestClient) -> None:
    assert secured.get("/docs").status_code == 200 and secured.get("/openapi.json").status_code == 200


def test_the_docs_can_be_turned_off(engine: Engine) -> None:
    settings = Settings(corpus_dir=engine.settings.corpus_dir, index_dir=engine.settings.index_dir, docs_enabled=False)
    with TestClient(create_app(engine=build_engine(settings, embedder=engine.embedder))) as client:
        assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404


def test_the_rate_limit_is_per_key_with_retry_after(engine: Engine) -> None:
    settings = Settings(corpus_dir=engine.settings.corpus_dir, index_dir=engine.settings.index_dir,
                        api_keys=",".join(KEYS), rate_limit_per_minute=30, rate_limit_burst=3)
    with TestClient(create_app(engine=build_engine(settings, embedder=engine.embedder))) as client:
        first = {"Authorization": f"Bearer {KEYS[0]}"}
        assert [client.get("/documents", headers=first).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/documents", headers=first)
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 2
        assert "rate limit" in refused.json()["detail"]
        # Another key has its own allowance; /health is never counted.
        assert client.get("/documents", headers={"Authorization": f"Bearer {KEYS[1]}"}).status_code == 200
        assert all(client.get("/health").status_code == 200 for _ in range(10))
        # Without a key, callers are told apart by address, and refused the same way.
        statuses = [client.get("/documents").status_code for _ in range(4)]
        assert statuses[:3] == [401] * 3 and statuses[3] == 429


def test_the_log_formatter_blanks_secrets_in_messages_and_tracebacks() -> None:
    formatter = RedactingFormatter("%(message)s", ["sk-live-1234", "sk-live-1234-longer"])
    try:
        raise RuntimeError("upstream said: bad key sk-live-1234-longer")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "calling with %s", ("sk-live-1234",), None)
        record.exc_info = __import__("sys").exc_info()
    text = formatter.format(record)
    assert "sk-live-1234" not in text
    assert "calling with [redacted]" in text and "RuntimeError: upstream said: bad key [redacted]" in text


@pytest.mark.slow
def test_no_secret_reaches_the_logs_or_a_response(
    settings: Settings, fake_llm: FakeLLM, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """A real `footnote serve` at DEBUG with canary secrets everywhere, driven through every face:
    its whole output and every response body are searched for them."""
    canaries = {
        "FOOTNOTE_API_KEYS": "fn-canary-api-key-5a1", "FOOTNOTE_LLM_API_KEY": CANARY_KEY,
        "FOOTNOTE_SLACK_BOT_TOKEN": "xoxb-canary-bot-9e2", "FOOTNOTE_SLACK_SIGNING_SECRET": "canary-signing-secret-c3",
    }
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ, **canaries, "FOOTNOTE_LOG_LEVEL": "DEBUG", "FOOTNOTE_PORT": str(port),
        "FOOTNOTE_CORPUS_DIR": str(settings.corpus_dir), "FOOTNOTE_INDEX_DIR": str(settings.index_dir),
        "FOOTNOTE_STATE_DIR": str(tmp_path / "state"), "FOOTNOTE_LLM_BASE_URL": f"{fake_llm.url}/v1",
        "FOOTNOTE_LLM_TIMEOUT": "2", "FOOTNOTE_LLM_MAX_RETRIES": "0", "FOOTNOTE_SLACK_API_URL": f"{fake_slack.url}/api/",
    }
    fake_slack.reset()
    server = subprocess.Popen([FOOTNOTE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    bodies: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {canaries['FOOTNOTE_API_KEYS']}"})
        deadline = time.monotonic() + 120
        while True:
            try:
                if http.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
        fake_llm.script(cite("2270", "Resolutions 2270 (2016) were cited [n]."), Reply(status=500),
                        Reply("Which resolutions?"), Reply("too slow", delay=5))
        calls = [
            http.post("/ask", json={"question": QUESTION, "mode": "llm"}),
            http.post("/ask", json={"question": QUESTION, "mode": "llm"}),  # a 500 upstream
            http.post("/ask", json={"question": QUESTION, "mode": "llm", "history": [{"question": "q", "answer": "a"}]}),
            http.post("/ask/stream", json={"question": QUESTION}),
            http.post("/v1/chat/completions", json={"model": "footnote", "messages": [{"role": "user", "content": QUESTION}]}),
            http.post("/ask", json={"question": " "}),
            http.get("/documents/nope.txt"),
            http.get("/feedback"),
            http.post("/documents", files={"files": ("bad.exe", b"MZ")}),
            http.get("/documents", headers={"Authorization": f"Bearer {canaries['FOOTNOTE_API_KEYS']}x"}),
            http.get("/documents", headers={"Authorization": f"Basic {canaries['FOOTNOTE_API_KEYS']}"}),
        ]
        body = event_body(mention(QUESTION))
        calls.append(http.post("/slack/events", content=body,
                               headers=signed(body, "application/json", secret=canaries["FOOTNOTE_SLACK_SIGNING_SECRET"])))
        calls.append(http.post("/slack/events", content=body, headers=signed(body, "application/json", secret="forged")))
        fake_slack.wait_for("chat.postMessage")
        bodies = [c.text for c in calls]
        assert [c.status_code for c in calls] == [200, 200, 200, 200, 200, 422, 404, 200, 415, 401, 401, 200, 401]
        # The LLM key went to the model endpoint, and the bot token to Slack: they were used.
        assert any(r["authorization"] == f"Bearer {CANARY_KEY}" for r in fake_llm.requests)
        assert fake_slack.made("chat.postMessage")[0]["authorization"] == f"Bearer {canaries['FOOTNOTE_SLACK_BOT_TOKEN']}"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "DEBUG" in output and "POST /ask" in output  # the log was captured at its most verbose
    for name, secret in canaries.items():
        assert secret not in output, f"{name} in the server log"
        assert not any(secret in b for b in bodies), f"{name} in a response body"
    assert json.dumps(bodies).count("Traceback") == 0
