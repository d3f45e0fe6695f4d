"""A stand-in for Slack's Web API (Slack is not reachable in tests): a small FastAPI app on
127.0.0.1 answering the methods the bot calls (`auth.test`, `chat.postMessage`,
`conversations.replies`, `apps.connections.open`), the `response_url` a slash command or a button
replies to, and a Socket Mode WebSocket that delivers queued envelopes. It records every call
(and every envelope acknowledgement) so tests can assert on what the bot did."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

BOT_USER = "UBOT"


@dataclass
class FakeSlack:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    threads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    envelopes: list[dict[str, Any]] = field(default_factory=list)  # sent to the next Socket Mode client
    url: str = ""
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def reset(self) -> None:
        with self._changed:
            self.calls.clear()
            self.threads.clear()
            self.envelopes.clear()

    def _record(self, method: str, args: dict[str, Any]) -> None:
        with self._changed:
            self.calls.append((method, args))
            self._changed.notify_all()

    def made(self, method: str) -> list[dict[str, Any]]:
        with self._changed:
            return [args for m, args in self.calls if m == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len([m for m, _ in self.calls if m == method]) < count:
                if not self._changed.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"no {count} {method} call(s) within {timeout} s; calls: {self.calls}")
            return [args for m, args in self.calls if m == method]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/api/{method}", methods=["GET", "POST"])
        async def api(method: str, request: Request) -> dict[str, Any]:
            args: dict[str, Any] = dict(request.query_params)
            if request.headers.get("content-type", "").startswith("application/json"):
                args.update(json.loads(await request.body() or b"{}"))
            elif request.method == "POST":
                args.update(dict(await request.form()))
            args["authorization"] = request.headers.get("authorization")
            self._record(method, args)
            if method == "auth.test":
                return {"ok": True, "url": "https://example.slack.com/", "team": "Example", "user": "footnote",
                        "team_id": "T1", "user_id": BOT_USER, "bot_id": "BBOT"}
            if method == "chat.postMessage":
                return {"ok": True, "channel": args["channel"], "ts": f"{time.time():.6f}"}
            if method == "apps.connections.open":
                return {"ok": True, "url": f"{self.url.replace('http', 'ws', 1)}/socket"}
            if method == "conversations.replies":
                return {"ok": True, "messages": self.threads.get(args["ts"], []), "has_more": False}
            return {"ok": False, "error": "unknown_method"}

        @app.post("/respond/{name}")
        async def respond(name: str, request: Request) -> dict[str, bool]:
            self._record("response_url", {"name": name, **(await request.json())})
            return {"ok": True}

        @app.websocket("/socket")
        async def socket(ws: WebSocket) -> None:
            await ws.accept()
            await ws.send_text(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}}))
            for envelope in self.envelopes:
                await ws.send_text(json.dumps(envelope))
            try:
                while True:
                    self._record("socket_ack", json.loads(await ws.receive_text()))
            except WebSocketDisconnect:
                pass

        return app
