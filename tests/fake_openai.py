"""A stand-in for an OpenAI-compatible LLM server (no model endpoint is reachable in tests): a
small FastAPI app on 127.0.0.1 speaking `/v1/chat/completions`, streaming and not, whose replies
each test scripts. It records every request, so tests can look at the prompt that was sent."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


@dataclass
class Reply:
    """One scripted reply: ``text`` (or ``write(messages)`` computing it), sent after ``delay``
    seconds, or an HTTP ``status`` error."""

    text: str = ""
    write: Callable[[list[dict]], str] | None = None
    delay: float = 0.0
    status: int = 200


@dataclass
class FakeLLM:
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict] = field(default_factory=list)
    url: str = ""

    def script(self, *replies: Reply | str) -> None:
        self.replies.clear()
        self.requests.clear()
        self.replies.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def _next(self) -> Reply:
        return self.replies.popleft() if self.replies else Reply("The documents do not cover this question.")

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request):  # noqa: ANN202
            body = await request.json()
            self.requests.append({"body": body, "authorization": request.headers.get("authorization")})
            reply = self._next()
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.status != 200:  # as OpenAI's 401 does, the message echoes the credential it got
                message = f"Incorrect API key provided: {request.headers.get('authorization')}"
                return JSONResponse({"error": {"message": message, "type": "server_error"}}, reply.status)
            text = reply.write(body["messages"]) if reply.write else reply.text
            base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body["model"]}
            if not body.get("stream"):
                return {**base, "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

            def events() -> Iterator[str]:
                chunk = {**base, "object": "chat.completion.chunk"}
                yield _sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
                for word in _pieces(text):
                    yield _sse({**chunk, "choices": [{"index": 0, "delta": {"content": word}}]})
                yield _sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        return app


def _pieces(text: str) -> list[str]:
    """Token-sized pieces, the way a model streams (words with their leading space)."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]] if text else []


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


class Running:
    """A uvicorn server in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app: FastAPI, config: uvicorn.Config | None = None) -> None:
        self.server = uvicorn.Server(config or uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
