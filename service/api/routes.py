"""Routes read like plain functions: the engine arrives as a typed dependency."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from itertools import chain
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from ..engine import MAX_QUESTION_CHARS, MAX_TOP_K, Engine
from ..errors import FootnoteError
from ..feedback import FeedbackEntry, FeedbackStore, Vote
from ..indexing import IndexReport
from ..models import Answer, DocumentDetail, DocumentSummary, Filters, Health, IndexChange, Mode, Turn
from .errors import ErrorBody
from .security import require_key, require_key_for_ask

log = logging.getLogger(__name__)
router = APIRouter()


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def get_feedback(request: Request) -> FeedbackStore:
    return request.app.state.feedback


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: StrictStr = Field(min_length=1, max_length=MAX_QUESTION_CHARS, examples=["Which resolutions were cited?"])
    top_k: StrictInt = Field(5, ge=1, le=MAX_TOP_K, description="Passages to retrieve.")
    filters: Filters | None = Field(None, description="Restrict retrieval to matching documents.")
    mode: Mode | None = Field(None, description="Answerer for this request (default FOOTNOTE_ANSWER_MODE).")
    history: list[Turn] = Field(
        default_factory=list, max_length=50,
        description="Earlier turns, oldest first; in LLM mode the question is rewritten to stand alone.",
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        return value


_UNAVAILABLE = {503: {"model": ErrorBody, "description": "The index is not loaded."}}


@router.get("/health", response_model=Health, responses=_UNAVAILABLE)
def health(engine: EngineDep) -> Health:
    return engine.health()


_UNAUTHORIZED = {401: {"model": ErrorBody, "description": "Missing or invalid API key."}}


@router.post("/ask", response_model=Answer, responses={**_UNAVAILABLE, **_UNAUTHORIZED},
             dependencies=[Depends(require_key_for_ask)])
def ask(body: AskRequest, engine: EngineDep) -> Answer:
    # A plain def: FastAPI runs it in its thread pool, so encoding never blocks the event loop.
    return engine.ask(body.question, body.top_k, body.filters, body.mode, body.history)


def sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


_STREAM = {
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
    "description": "`event: token` frames (`{\"text\": ...}`) as the answer is written, then one "
    "`event: answer` frame holding the checked Answer, which replaces the streamed text (markers naming "
    "no passage removed; on an LLM failure, the extractive answer with `fallback_reason`). A failure "
    "after the stream began is an `event: error` frame (`{\"detail\": ...}`).",
}


@router.post("/ask/stream", response_class=StreamingResponse,
             responses={200: _STREAM, **_UNAVAILABLE, **_UNAUTHORIZED},
             dependencies=[Depends(require_key_for_ask)])
def ask_stream(body: AskRequest, engine: EngineDep) -> StreamingResponse:
    """`/ask` as Server-Sent Events."""
    events = engine.ask_stream(body.question, body.top_k, body.filters, body.mode, body.history)
    first = next(events)  # here, so that a bad request is a plain 4xx and not a broken stream

    def frames() -> Iterator[str]:
        try:
            for event in chain([first], events):
                if isinstance(event, Answer):
                    yield sse("answer", event.model_dump_json())
                else:
                    yield sse("token", json.dumps({"text": event}))
        except FootnoteError as exc:
            yield sse("error", json.dumps({"detail": str(exc)}))
        except Exception:
            log.exception("streamed answer failed")
            yield sse("error", json.dumps({"detail": "internal error; see the server log"}))

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/documents", response_model=list[DocumentSummary], responses=_UNAVAILABLE)
def list_documents(engine: EngineDep) -> list[DocumentSummary]:
    return engine.documents()


@router.get(
    "/documents/{source:path}",
    response_model=DocumentDetail,
    responses={404: {"model": ErrorBody, "description": "No such document."}, **_UNAVAILABLE},
)
def get_document(source: str, engine: EngineDep) -> DocumentDetail:
    return engine.document(source)


def _change(report: IndexReport) -> IndexChange:
    return IndexChange(
        added=report.added, updated=report.updated, unchanged=report.unchanged, removed=report.removed,
        duplicates=report.duplicates, documents=report.documents, chunks=report.chunks,
    )


@router.post(
    "/documents",
    response_model=IndexChange,
    dependencies=[Depends(require_key)],
    responses={
        **_UNAUTHORIZED,
        413: {"model": ErrorBody, "description": "Over the upload size limit."},
        415: {"model": ErrorBody, "description": "Unsupported file type."},
        422: {"model": ErrorBody, "description": "A file with no text, undecodable, or a bad name."},
        **_UNAVAILABLE,
    },
)
def upload_documents(
    engine: EngineDep, files: Annotated[list[UploadFile], File(description="One or more documents.")]
) -> IndexChange:
    """Add or replace documents (.txt, .md, .html, .pdf, .docx). All files are checked before any
    is taken in; the response comes once the index is durably saved."""
    return _change(engine.add([(f.filename or "", f.file.read()) for f in files]))


@router.delete(
    "/documents/{source:path}",
    response_model=IndexChange,
    dependencies=[Depends(require_key)],
    responses={**_UNAUTHORIZED, 404: {"model": ErrorBody, "description": "No such document."}, **_UNAVAILABLE},
)
def delete_document(source: str, engine: EngineDep) -> IndexChange:
    return _change(engine.delete(source))


@router.get("/feedback", response_model=list[FeedbackEntry], dependencies=[Depends(require_key)],
            responses=_UNAUTHORIZED)
def list_feedback(
    store: Annotated[FeedbackStore, Depends(get_feedback)],
    vote: Annotated[Vote | None, Query(description="Only 'up' or only 'down' votes.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[FeedbackEntry]:
    """Votes on answers (from Slack's buttons), newest first, each with the question, the answer and
    its sources: `?vote=down` lists the answers that failed."""
    return store.entries(vote, limit)
