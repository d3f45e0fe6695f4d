"""A Footnote server seen through the same methods as a local Engine (for `--url`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from urllib.parse import quote

import httpx

from .errors import DocumentNotFound, FootnoteError, InvalidRequest
from .feedback import FeedbackEntry, Vote
from .models import Answer, DocumentDetail, Filters, Final, Mode, Passage, StreamEvent, Token, Turn

# A 429 is waited out (its Retry-After, at most a minute) this many times before it is an error.
MAX_WAITS = 5


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before sending again, for a 429; None for any other response."""
    if response.status_code != 429:
        return None
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.0), 60.0)
    except ValueError:
        return 1.0


class RemoteEngine:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        for waits in range(MAX_WAITS + 1):
            try:
                response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.HTTPError as exc:
                raise FootnoteError(f"cannot reach {self.url}: {exc}") from exc
            if (wait := retry_after(response)) is None or waits == MAX_WAITS:
                break
            time.sleep(wait)
        if not response.is_success:
            self._raise(response)
        return response

    def _raise(self, response: httpx.Response) -> None:
        try:
            body = response.json()
            message = body.get("message") or body.get("detail")
        except ValueError:
            message = response.text[:200]
        kind = {404: DocumentNotFound, 422: InvalidRequest}.get(response.status_code, FootnoteError)
        raise kind(f"{self.url} answered {response.status_code}: {message}")

    def ask(
        self, question: str, top_k: int = 5, filters: Filters | None = None,
        mode: Mode | None = None, history: Sequence[Turn] = (),
    ) -> Answer:
        body = _ask_body(question, top_k, filters, mode, history)
        return Answer.model_validate_json(self._request("POST", "/ask", json=body).content)

    def ask_stream(
        self, question: str, top_k: int = 5, filters: Filters | None = None,
        mode: Mode | None = None, history: Sequence[Turn] = (),
    ) -> Iterator[StreamEvent]:
        """What `Engine.ask_stream` yields, read from the server's `/ask/stream` events."""
        body = _ask_body(question, top_k, filters, mode, history)
        try:
            for waits in range(MAX_WAITS + 1):
                with self._http.stream("POST", "/ask/stream", json=body) as response:
                    if (wait := retry_after(response)) is not None and waits < MAX_WAITS:
                        time.sleep(wait)
                        continue
                    if not response.is_success:
                        response.read()
                        self._raise(response)
                    yield from self._events(response)
                    return
        except httpx.HTTPError as exc:
            raise FootnoteError(f"cannot reach {self.url}: {exc}") from exc

    def _events(self, response: httpx.Response) -> Iterator[StreamEvent]:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
                if event == "token":
                    yield Token(json.loads(data)["text"])
                elif event == "answer":
                    yield Final(Answer.model_validate_json(data))
                elif event == "error":
                    raise FootnoteError(f"{self.url} failed mid-answer: {json.loads(data)['detail']}")

    def search(self, question: str, top_k: int = 5, filters: Filters | None = None) -> list[Passage]:
        body: dict[str, object] = {"query": question, "top_k": top_k}
        if filters is not None:
            body["filters"] = filters.model_dump(mode="json", exclude_none=True)
        return [Passage.model_validate(p) for p in self._request("POST", "/search", json=body).json()]

    def feedback(self, vote: Vote | None = None, limit: int = 100) -> list[FeedbackEntry]:
        params: dict[str, str | int] = {"limit": limit, **({"vote": vote} if vote else {})}
        return [FeedbackEntry.model_validate(e) for e in self._request("GET", "/feedback", params=params).json()]

    def document(self, source: str) -> DocumentDetail:
        return DocumentDetail.model_validate_json(
            self._request("GET", f"/documents/{quote(source)}").content
        )


def _ask_body(
    question: str, top_k: int, filters: Filters | None, mode: Mode | None, history: Sequence[Turn]
) -> dict[str, object]:
    body: dict[str, object] = {"question": question, "top_k": top_k}
    if filters is not None:
        body["filters"] = filters.model_dump(mode="json", exclude_none=True)
    if mode is not None:
        body["mode"] = mode
    if history:
        body["history"] = [t.model_dump() for t in history]
    return body
