"""Footnote for agents over MCP (the official SDK's ``MCPServer``): read-only tools with typed,
structured output, and the documents as resources. Served over stdio by `footnote mcp`, and
over streamable HTTP at /mcp by the API. Uploading stays off MCP."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from . import __version__
from .engine import MAX_TOP_K, Engine
from .errors import DocumentNotFound, FootnoteError
from .models import Answer, DocumentSummary, Filters, Mode, Passage

T = TypeVar("T")
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
INSTRUCTIONS = (
    "Footnote answers questions from a fixed set of documents and cites exact quotes. Use `ask` for an "
    "answer with citations (each with source and character offsets), `search` for passages only, "
    "`list_documents` to see what is indexed, and `get_document` to read text around a citation and "
    "verify a quote: text[start:end] is exactly the quote. An answer with answerable=false means the "
    "documents do not cover the question; do not invent one."
)


class Excerpt(BaseModel):
    source: str
    title: str | None
    date: str | None
    length: int = Field(description="Characters in the whole document.")
    start: int
    end: int
    text: str = Field(description="Exactly the document's characters start..end.")
    before: str = Field(description="Up to `context` characters before `start`.")
    after: str = Field(description="Up to `context` characters after `end`.")


class Passages(BaseModel):
    passages: list[Passage]


class Documents(BaseModel):
    documents: list[DocumentSummary]


def build_mcp(engine_of: Callable[[], Engine]) -> MCPServer:
    """An MCP server over the engine ``engine_of()`` returns when a call arrives (the HTTP app
    builds its engine at startup, after this)."""
    server: MCPServer = MCPServer(name="footnote", title="Footnote", version=__version__, instructions=INSTRUCTIONS)

    async def run(work: Callable[[], T]) -> T:
        try:  # the engine blocks (embedding, the store): a worker thread, not the event loop
            return await anyio.to_thread.run_sync(work)
        except FootnoteError as exc:  # the caller's mistake, said as the API says it
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=READ_ONLY)
    async def ask(question: str, mode: Mode | None = None, top_k: int = Field(5, ge=1, le=MAX_TOP_K),
                  filters: Filters | None = None) -> Answer:
        """Answer a question from the documents, with citations: each names its source and the
        character offsets of the exact quote. answerable=false: the documents do not cover it."""
        return await run(lambda: engine_of().ask(question, top_k, filters, mode))

    @server.tool(annotations=READ_ONLY)
    async def search(query: str, k: int = Field(5, ge=1, le=MAX_TOP_K), filters: Filters | None = None) -> Passages:
        """The k passages that best match the query, best first, each with its exact offsets."""
        return Passages(passages=await run(lambda: engine_of().search(query, k, filters)))

    @server.tool(annotations=READ_ONLY)
    async def list_documents() -> Documents:
        """Every indexed document: source name, title, date, chunks."""
        return Documents(documents=await run(lambda: engine_of().documents()))

    @server.tool(annotations=READ_ONLY)
    async def get_document(source: str, start: int | None = Field(None, ge=0), end: int | None = Field(None, ge=0),
                           context: int = Field(200, ge=0, le=10_000)) -> Excerpt:
        """A document's text, or its characters start..end with `context` characters around them
        (to check a citation's quote)."""
        doc = await run(lambda: engine_of().document(source))
        lo = min(start or 0, len(doc.text))
        hi = len(doc.text) if end is None else min(max(end, lo), len(doc.text))
        return Excerpt(source=doc.source, title=doc.title, date=doc.date, length=len(doc.text), start=lo, end=hi,
                       text=doc.text[lo:hi], before=doc.text[max(0, lo - context):lo], after=doc.text[hi:hi + context])

    @server.resource("footnote://documents/{+source}", mime_type="text/plain",
                     description="A document's whole text, as every citation's offsets index into it.")
    async def document(source: str) -> str:
        try:
            found = await anyio.to_thread.run_sync(lambda: engine_of().document(source))
        except DocumentNotFound as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        return found.text

    return server
