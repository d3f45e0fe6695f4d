"""Footnote as an MCP server, driven by the official SDK's own client: in-process, over a real
`footnote mcp` stdio subprocess, and over streamable HTTP at /mcp of a real server (uvicorn on
127.0.0.1, with keys)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from pydantic import SecretStr

from service.api import create_app
from service.engine import Engine, build_engine
from service.mcp_server import build_mcp

from .fake_openai import Running

KEY = "mcp-key-60b2"
QUESTION = "Which UN Security Council resolutions were cited?"
TOOLS = {"ask", "search", "list_documents", "get_document"}


@pytest.fixture(scope="module")
def http_url(engine: Engine) -> Iterator[str]:
    keyed = build_engine(engine.settings.model_copy(update={"api_keys": SecretStr(KEY)}), embedder=engine.embedder)
    with Running(create_app(engine=keyed)) as url:
        yield url


@asynccontextmanager
async def connected(how: str, engine: Engine, http_url: str | None = None) -> AsyncIterator[Client]:
    if how == "in-process":
        target: object = build_mcp(lambda: engine)
    elif how == "stdio":
        env = {**os.environ, "FOOTNOTE_CORPUS_DIR": str(engine.settings.corpus_dir),
               "FOOTNOTE_INDEX_DIR": str(engine.settings.index_dir)}
        target = StdioServerParameters(command=str(Path(sys.executable).with_name("footnote")), args=["mcp"], env=env)
    else:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {KEY}"})
        target = streamable_http_client(f"{http_url}/mcp", http_client=http)
    async with Client(target, read_timeout_seconds=120) as client:  # type: ignore[arg-type]
        yield client


@pytest.mark.parametrize("how", ["in-process", "stdio", "http"])
async def test_an_agent_asks_and_verifies_the_quote(how: str, engine: Engine, http_url: str) -> None:
    async with connected(how, engine, http_url) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS  # read-only: nothing uploads or deletes
        assert all(t.annotations and t.annotations.read_only_hint for t in tools.values())
        assert all(t.output_schema for t in tools.values())

        answer = (await client.call_tool("ask", {"question": QUESTION})).structured_content
        assert answer is not None and answer["answerable"] and "2270" in answer["answer"]
        for citation in answer["citations"]:
            excerpt = (await client.call_tool("get_document", {
                "source": citation["source"], "start": citation["start"], "end": citation["end"], "context": 40,
            })).structured_content
            assert excerpt is not None and excerpt["text"] == citation["quote"] and excerpt["before"]

        found = (await client.call_tool("search", {"query": "NATO summit", "k": 2})).structured_content
        assert found is not None and len(found["passages"]) == 2
        source = found["passages"][0]["source"]
        whole = await client.read_resource(f"footnote://documents/{source}")
        passage = found["passages"][0]
        assert whole.contents[0].text[passage["start"] : passage["end"]] == passage["text"]  # type: ignore[union-attr]

        listed = (await client.call_tool("list_documents", {})).structured_content
        assert listed is not None and {d["source"] for d in listed["documents"]} == {
            d.source for d in engine.documents()}


async def test_mistakes_are_tool_errors_naming_the_problem(engine: Engine) -> None:
    async with connected("in-process", engine) as client:
        missing = await client.call_tool("get_document", {"source": "nope.txt"})
        assert missing.is_error and "nope.txt" in missing.content[0].text  # type: ignore[union-attr]
        refused = await client.call_tool("ask", {"question": QUESTION, "filters": {"source": ["nope.txt"]}})
        assert refused.is_error and "not in the index" in refused.content[0].text  # type: ignore[union-attr]
        outside = await client.call_tool("ask", {"question": "What is the boiling point of tungsten?"})
        assert outside.structured_content is not None and outside.structured_content["answerable"] is False


def test_the_http_endpoint_needs_a_key(http_url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(f"{http_url}/mcp", json=body, headers={"Accept": "application/json, text/event-stream"})
    assert response.status_code == 401 and "API key" in response.json()["detail"]
