"""A Footnote server seen through the same methods as a local Engine (for `--url`)."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from .errors import DocumentNotFound, FootnoteError, InvalidRequest
from .models import Answer, DocumentDetail, Filters


class RemoteEngine:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise FootnoteError(f"cannot reach {self.url}: {exc}") from exc
        if response.is_success:
            return response
        try:
            body = response.json()
            message = body.get("message") or body.get("detail")
        except ValueError:
            message = response.text[:200]
        kind = {404: DocumentNotFound, 422: InvalidRequest}.get(response.status_code, FootnoteError)
        raise kind(f"{self.url} answered {response.status_code}: {message}")

    def ask(self, question: str, top_k: int = 5, filters: Filters | None = None) -> Answer:
        body: dict[str, object] = {"question": question, "top_k": top_k}
        if filters is not None:
            body["filters"] = filters.model_dump(mode="json", exclude_none=True)
        return Answer.model_validate_json(self._request("POST", "/ask", json=body).content)

    def document(self, source: str) -> DocumentDetail:
        return DocumentDetail.model_validate_json(
            self._request("GET", f"/documents/{quote(source)}").content
        )
