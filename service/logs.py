"""Logging for the CLI and the server: one stderr handler whose formatter blanks out every secret
the settings hold, whatever logged it (ours, uvicorn, httpx, Slack, OpenAI clients) and in
tracebacks too."""

from __future__ import annotations

import logging
import sys

from .settings import Settings

# Libraries' chatter (per-call debug lines, weight-loading bars) drowns the CLI's own output.
_QUIET = ("bm25s", "sentence_transformers", "transformers", "httpx", "httpcore", "urllib3", "filelock")


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        # Longest first, so a key that contains another is blanked whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s", settings.secrets()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    if root.level > logging.DEBUG:
        for name in _QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
