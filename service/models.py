"""What Footnote returns. These models are also the API's response bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Citation(BaseModel):
    id: int = Field(description="The n of the [n] marker in the answer.")
    source: str = Field(description="File name of the cited document.")
    title: str | None
    date: str | None
    quote: str = Field(description="Exactly text_of(source)[start:end].")
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Passage(BaseModel):
    rank: int = Field(ge=1)
    source: str
    chunk_id: str
    text: str = Field(description="Exactly text_of(source)[start:end].")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: float = Field(description="Fused retrieval score (higher is better).")


class Answer(BaseModel):
    question: str
    answer: str = Field(description="The answer; [n] markers name citations.")
    answerable: bool = Field(description="False when the documents do not answer the question.")
    citations: list[Citation]
    passages: list[Passage]


class DocumentSummary(BaseModel):
    source: str
    title: str | None
    date: str | None
    chunks: int
    sha256: str
    metadata: dict[str, str] = Field(default_factory=dict, description="e.g. a news dateline.")


class DocumentDetail(DocumentSummary):
    text: str = Field(description="The text all offsets index into.")


class Health(BaseModel):
    status: str
    documents: int
    chunks: int
    model: str
