"""Domain errors and validation failures become JSON with a message that names the problem."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..errors import (
    CorpusError,
    DatabaseUnavailable,
    DocumentNotFound,
    DocumentTooLarge,
    FootnoteError,
    IndexStateError,
    InvalidRequest,
    Unauthorized,
    UnsupportedType,
)

log = logging.getLogger(__name__)

# First match wins, so subclasses come before their bases.
_STATUS: list[tuple[type[FootnoteError], int]] = [
    (InvalidRequest, 422),
    (DocumentNotFound, 404),
    (UnsupportedType, 415),
    (DocumentTooLarge, 413),
    (CorpusError, 422),
    (Unauthorized, 401),
    (IndexStateError, 503),
]


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        # Keep FastAPI's list (clients parse it) but lead with one readable sentence.
        return JSONResponse(
            status_code=422,
            content={
                "message": "; ".join(_describe(e) for e in errors),
                "detail": [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in errors],
            },
        )

    @app.exception_handler(FootnoteError)
    async def footnote_error(request: Request, exc: FootnoteError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        if status == 422:  # one shape for every 422, the request validator's
            return JSONResponse(status_code=422, content={
                "message": str(exc), "detail": [{"loc": [], "msg": str(exc), "type": "value_error"}],
            })
        if status >= 500:
            # The full message names server paths: it goes to the log, not to the client.
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
            what = f"the index is not available ({type(exc).__name__})" if status == 503 else "internal error"
            if isinstance(exc, DatabaseUnavailable):  # names the database's host, never its password
                what = str(exc)
            return JSONResponse(status_code=status, content={"detail": f"{what}; the server log says why"})
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(status_code=status, content={"detail": str(exc)}, headers=headers)
