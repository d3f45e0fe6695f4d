"""API keys, request rates and request sizes: the HTTP-only guards in front of the engine."""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidRequest, Unauthorized
from ..settings import Settings

_bearer = HTTPBearer(auto_error=False, description="One of FOOTNOTE_API_KEYS, when set.")


def _settings(request: Request) -> Settings:
    return request.app.state.engine.settings


NO_KEY = "missing or invalid API key: send `Authorization: Bearer <key>`"


def matching_key(token: bytes, keys: Sequence[bytes]) -> int | None:
    """Which of ``keys`` the token is. Every key is compared, in constant time, so timing says
    nothing about which is close."""
    found = None
    for n, key in enumerate(keys):
        if hmac.compare_digest(token, key):
            found = n
    return found


def bearer_token(authorization: bytes) -> bytes:
    scheme, _, token = authorization.strip().partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else b""


def _check(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    keys = settings.keys()
    if keys and matching_key(credentials.credentials.encode() if credentials else b"",
                             [k.encode() for k in keys]) is None:
        raise Unauthorized(NO_KEY)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def known_query(request: Request) -> None:
    """Refuse query parameters the route does not take: a misspelt `?vot=down` would otherwise be
    ignored silently."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    known = {p.alias for p in _query_params(dependant)}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidRequest(f"unknown query parameter(s): {', '.join(unknown)}")


def _query_params(dependant: Any) -> list[Any]:
    return [*dependant.query_params, *(p for d in dependant.dependencies for p in _query_params(d))]


async def require_key(request: Request, credentials: Credentials) -> None:
    """Every route but /health needs one of the keys, whenever keys are configured."""
    _check(_settings(request), credentials)


_LOOPBACK = frozenset({"addr:127.0.0.1", "addr:::1"})


class RateLimit:
    """A token bucket per caller: per API key when a request carries a valid one, else per client
    address (a made-up or wrong key is the address's, so it buys no fresh bucket). ``per_minute``
    requests a minute on average, up to ``burst`` at once; beyond that, 429 with `Retry-After`.
    /health and Slack's signed callbacks are not counted, nor, unless ``loopback`` is limited
    (always so with keys), callers on this machine: with no keys, the limit protects a public
    server, and on a local one it would only break the owner's scripts. The buckets are a bounded LRU (each
    request costs O(1), however many callers there were). A request with two `Authorization`
    headers is refused: which one would count? Per process: with several workers, each allows
    the rate."""

    EXEMPT = ("/health", "/slack/events")

    def __init__(self, app: ASGIApp, per_minute: int, burst: int, keys: Sequence[str] = (),
                 max_callers: int = 100_000, limit_loopback: bool = False) -> None:
        self.app = app
        self.limit_loopback = limit_loopback or bool(keys)
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.keys = [k.encode() for k in keys]
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller -> (tokens, updated)
        self._lock = threading.Lock()

    def _caller(self, authorization: bytes | None, scope: Scope) -> str:
        if authorization and (n := matching_key(bearer_token(authorization), self.keys)) is not None:
            return f"key:{n}"
        client = scope.get("client")
        return f"addr:{client[0] if client else '?'}"

    def _take(self, caller: str) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, updated = self._buckets.pop(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            allowed = tokens >= 1
            self._buckets[caller] = (tokens - 1 if allowed else tokens, now)  # the most recent, last
            if len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
            return 0.0 if allowed else (1 - tokens) / self.rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorizations = [v for k, v in scope["headers"] if k == b"authorization"]
        if len(authorizations) > 1:
            await _reply(send, 400, {"detail": "send one Authorization header, not several"})
            return
        if self.rate <= 0 or scope["path"] in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        caller = self._caller(authorizations[0] if authorizations else None, scope)
        if not self.limit_loopback and caller in _LOOPBACK:
            await self.app(scope, receive, send)
            return
        wait = self._take(caller)
        if not wait:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        await _reply(send, 429, {"detail": f"rate limit exceeded: retry in {retry} s"}, [(b"retry-after", str(retry).encode())])


async def _reply(send: Send, status: int, content: dict, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(content).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or []),
    ]})
    await send({"type": "http.response.body", "body": body})


class KeyGuard:
    """The keys check for an ASGI app served beside the routes (the MCP endpoint), which FastAPI's
    dependencies do not reach."""

    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.keys and scope["type"] == "http":
            authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if matching_key(bearer_token(authorization), self.keys) is None:
                await _reply(send, 401, {"detail": NO_KEY}, [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


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
