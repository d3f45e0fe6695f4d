"""Error bodies and the error responses routes declare, so the OpenAPI schema says everything a
client can get back (and the fuzz test holds every response to it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, in one sentence.")


class ValidationItem(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is, e.g. [\"body\", \"top_k\"]; empty if not one field.")
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    message: str = Field(description="Every problem in one readable sentence.")
    detail: list[ValidationItem]


Responses = dict[int | str, dict[str, Any]]


def _error(description: str, model: type[BaseModel] = ErrorBody) -> dict[str, Any]:
    return {"model": model, "description": description}


MALFORMED: Responses = {400: _error("The body cannot be parsed (not JSON, not UTF-8, broken multipart).")}
UNAUTHORIZED: Responses = {401: _error("Missing or invalid API key (when FOOTNOTE_API_KEYS is set).")}
RATE_LIMITED: Responses = {429: _error("Over the per-key request rate; `Retry-After` says when to retry.")}
TOO_LARGE: Responses = {413: _error("Request body over FOOTNOTE_MAX_UPLOAD_BYTES.")}
INVALID: Responses = {422: _error("The request names a problem: a bad field, value or file.", ValidationErrorBody)}
UNAVAILABLE: Responses = {503: _error("The index is not loaded or not readable.")}
NOT_FOUND: Responses = {404: _error("No such document.")}
# What any route behind the key check can answer besides its own responses.
PROTECTED: Responses = {**MALFORMED, **UNAUTHORIZED, **RATE_LIMITED, **INVALID, **UNAVAILABLE}
