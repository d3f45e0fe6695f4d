"""The HTTP face of Footnote (FastAPI)."""

from .app import create_app

__all__ = ["create_app"]
