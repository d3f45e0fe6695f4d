"""`/v1/chat/completions` as an OpenAI client sees it: the official `openai` package, talking to the
app through FastAPI's TestClient (an httpx client), in both answer modes and both transports."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from fastapi.testclient import TestClient

from service.engine import Engine

from .fake_openai import FakeLLM, Reply
from .test_llm import QUESTION, RESOLUTIONS, cite


def chat(client: TestClient) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{client.base_url}/v1", api_key="unused", http_client=client, max_retries=0)


def test_extractive_reply_carries_the_answer_then_numbered_sources(client: TestClient, engine: Engine) -> None:
    completion = chat(client).chat.completions.create(
        model="footnote", messages=[{"role": "user", "content": QUESTION}]
    )
    content = completion.choices[0].message.content or ""
    expected = engine.ask(QUESTION)
    answer, sources = content.split("\n\nSources:\n")
    assert answer == expected.answer  # the seed articles hold nothing a renderer would act on
    lines = sources.splitlines()
    assert [line.split("]")[0] + "]" for line in lines] == [f"[{c.id}]" for c in expected.citations]
    assert lines[0].startswith(f"[1] {expected.citations[0].source}") and RESOLUTIONS in lines[0]
    extra = completion.model_extra["footnote"]
    assert extra["citations"] == [c.model_dump(mode="json") for c in expected.citations]
    assert completion.model == "footnote" and completion.choices[0].finish_reason == "stop"


def streamed(client: TestClient, **kwargs: object) -> tuple[str, list]:
    chunks = list(chat(client).chat.completions.create(model="footnote", stream=True, **kwargs))
    return "".join(c.choices[0].delta.content or "" for c in chunks), chunks


def test_extractive_stream_matches_the_plain_reply(client: TestClient) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    text, chunks = streamed(client, messages=messages)
    plain = chat(client).chat.completions.create(model="footnote", messages=messages)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["footnote"]["citations"] == plain.model_extra["footnote"]["citations"]


def test_llm_stream_sends_tokens_then_sources_with_structured_citations(
    llm_client: TestClient, fake_llm: FakeLLM
) -> None:
    fake_llm.script(cite("2270", "NATO cited resolutions 2270 (2016), 1718 (2006) and 1874 (2009) [n]."))
    text, chunks = streamed(llm_client, messages=[{"role": "user", "content": QUESTION}])
    answer, sources = text.split("\n\nSources:\n")
    final = chunks[-1].model_extra["footnote"]
    assert final["mode"] == "llm" and answer == final["answer"]
    [citation] = final["citations"]
    assert sources.startswith(f"[{citation['id']}] {citation['source']}") and RESOLUTIONS in sources
    assert len([c for c in chunks if c.choices[0].delta.content]) > 3  # token by token, not one blob


def test_earlier_turns_become_history(llm_client: TestClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply("Which UN resolutions did NATO cite?"), cite("2270", "Resolution 2270 (2016) [n]."))
    messages = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "What did NATO say about North Korea?"},
        {"role": "assistant", "content": "It condemned its weapons exports [1]."},
        {"role": "user", "content": [{"type": "text", "text": "Which resolutions?"}]},
    ]
    completion = chat(llm_client).chat.completions.create(model="footnote", messages=messages)
    condense = fake_llm.requests[0]["body"]["messages"][-1]["content"]
    assert "What did NATO say about North Korea?" in condense and "It condemned its weapons exports" in condense
    assert "pirate" not in str(fake_llm.requests)  # a caller's system prompt does not reach the model
    assert completion.model_extra["footnote"]["standalone_question"] == "Which UN resolutions did NATO cite?"


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 422, "footnote"),
        ({"model": "footnote", "messages": [{"role": "assistant", "content": "hi"}]}, 422, "user message"),
        ({"model": "footnote", "messages": []}, 422, "messages"),
    ],
    ids=["unknown-model", "no-user-message", "no-messages"],
)
def test_bad_requests_get_a_clear_error(client: TestClient, kwargs: dict, status: int, message: str) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        chat(client).chat.completions.create(**kwargs)
    assert caught.value.status_code == status
    assert message in str(caught.value.body)


def test_models_lists_footnote(client: TestClient) -> None:
    assert [m.id for m in chat(client).models.list()] == ["footnote"]


@pytest.fixture
def quoted_image(client: TestClient) -> Iterator[str]:
    name = "gallery.md"
    files = {"files": (name, b"# Gallery\n\nThe gallery holds the painting ![art](http://attacker.example/a.png) "
                              b"of the harbour at dawn, shown at http://attacker.example/harbour.\n")}
    assert client.post("/documents", files=files).status_code == 200
    yield name
    client.delete(f"/documents/{name}")


def test_answers_and_sources_defang_markdown_from_documents(client: TestClient, quoted_image: str) -> None:
    completion = chat(client).chat.completions.create(
        model="footnote", messages=[{"role": "user", "content": "What does the gallery painting show?"}]
    )
    content = completion.choices[0].message.content or ""
    assert quoted_image in content and "![" not in content and "](" not in content
    # What is left of a URL is inert code, not a link.
    assert content.count("`http://attacker.example/harbour.`") == 2
    # The structured citation still quotes the document exactly.
    assert any("attacker.example" in c["quote"] for c in completion.model_extra["footnote"]["citations"])
