"""API keys and request size limits: the HTTP-only guards in front of the engine."""

from __future__ import annotations

import hmac
import json
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import Unauthorized
from ..settings import Settings

_bearer = HTTPBearer(auto_error=False, description="One of FOOTNOTE_API_KEYS, when set.")


def _settings(request: Request) -> Settings:
    return request.app.state.engine.settings


def _check(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    keys = settings.keys()
    if not keys:
        return
    given = credentials.credentials.encode() if credentials else b""
    # Compare against every key in constant time, so timing says nothing about which is close.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    if not matched:
        raise Unauthorized("missing or invalid API key: send `Authorization: Bearer <key>`")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def require_key(request: Request, credentials: Credentials) -> None:
    """For writes: a key is needed whenever keys are configured."""
    _check(_settings(request), credentials)


def require_key_for_ask(request: Request, credentials: Credentials) -> None:
    settings = _settings(request)
    if settings.protect_ask:
        _check(settings, credentials)


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413 while they stream in: by the declared
    Content-Length before reading, or by counting a body sent without one. Nothing over the limit
    is buffered."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    # Look like a client that went away: the app stops reading here.
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app says after the cut, the client gets the 413
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body over the limit of {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
