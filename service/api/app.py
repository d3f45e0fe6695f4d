"""Application factory: the engine is loaded in the lifespan, never at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..engine import Engine, build_engine
from ..mcp_server import build_mcp
from ..settings import Settings, get_settings
from .errors import install_error_handlers
from .metrics import instrument
from .metrics import router as metrics_router
from .openai_compat import router as openai_router
from .routes import public, router
from .security import BodyLimit, KeyGuard, RateLimit
from .web import mount_static
from .web import router as web_router

log = logging.getLogger(__name__)


class Started:
    """An ASGI app made when the server starts (not when the route table is)."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("the app has not started")
        await self.app(scope, receive, send)


def create_app(engine: Engine | None = None, settings: Settings | None = None, sync: bool = False) -> FastAPI:
    """An app over ``engine``, or over one built from ``settings`` at startup. With ``sync``,
    startup first brings the index in line with the corpus (build if missing or stale)."""
    configured = settings or (engine.settings if engine else None) or get_settings()

    # MCP over streamable HTTP, at /mcp: stateless (any server of several can answer any call).
    mcp = build_mcp(lambda: app.state.engine)
    mcp_endpoint = Started()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = engine or build_engine(configured)
        if sync:
            current.start()
        # Load now, so the first request does not pay for it.
        current.embedder.warm_up()
        current.index  # noqa: B018
        app.state.engine = current
        # Plain-def routes run on AnyIO's thread pool; its size bounds the work in flight.
        anyio.to_thread.current_default_thread_limiter().total_tokens = current.settings.worker_threads
        app.state.feedback = current.feedback
        if current.settings.slack_http_enabled:
            from ..slack.bot import build_slack_app

            app.state.slack = build_slack_app(current, app.state.feedback, current.settings)
        log.info("serving %s", current.health().model_dump())
        # The SDK's session manager runs once: a new one for each start of the app.
        mcp_endpoint.app = mcp.streamable_http_app(streamable_http_path="/mcp", stateless_http=True,
                                                   host=configured.host)
        async with mcp.session_manager.run():
            yield

    app = FastAPI(
        title="Footnote",
        version=__version__,
        description="Cited answers over your documents: every claim traceable to an exact quote.",
        lifespan=lifespan,
        docs_url="/docs" if configured.docs_enabled else None,
        redoc_url="/redoc" if configured.docs_enabled else None,
        openapi_url="/openapi.json" if configured.docs_enabled else None,
    )
    # Middleware added later runs earlier: the instrumentator (added below) counts every request;
    # then a caller over its rate is refused before its body is read.
    app.add_middleware(BodyLimit, limit=configured.max_upload_bytes)
    app.add_middleware(RateLimit, per_minute=configured.rate_limit_per_minute, burst=configured.rate_limit_burst,
                       keys=configured.keys(), limit_loopback=configured.rate_limit_loopback)
    install_error_handlers(app)
    instrument(app)
    app.include_router(public)
    app.include_router(router)
    app.include_router(metrics_router)
    app.include_router(web_router)
    mount_static(app)
    app.router.routes.append(Route("/mcp", KeyGuard(mcp_endpoint, configured.keys()), include_in_schema=False))
    app.include_router(openai_router)
    if configured.slack_http_enabled:
        from .slack_events import router as slack_router

        app.include_router(slack_router)
    return app
