"""The HTTP server's settings: uvicorn, with a deadline on reading each request."""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..settings import Settings


def with_read_deadline(seconds: float) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request (headers and body) is not
    all in ``seconds`` after the connection opened or its previous response ended. uvicorn times
    out idle keep-alive connections only: a client sending a byte a minute would hold a
    connection, and the memory behind it, for ever."""

    class ReadDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _too_slow(self) -> None:
            # Still waiting for headers, or for the rest of a body: the app sees a disconnect.
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

    return ReadDeadline


def server_config(app: FastAPI, settings: Settings, host: str | None = None, port: int | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host or settings.host, port=port if port is not None else settings.port,
        http=with_read_deadline(settings.request_read_seconds),
        log_level=settings.log_level.lower(), log_config=None,  # our handler, which redacts secrets
    )
