"""Routes read like plain functions: the engine arrives as a typed dependency."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from itertools import chain
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from ..engine import MAX_QUESTION_CHARS, MAX_TOP_K
from ..errors import FootnoteError
from ..feedback import FeedbackEntry, Vote
from ..indexing import IndexReport
from ..models import (
    Answer,
    Citation,
    DocumentDetail,
    DocumentSummary,
    Filters,
    Final,
    Health,
    IndexChange,
    JsonInt,
    Mode,
    Passage,
    RequestModel,
    Turn,
)
from .deps import EngineDep, FeedbackDep
from .responses import NOT_FOUND, PROTECTED, TOO_LARGE, UNAVAILABLE, ErrorBody
from .security import known_query, require_key

log = logging.getLogger(__name__)
# /health stays open for load balancers; everything else needs a key once keys are configured.
# Load balancers probe with HEAD and with cache-busting queries (`?ts=...`): /health takes both.
public = APIRouter()
router = APIRouter(dependencies=[Depends(require_key), Depends(known_query)], responses=PROTECTED)


class AskRequest(RequestModel):
    model_config = ConfigDict(extra="forbid")

    question: StrictStr = Field(min_length=1, max_length=MAX_QUESTION_CHARS, examples=["Which resolutions were cited?"])
    top_k: JsonInt = Field(5, ge=1, le=MAX_TOP_K, description="Passages to retrieve.")
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


@public.get("/health", response_model=Health, responses=UNAVAILABLE)
@public.head("/health", response_model=Health, include_in_schema=False)
async def health(engine: EngineDep) -> Health:
    # Not in the workers' thread pool, so it answers while every worker thread is busy; and off
    # the event loop, since a database store may make it wait.
    return await asyncio.get_running_loop().run_in_executor(None, engine.health)


@router.post("/ask", response_model=Answer, responses=TOO_LARGE)
def ask(body: AskRequest, engine: EngineDep) -> Answer:
    # A plain def: FastAPI runs it in its thread pool, so encoding never blocks the event loop.
    return engine.ask(body.question, body.top_k, body.filters, body.mode, body.history)


class SearchRequest(RequestModel):
    model_config = ConfigDict(extra="forbid")

    query: StrictStr = Field(min_length=1, max_length=MAX_QUESTION_CHARS, examples=["UN Security Council resolutions"])
    top_k: JsonInt = Field(5, ge=1, le=MAX_TOP_K, description="Passages to return.")
    filters: Filters | None = Field(None, description="Restrict retrieval to matching documents.")


@router.post("/search", response_model=list[Passage], responses=TOO_LARGE)
def search(body: SearchRequest, engine: EngineDep) -> list[Passage]:
    """The passages `/ask` would answer from, best first, each with its exact offsets; no answer."""
    return engine.search(body.query, body.top_k, body.filters)


def sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


_STREAM = {
    "content": {"text/event-stream": {"schema": {  # one event (OpenAPI 3.2's reading of SSE)
        "type": "object", "required": ["event", "data"],
        "properties": {"event": {"type": "string", "enum": ["token", "answer", "error"]}, "data": {"type": "string"}},
    }}},
    "description": "`event: token` frames (`{\"text\": ...}`) as the answer is written, then one "
    "`event: answer` frame holding the checked Answer, which replaces the streamed text (markers naming "
    "no passage removed; on an LLM failure, the extractive answer with `fallback_reason`). A failure "
    "after the stream began is an `event: error` frame (`{\"detail\": ...}`).",
}


@router.post("/ask/stream", response_class=StreamingResponse, responses={200: _STREAM, **TOO_LARGE})
def ask_stream(body: AskRequest, engine: EngineDep) -> StreamingResponse:
    """`/ask` as Server-Sent Events."""
    events = engine.ask_stream(body.question, body.top_k, body.filters, body.mode, body.history)
    first = next(events)  # here, so that a bad request is a plain 4xx and not a broken stream

    def frames() -> Iterator[str]:
        try:
            for event in chain([first], events):
                if isinstance(event, Final):
                    yield sse("answer", event.answer.model_dump_json())
                else:
                    yield sse("token", json.dumps({"text": event.text}))
        except FootnoteError as exc:
            yield sse("error", json.dumps({"detail": str(exc)}))
        except Exception:
            log.exception("streamed answer failed")
            yield sse("error", json.dumps({"detail": "internal error; see the server log"}))

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/documents", response_model=list[DocumentSummary])
def list_documents(engine: EngineDep) -> list[DocumentSummary]:
    return engine.documents()


@router.get(
    "/documents/{source:path}",
    response_model=DocumentDetail,
    responses=NOT_FOUND,
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
    responses={**TOO_LARGE, 415: {"model": ErrorBody, "description": "Unsupported file type."}},
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
    responses=NOT_FOUND,
)
def delete_document(source: str, engine: EngineDep) -> IndexChange:
    return _change(engine.delete(source))


@router.get("/feedback", response_model=list[FeedbackEntry])
def list_feedback(
    store: FeedbackDep,
    vote: Annotated[Vote | None, Query(description="Only 'up' or only 'down' votes.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[FeedbackEntry]:
    """Votes on answers (from Slack's buttons and the web page), newest first, each with the
    question, the answer and its sources: `?vote=down` lists the answers that failed."""
    return store.entries(vote, limit)


class VotedCitation(RequestModel):
    model_config = ConfigDict(extra="forbid")

    id: JsonInt = Field(ge=0)
    source: StrictStr = Field(max_length=1000)
    quote: StrictStr = Field(max_length=20_000)
    start: JsonInt = Field(ge=0)
    end: JsonInt = Field(ge=0)


class VotedAnswer(RequestModel):
    """The answer voted on, as `/ask` returned it (the fields kept with the vote)."""

    model_config = ConfigDict(extra="forbid")

    question: StrictStr = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    answer: StrictStr = Field(max_length=50_000)
    answerable: bool
    mode: Mode = "extractive"
    citations: list[VotedCitation] = Field(default_factory=list, max_length=50)


class VoteRequest(RequestModel):
    model_config = ConfigDict(extra="forbid")

    answer: VotedAnswer | None = Field(None, description="A first vote on an answer: the answer itself.")
    answer_id: StrictStr | None = Field(None, max_length=64, description="A later vote: the id the first one returned.")
    vote: Vote
    voter: StrictStr = Field("web", min_length=1, max_length=100, description="Who votes (one vote per voter and answer).")

    @model_validator(mode="after")
    def _one_answer(self) -> VoteRequest:
        if (self.answer is None) == (self.answer_id is None):
            raise ValueError("give either answer (a first vote) or answer_id (a later one)")
        return self


class Voted(BaseModel):
    answer_id: str


@router.post("/feedback", response_model=Voted, responses={**NOT_FOUND, **TOO_LARGE})
def vote(body: VoteRequest, store: FeedbackDep) -> Voted:
    """A 👍/👎 on an answer (the web page's buttons), kept with Slack's votes. A voter's later vote
    on the same answer replaces the earlier one."""
    answer_id = body.answer_id
    if body.answer is not None:
        shown = body.answer
        answer_id = store.record_answer(Answer(
            question=shown.question, answer=shown.answer, answerable=shown.answerable, mode=shown.mode,
            citations=[Citation(title=None, date=None, **c.model_dump()) for c in shown.citations], passages=[],
        ), channel="web", asker=None)
    assert answer_id is not None
    store.vote(answer_id, body.voter, body.vote)
    return Voted(answer_id=answer_id)
