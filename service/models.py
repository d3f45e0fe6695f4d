"""What Footnote returns. These models are also the API's response bodies."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


# Request fields take JSON as the schema types it, no more: lax parsing would also take "5" for an
# integer or 1700000000 for a date, which the published schema says is invalid.
def _json_int(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():  # JSON Schema's integer includes 5.0
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def _json_date(value: Any) -> Any:
    if not isinstance(value, (str, dt.date)):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_int)]
JsonDate = Annotated[dt.date, BeforeValidator(_json_date)]


def _unicode(value: Any) -> Any:
    """JSON can spell a lone surrogate (``"\\ud800"``), which no tokenizer, database or encoder
    takes: refused here, as this request's error, before it reaches anything shared."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
    elif isinstance(value, (list, tuple)):
        for item in value:
            _unicode(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _unicode(key)
            _unicode(item)
    return value


class RequestModel(BaseModel):
    """A request body (or a part of one): every text in it is valid Unicode, keys and fields a
    model ignores included."""

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, value: Any) -> Any:
        return _unicode(value)


class Filters(RequestModel):
    """Which documents a question may be answered from; applied inside retrieval, so ``top_k``
    passages still come back when enough documents match."""

    model_config = ConfigDict(extra="forbid")

    source: list[str] | None = Field(
        None, min_length=1, max_length=1000, description="Only these documents (file names)."
    )
    date_from: JsonDate | None = Field(None, description="Only documents dated on or after this day.")
    date_to: JsonDate | None = Field(None, description="Only documents dated on or before this day.")

    @model_validator(mode="after")
    def _ordered(self) -> Filters:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"date_from {self.date_from} is after date_to {self.date_to}")
        return self

    def admits(self, source: str, date: str | None) -> bool:
        if self.source is not None and source not in self.source:
            return False
        if self.date_from or self.date_to:
            try:
                day = dt.date.fromisoformat(date or "")
            except ValueError:  # an undated document cannot be shown to fall in the range
                return False
            if (self.date_from and day < self.date_from) or (self.date_to and day > self.date_to):
                return False
        return True


class Citation(BaseModel):
    id: int = Field(description="The n of the [n] marker in the answer.")
    source: str = Field(description="File name of the cited document.")
    title: str | None
    date: str | None
    quote: str = Field(description="Exactly text_of(source)[start:end].")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    page: int | None = Field(None, description="1-based page of `start`, for paged formats (PDF).")


class Passage(BaseModel):
    rank: int = Field(ge=1)
    source: str
    chunk_id: str
    text: str = Field(description="Exactly text_of(source)[start:end].")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    page: int | None = Field(None, description="1-based page of `start`, for paged formats (PDF).")
    score: float = Field(
        description="Ranking score, higher is better: fused retrieval, or the reranker's when one is set."
    )


Mode = Literal["extractive", "llm"]


class Turn(RequestModel):
    """An earlier question and its answer, for follow-ups."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(max_length=4000)
    answer: str = Field("", max_length=8000)


class Unsupported(BaseModel):
    """A generated sentence the documents do not back: uncited, or its cited passages do not
    say it."""

    sentence: str = Field(description="The sentence as it appears in `answer`.")
    citations: list[int] = Field(description="The [n] it cites; empty when it cites nothing.")
    reason: str


class Answer(BaseModel):
    question: str
    answer: str = Field(description="The answer; [n] markers name citations.")
    answerable: bool = Field(description="False when the documents do not answer the question.")
    citations: list[Citation]
    passages: list[Passage]
    mode: Mode = Field("extractive", description="The answerer that produced `answer`.")
    confidence: float | None = Field(
        None, ge=0, le=1, description="How likely the quoted answer is right (calibrated: among answers given "
        "with confidence p, about p are right, on questions like the training data's). With "
        "FOOTNOTE_ANSWER_DECISION=learned it decides: below FOOTNOTE_ANSWER_THRESHOLD the question is refused; with "
        "the rules it describes their answers (null on their refusals). Null for generated answers.",
    )
    fallback_reason: str | None = Field(
        None, description="Why LLM mode was asked for but the extractive answer is given."
    )
    standalone_question: str | None = Field(
        None, description="The follow-up rewritten as a standalone question, when history was given (LLM mode)."
    )
    unsupported: list[Unsupported] = Field(
        default_factory=list, description="Generated sentences that no cited passage supports (LLM mode)."
    )
    dropped_markers: list[int] = Field(
        default_factory=list, description="[n] markers the model wrote that name no passage; removed from `answer`."
    )


class DocumentSummary(BaseModel):
    source: str
    title: str | None
    date: str | None
    chunks: int
    sha256: str
    metadata: dict[str, str] = Field(default_factory=dict, description="e.g. a news dateline.")
    characters: int | None = Field(None, description="Length of the text, in characters (in lists).")


class DocumentDetail(DocumentSummary):
    text: str = Field(description="The text all offsets index into.")
    pages: list[int] = Field(default_factory=list, description="Offset of each page's first character (PDF).")


class Health(BaseModel):
    status: str
    documents: int
    chunks: int
    model: str
    skipped: dict[str, str] = Field(
        default_factory=dict, description="Corpus files the last sync could not read, with why (the rest are served).",
    )


class IndexChange(BaseModel):
    """What a write did to the index. Nothing is reported before it is durably saved."""

    added: list[str]
    updated: list[str]
    unchanged: list[str] = Field(description="Same name and same text: nothing to do.")
    removed: list[str]
    duplicates: dict[str, str] = Field(
        description="Not added, the same text being indexed under another name: new name -> that name."
    )
    documents: int = Field(description="Documents in the index now.")
    chunks: int


@dataclass(frozen=True)
class Token:
    """A piece of an answer's text, as it is written."""

    text: str


@dataclass(frozen=True)
class Final:
    """The checked answer, which replaces the text streamed before it: always the last event."""

    answer: Answer


# What a streamed answer is made of: tokens, then one Final.
StreamEvent = Token | Final
