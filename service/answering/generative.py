"""The LLM answerer: any LangChain chat model (an OpenAI-compatible endpoint by default), held to
a deadline so that a dead or slow endpoint costs at most ``timeout`` seconds."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from ..errors import FootnoteError
from ..models import Turn
from ..prompts import Prompts, format_history, format_passages
from ..retrieval import Hit
from ..store import DocumentInfo


class LLMError(FootnoteError):
    """The model could not answer (unreachable, failed, too slow); callers fall back. ``reason``
    is one word for metrics: ``timeout``, or the error's class."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_END = object()


def _bounded(produce: Callable[[], Iterable[str]], timeout: float, what: str) -> Iterator[str]:
    """``produce()``'s items, from a worker thread, as long as the whole run stays inside
    ``timeout``: the HTTP client's own timeouts apply per read (and per retry), so a server that
    trickles, stalls between retries, or never answers is cut off here."""
    items: queue.Queue[object] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in produce():
                if stop.is_set():
                    return
                items.put(item)
            items.put(_END)
        except Exception as exc:  # noqa: BLE001 - any failure of the backend is reported as one
            items.put(exc)

    threading.Thread(target=work, name=f"llm-{what}", daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                item = items.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise LLMError(f"the LLM endpoint did not finish the {what} within {timeout:g} s", "timeout") from None
            if item is _END:
                return
            if isinstance(item, Exception):
                raise LLMError(f"the LLM endpoint failed during the {what}: {_describe(item)}",
                               type(item).__name__) from item
            yield item  # type: ignore[misc]
    finally:
        stop.set()


def _describe(exc: Exception) -> str:
    # The class name says what happened (APITimeoutError, InternalServerError, APIConnectionError),
    # with the HTTP status if there was one. The message is left out: an endpoint may echo the
    # request's credential in it ("Incorrect API key provided: sk-..."), and this text reaches clients.
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__} (HTTP {status})" if isinstance(status, int) else type(exc).__name__


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return ""


class GenerativeAnswerer:
    def __init__(self, chat: BaseChatModel, prompts: Prompts, timeout: float) -> None:
        self.chat = chat
        self.prompts = prompts
        self.timeout = timeout

    def condense(self, history: Sequence[Turn], question: str) -> str:
        """The follow-up rewritten to stand alone (for retrieval), or the question if the model
        returns nothing usable."""
        messages = self.prompts.condense.format_messages(history=format_history(history), question=question)
        reply = "".join(_bounded(lambda: [_text(self.chat.invoke(messages).content)], self.timeout, "condensing"))
        standalone = " ".join(reply.split()).strip().strip('"')
        return standalone[:2000] if standalone else question

    def messages(self, question: str, hits: Sequence[Hit], documents: Mapping[str, DocumentInfo]) -> list[BaseMessage]:
        return self.prompts.answer.format_messages(passages=format_passages(hits, documents), question=question)

    def stream(self, messages: list[BaseMessage]) -> Iterator[str]:
        def produce() -> Iterator[str]:
            for chunk in self.chat.stream(messages):
                if text := _text(chunk.content):
                    yield text

        return _bounded(produce, self.timeout, "answer")


def build_chat_model(base_url: str, model: str, api_key: str | None, timeout: float, max_retries: int,
                     temperature: float, max_tokens: int) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=base_url, model=model,
        # Local servers (llama.cpp, vLLM, Ollama) want no key, but the client insists on one.
        api_key=api_key or "unused",
        timeout=timeout, max_retries=max_retries, temperature=temperature, max_completion_tokens=max_tokens,
        # Chat Completions, the protocol every OpenAI-compatible server speaks.
        use_responses_api=False,
    )
