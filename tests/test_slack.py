"""The Slack bot end to end: signed Slack payloads (signatures computed here with the signing secret,
as Slack computes them) go to `POST /slack/events` of the running app, Bolt verifies them, and the
bot's replies are read from a fake Slack Web API on 127.0.0.1 (tests/fake_slack.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.engine import Engine, build_engine
from service.models import Answer, Citation
from service.settings import Settings
from service.slack.blocks import ERROR, NOTHING_FOUND, answer_blocks

from .conftest import llm_settings
from .fake_openai import FakeLLM, Reply
from .fake_slack import BOT_USER, FakeSlack
from .test_cli import FOOTNOTE
from .test_llm import RESOLUTIONS, cite

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-canary-bot-token"
QUESTION = "which resolutions were cited?"


@pytest.fixture
def slack_factory(
    engine: Engine, fake_slack: FakeSlack, fake_llm: FakeLLM, tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """A running app with the Slack bot on, over the shared index (optionally in LLM mode)."""
    fake_slack.reset()
    clients: list[TestClient] = []

    def make(llm: bool = False, **overrides: Any) -> TestClient:
        values = {
            "slack_bot_token": BOT_TOKEN, "slack_signing_secret": SECRET, "slack_api_url": f"{fake_slack.url}/api/",
            "state_dir": tmp_path / "state", **overrides,
        }
        if llm:
            settings = llm_settings(engine.settings, fake_llm.url, answer_mode="llm", **values)
        else:
            settings = Settings(corpus_dir=engine.settings.corpus_dir, index_dir=engine.settings.index_dir, **values)
        client = TestClient(create_app(engine=build_engine(settings, embedder=engine.embedder)))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def slack(slack_factory: Callable[..., TestClient]) -> TestClient:
    return slack_factory()


def signed(body: str, content_type: str, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}", "Content-Type": content_type}


def event_body(event: dict[str, Any], event_id: str | None = None) -> str:
    return json.dumps({
        "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}", "event_time": int(time.time()),
        "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}],
        "event": event,
    })


def mention(text: str, ts: str | None = None, thread_ts: str | None = None) -> dict[str, Any]:
    event = {"type": "app_mention", "user": "UASKER", "text": f"<@{BOT_USER}> {text}", "channel": "C1",
             "ts": ts or f"{time.time():.6f}", "event_ts": f"{time.time():.6f}"}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def send_event(client: TestClient, event: dict[str, Any], event_id: str | None = None, **headers: str) -> Any:
    body = event_body(event, event_id)
    return client.post("/slack/events", content=body, headers={**signed(body, "application/json"), **headers})


def texts(blocks: list[dict]) -> str:
    out = []
    for block in blocks:
        if block["type"] == "section":
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out.extend(e["text"] for e in block["elements"])
    return "\n".join(out)


def test_url_verification_echoes_the_challenge(slack: TestClient) -> None:
    body = json.dumps({"token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV", "type": "url_verification"})
    response = slack.post("/slack/events", content=body, headers=signed(body, "application/json"))
    assert response.status_code == 200 and "3eZbrw1aBm2rZgRNFdxV" in response.text


def test_a_mention_is_answered_in_its_thread_with_sources_and_vote_buttons(
    slack: TestClient, fake_slack: FakeSlack
) -> None:
    event = mention(QUESTION)
    response = send_event(slack, event)
    assert response.status_code == 200
    [post] = fake_slack.wait_for("chat.postMessage")
    assert post["channel"] == "C1" and post["thread_ts"] == event["ts"]
    assert post["authorization"] == f"Bearer {BOT_TOKEN}"
    assert post["unfurl_links"] is False and post["unfurl_media"] is False
    blocks = post["blocks"]
    assert blocks[0]["type"] == "section" and RESOLUTIONS in blocks[0]["text"]["text"] and "[1]" in post["text"]
    sources = [b for b in blocks if b["type"] == "context"]
    assert sources and "*[1]*" in sources[0]["elements"][0]["text"]
    assert "000_ebf57527fa8dd4ca.txt" in sources[0]["elements"][0]["text"]
    assert "2024-11-09" in sources[0]["elements"][0]["text"] and RESOLUTIONS in sources[0]["elements"][0]["text"]
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["feedback_up", "feedback_down"]


def test_an_unanswerable_question_gets_the_nothing_found_message_without_sources(
    slack: TestClient, fake_slack: FakeSlack
) -> None:
    send_event(slack, mention("What is the capital of France?"))
    [post] = fake_slack.wait_for("chat.postMessage")
    assert NOTHING_FOUND in texts(post["blocks"]) and ".txt" not in texts(post["blocks"])


def test_a_replayed_or_retried_event_is_answered_once(slack: TestClient, fake_slack: FakeSlack) -> None:
    event, event_id = mention(QUESTION), "Ev0REPLAYED1"
    assert send_event(slack, event, event_id).status_code == 200
    # Slack's retry of the same event, and a plain replay: both acknowledged, neither answered.
    assert send_event(slack, event, event_id, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}).status_code == 200
    assert send_event(slack, event, event_id).status_code == 200
    # A new event that happens to carry a retry header is still answered: dedupe is by event id.
    other = mention("Where was the NATO summit?")
    send_event(slack, other, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    posts = fake_slack.wait_for("chat.postMessage", 2)
    time.sleep(0.5)  # the duplicates were refused before their response; give any stray answer time to show
    assert sorted(p["thread_ts"] for p in fake_slack.made("chat.postMessage")) == sorted([event["ts"], other["ts"]])
    assert len(posts) == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Signature": "v0=" + "0" * 64},  # forged
        "stale",
        "unsigned",
        "other-secret",
    ],
    ids=["forged", "stale-6-minutes", "unsigned", "wrong-secret"],
)
def test_bad_signatures_get_401_and_no_answer(slack: TestClient, fake_slack: FakeSlack, headers: Any) -> None:
    body = event_body(mention(QUESTION))
    if headers == "stale":
        sent = signed(body, "application/json", timestamp=int(time.time()) - 6 * 60)
    elif headers == "unsigned":
        sent = {"Content-Type": "application/json"}
    elif headers == "other-secret":
        sent = signed(body, "application/json", secret="not-the-secret")
    else:
        sent = {**signed(body, "application/json"), **headers}
    response = slack.post("/slack/events", content=body, headers=sent)
    assert response.status_code == 401
    time.sleep(0.3)
    assert fake_slack.made("chat.postMessage") == []


def slash(client: TestClient, fake_slack: FakeSlack, text: str) -> Any:
    body = urlencode({
        "token": "legacy", "team_id": "T1", "channel_id": "C1", "user_id": "UASKER", "command": "/footnote",
        "text": text, "response_url": f"{fake_slack.url}/respond/slash", "trigger_id": "1.2.3",
    })
    return client.post("/slack/events", content=body, headers=signed(body, "application/x-www-form-urlencoded"))


def test_the_slash_command_acks_at_once_then_responds(slack: TestClient, fake_slack: FakeSlack) -> None:
    response = slash(slack, fake_slack, QUESTION)
    assert response.status_code == 200 and "Looking that up" in response.text
    [reply] = fake_slack.wait_for("response_url")
    assert reply["response_type"] == "ephemeral" and RESOLUTIONS in texts(reply["blocks"])


def test_the_slash_command_can_answer_in_channel(
    slack_factory: Callable[..., TestClient], fake_slack: FakeSlack
) -> None:
    slash(slack_factory(slack_slash_response="in_channel"), fake_slack, QUESTION)
    assert fake_slack.wait_for("response_url")[0]["response_type"] == "in_channel"


def test_an_empty_slash_command_gets_usage(slack: TestClient, fake_slack: FakeSlack) -> None:
    response = slash(slack, fake_slack, "  ")
    assert "/footnote <question>" in response.text


def test_the_event_is_acked_before_a_slow_answer_is_written(
    slack_factory: Callable[..., TestClient], fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    slack = slack_factory(llm=True)
    fake_llm.script(Reply("The documents do not cover this question.", delay=1.5))
    response = send_event(slack, mention(QUESTION))
    assert response.status_code == 200
    assert fake_slack.made("chat.postMessage") == []  # acknowledged while the model is still writing
    assert NOTHING_FOUND in texts(fake_slack.wait_for("chat.postMessage")[0]["blocks"])


def test_a_follow_up_in_a_thread_carries_the_thread_as_history(
    slack_factory: Callable[..., TestClient], fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    slack = slack_factory(llm=True)
    root = "1700000000.000100"
    fake_slack.threads[root] = [
        {"ts": root, "user": "UASKER", "text": f"<@{BOT_USER}> What did NATO say about North Korea &amp; Russia?"},
        {"ts": "1700000001.000100", "user": BOT_USER, "bot_id": "BBOT", "text": "NATO condemned their cooperation [1]."},
        {"ts": "1700000002.000100", "user": "UASKER", "text": f"<@{BOT_USER}> Which resolutions does it violate?"},
    ]
    standalone = "Which UN resolutions does North Korea's cooperation with Russia violate?"
    fake_llm.script(Reply(standalone), cite("2270", "It violates resolutions 2270 (2016), 1718 (2006) and 1874 (2009) [n]."))
    send_event(slack, mention("Which resolutions does it violate?", ts="1700000002.000100", thread_ts=root))
    [post] = fake_slack.wait_for("chat.postMessage")
    condense = fake_llm.requests[0]["body"]["messages"][-1]["content"]
    assert "What did NATO say about North Korea & Russia?" in condense
    assert "NATO condemned their cooperation [1]." in condense
    assert post["thread_ts"] == root and RESOLUTIONS in texts(post["blocks"])
    assert fake_slack.made("conversations.replies")[0]["ts"] == root


def test_direct_messages_are_answered_and_bots_ignored(slack: TestClient, fake_slack: FakeSlack) -> None:
    dm = {"type": "message", "channel_type": "im", "channel": "D1", "user": "UASKER", "text": QUESTION,
          "ts": f"{time.time():.6f}"}
    own = {**dm, "user": BOT_USER, "bot_id": "BBOT", "ts": f"{time.time() + 1:.6f}"}
    other_bot = {**dm, "user": "UOTHER", "bot_id": "BOTHER", "subtype": "bot_message", "ts": f"{time.time() + 2:.6f}"}
    for event in (own, other_bot, dm):
        assert send_event(slack, event).status_code == 200
    [post] = fake_slack.wait_for("chat.postMessage")
    time.sleep(0.5)
    assert len(fake_slack.made("chat.postMessage")) == 1
    assert post["channel"] == "D1" and post["thread_ts"] == dm["ts"] and RESOLUTIONS in texts(post["blocks"])


def test_votes_are_recorded_and_listed(slack: TestClient, fake_slack: FakeSlack) -> None:
    send_event(slack, mention(QUESTION))
    [post] = fake_slack.wait_for("chat.postMessage")
    [actions] = [b for b in post["blocks"] if b["type"] == "actions"]
    down = next(e for e in actions["elements"] if e["action_id"] == "feedback_down")
    payload = json.dumps({
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": "UVOTER"}, "api_app_id": "A1",
        "token": "legacy", "trigger_id": "1.2.3", "response_url": f"{fake_slack.url}/respond/vote",
        "container": {"type": "message", "channel_id": "C1"}, "channel": {"id": "C1"},
        "actions": [{"action_id": "feedback_down", "block_id": "footnote_feedback", "value": down["value"],
                     "type": "button", "action_ts": f"{time.time():.6f}"}],
    })
    body = urlencode({"payload": payload})
    assert slack.post("/slack/events", content=body,
                      headers=signed(body, "application/x-www-form-urlencoded")).status_code == 200
    assert "recorded" in fake_slack.wait_for("response_url")[0]["text"]
    [entry] = slack.get("/feedback", params={"vote": "down"}).json()
    assert entry["question"] == QUESTION and entry["vote"] == "down" and entry["voter"] == "UVOTER"
    assert entry["channel"] == "slack:C1" and entry["asker"] == "UASKER"
    assert entry["sources"][0]["source"] == "000_ebf57527fa8dd4ca.txt" and RESOLUTIONS in entry["sources"][0]["quote"]
    assert slack.get("/feedback", params={"vote": "up"}).json() == []


def test_a_failure_reaches_the_user_as_a_short_message(
    slack_factory: Callable[..., TestClient], fake_slack: FakeSlack, tmp_path: Path
) -> None:
    slack = slack_factory()
    engine: Engine = slack.app.state.engine
    engine.ask = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("/secret/path/index.faiss exploded"))  # type: ignore[method-assign]
    send_event(slack, mention(QUESTION))
    [post] = fake_slack.wait_for("chat.postMessage")
    assert texts(post["blocks"]) == ERROR and "exploded" not in json.dumps(post) and "Traceback" not in json.dumps(post)


def test_document_text_cannot_ping_or_link() -> None:
    quote = "Hey <!channel> and @here, see <http://evil.example|this> or http://evil.example/x ![i](http://e.example/i.png)"
    answer = Answer(
        question="q", answer=f"{quote} [1]", answerable=True, passages=[],
        citations=[Citation(id=1, source="a<b>.txt", title=None, date=None, quote=quote, start=0, end=len(quote))],
    )
    shown = json.dumps(answer_blocks(answer, "fid"))
    assert "<!channel>" not in shown and "<http" not in shown and "<@" not in shown
    assert "@\u200bhere" in json.dumps(answer_blocks(answer, "fid"), ensure_ascii=False)
    assert "`http://evil.example/x`" in shown and "e.example/i.png" not in shown


def test_slack_routes_are_absent_unless_configured(client: TestClient) -> None:
    assert client.post("/slack/events", content="{}").status_code == 404


@pytest.mark.slow
def test_socket_mode_answers_without_a_public_endpoint(
    settings: Settings, engine: Engine, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    fake_slack.reset()
    event = mention(QUESTION)
    fake_slack.envelopes.append({
        "envelope_id": "env-1", "type": "events_api", "accepts_response_payload": False,
        "payload": json.loads(event_body(event)),
    })
    env = {**os.environ, "FOOTNOTE_CORPUS_DIR": str(settings.corpus_dir), "FOOTNOTE_INDEX_DIR": str(settings.index_dir),
           "FOOTNOTE_STATE_DIR": str(tmp_path / "state"), "FOOTNOTE_SLACK_API_URL": f"{fake_slack.url}/api/",
           "FOOTNOTE_SLACK_BOT_TOKEN": BOT_TOKEN, "FOOTNOTE_SLACK_APP_TOKEN": "xapp-canary-app-token"}
    process = subprocess.Popen([FOOTNOTE, "slack"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        [post] = fake_slack.wait_for("chat.postMessage", timeout=120)
        assert post["thread_ts"] == event["ts"] and RESOLUTIONS in texts(post["blocks"])
        assert fake_slack.wait_for("socket_ack")[0]["envelope_id"] == "env-1"
        assert fake_slack.made("apps.connections.open")[0]["authorization"] == "Bearer xapp-canary-app-token"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert BOT_TOKEN not in stderr and "xapp-canary-app-token" not in stderr


def test_socket_mode_without_tokens_says_what_is_missing(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTNOTE_SLACK")}
    result = subprocess.run([FOOTNOTE, "slack"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "FOOTNOTE_SLACK_APP_TOKEN" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_lists_the_failed_answers(slack: TestClient, fake_slack: FakeSlack, tmp_path: Path) -> None:
    store = slack.app.state.feedback
    send_event(slack, mention(QUESTION))
    send_event(slack, mention("Where was the NATO summit?"))
    posts = fake_slack.wait_for("chat.postMessage", 2)
    ids = [next(b for b in p["blocks"] if b["type"] == "actions")["elements"][0]["value"] for p in posts]
    store.vote(ids[0], "UVOTER", "up")
    store.vote(ids[1], "UVOTER", "up")
    store.vote(ids[1], "UVOTER", "down")  # a changed mind counts once, as the latest vote
    env = {**os.environ, "FOOTNOTE_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run([FOOTNOTE, "feedback", "--vote", "down", "--json"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["answer_id"] == ids[1] and entry["vote"] == "down"
    plain = subprocess.run([FOOTNOTE, "feedback"], env=env, capture_output=True, text=True, timeout=120).stdout
    assert plain.count("UVOTER") == 2 and plain.startswith("-1 ")


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "null", "{not json", "payload=%5B1%5D"])
def test_a_signed_body_that_is_not_a_json_object_is_a_400(slack: TestClient, fake_slack: FakeSlack, body: str) -> None:
    kind = "application/x-www-form-urlencoded" if body.startswith("payload=") else "application/json"
    before = len(fake_slack.made("chat.postMessage"))
    response = slack.post("/slack/events", content=body, headers=signed(body, kind))
    assert response.status_code == 400, response.text
    assert "JSON object" in response.json()["detail"]
    assert len(fake_slack.made("chat.postMessage")) == before
