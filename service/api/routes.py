"""Routes read like plain functions: the engine arrives as a typed dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from ..engine import MAX_QUESTION_CHARS, MAX_TOP_K, Engine
from ..indexing import IndexReport
from ..models import Answer, DocumentDetail, DocumentSummary, Filters, Health, IndexChange
from .errors import ErrorBody
from .security import require_key, require_key_for_ask

router = APIRouter()


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: StrictStr = Field(min_length=1, max_length=MAX_QUESTION_CHARS, examples=["Which resolutions were cited?"])
    top_k: StrictInt = Field(5, ge=1, le=MAX_TOP_K, description="Passages to retrieve.")
    filters: Filters | None = Field(None, description="Restrict retrieval to matching documents.")

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
    return engine.ask(body.question, body.top_k, body.filters)


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
