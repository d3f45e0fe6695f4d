"""`POST /v1/chat/completions`: Footnote as an OpenAI-compatible chat model named ``footnote``, so
any OpenAI client or chat UI can ask the documents. The last user message is the question, the
earlier user/assistant turns its history; the reply is the cited answer followed by a numbered
source list, and the whole checked Answer rides along in the extra field ``footnote``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from itertools import chain
from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ..answering.grounding import defang
from ..engine import MAX_TOP_K
from ..errors import InvalidRequest
from ..models import Answer, Filters, Final, JsonInt, Mode, RequestModel, Turn
from .deps import EngineDep
from .responses import PROTECTED, TOO_LARGE
from .security import known_query, require_key

MODEL = "footnote"
router = APIRouter(
    prefix="/v1", tags=["OpenAI-compatible"], dependencies=[Depends(require_key), Depends(known_query)],
    responses=PROTECTED,
)


class ContentPart(RequestModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessage(RequestModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(RequestModel):
    # Sampling options OpenAI clients send (temperature, max_tokens, ...) are accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    model: Literal["footnote"] = Field(description="Always `footnote`: the documents are the model.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: StrictBool = False
    top_k: JsonInt = Field(5, ge=1, le=MAX_TOP_K, description="Footnote extension: passages to retrieve.")
    mode: Mode | None = Field(None, description="Footnote extension: the answerer (default the server's).")
    filters: Filters | None = Field(None, description="Footnote extension: restrict retrieval.")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = MODEL
    choices: list[Choice]
    usage: Usage = Field(default_factory=Usage, description="Not counted: always zero.")
    footnote: Answer = Field(description="The checked answer: citations with exact spans, passages, flags.")


class ModelCard(BaseModel):
    id: str = MODEL
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "footnote"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _conversation(messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    """The question (last user message) and the earlier turns. System prompts are ignored: the
    answerer's own rules apply."""
    turns = [m for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user" or not turns[-1].text().strip():
        raise InvalidRequest("messages must end with a user message holding the question")
    history: list[Turn] = []
    for message in turns[:-1]:
        if message.role == "user":
            history.append(Turn(question=message.text()[:4000]))
        elif history:
            history[-1] = Turn(question=history[-1].question, answer=message.text()[:8000])
    return turns[-1].text(), history


def sources(answer: Answer) -> str:
    """The numbered source list shown after the answer, defanged like the answer: chat UIs render
    markdown, and a document must not slip an image or a link into the reply."""
    if not answer.citations:
        return ""
    lines = ["", "", "Sources:"]
    for c in answer.citations:
        meta = ", ".join(x for x in (c.title, c.date, f"p. {c.page}" if c.page else None) if x)
        quote = " ".join(defang(c.quote).split())
        lines.append(f"[{c.id}] {c.source}{f' ({meta})' if meta else ''}: \u201c{quote}\u201d")
    return "\n".join(lines)


@router.get("/models", response_model=ModelList)
def models() -> ModelList:
    return ModelList(data=[ModelCard()])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": {"text/event-stream": {"schema": {
                  "type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}}},
              "description": "A chat.completion, or with `stream: true` chat.completion.chunk events, then `[DONE]`."},
        **TOO_LARGE,
    },
)
def chat_completions(body: ChatRequest, engine: EngineDep) -> ChatCompletion | StreamingResponse:
    question, history = _conversation(body.messages)
    events = engine.ask_stream(question, body.top_k, body.filters, body.mode, history)
    created, completion_id = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
    if not body.stream:
        answer = next(e.answer for e in events if isinstance(e, Final))
        message = AssistantMessage(content=defang(answer.answer) + sources(answer))
        return ChatCompletion(id=completion_id, created=created, choices=[Choice(message=message)], footnote=answer)
    first = next(events)  # a bad request fails here, before the stream starts

    def chunk(delta: dict[str, str], finish: str | None = None, answer: Answer | None = None) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if answer is not None:
            body["footnote"] = answer.model_dump(mode="json")
        return f"data: {json.dumps(body)}\n\n"

    def frames() -> Iterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        streamed = ""
        for event in chain([first], events):
            if isinstance(event, Final):
                answer = event.answer
                yield chunk({"content": defang(_tail(streamed, answer)) + sources(answer)}, "stop", answer)
            else:
                streamed += event.text
                yield chunk({"content": defang(event.text)})
        yield "data: [DONE]\n\n"

    return StreamingResponse(frames(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _tail(streamed: str, answer: Answer) -> str:
    """What the reader must still be told once the text has streamed: when the model failed
    part-way, the answer given instead."""
    if " ".join(streamed.split()) == " ".join(answer.answer.split()):
        return ""
    note = f"(The model stopped: {answer.fallback_reason}. Quoted from the documents instead:)\n"
    return f"\n\n{note if answer.fallback_reason else ''}{answer.answer}" if streamed else answer.answer

