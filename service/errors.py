"""Domain errors. The faces (HTTP, CLI) turn these into responses; nothing below them does.

FootnoteError
 +-- InvalidRequest        the caller asked for something malformed (422)
 +-- DocumentNotFound      no indexed document has that source name (404)
 +-- CorpusError           documents could not be read or named (422 / CLI error)
 |    +-- UnsupportedType  a file type Footnote cannot read (415)
 |    +-- InvalidDocument  a file of a known type that holds no usable text (422)
 |    +-- DocumentTooLarge over the upload size limit (413)
 +-- Unauthorized          a protected route without a valid API key (401)
 +-- IndexStateError       the index is missing, locked, damaged, built differently or unreachable
      +-- IndexMissing     nothing built yet
      +-- IndexMismatch    built with other settings (model, chunker, format, schema)
      +-- IndexCorrupt     files do not match the manifest's checksums
      +-- DatabaseUnavailable  the database store cannot be reached (503; it reconnects by itself)
"""

from __future__ import annotations


class FootnoteError(Exception):
    """Base of every error Footnote raises on purpose; the message is safe to show a user."""


class InvalidRequest(FootnoteError):
    pass


class DocumentNotFound(FootnoteError):
    pass


class CorpusError(FootnoteError):
    pass


class UnsupportedType(CorpusError):
    pass


class InvalidDocument(CorpusError):
    pass


class DocumentTooLarge(CorpusError):
    pass


class Unauthorized(FootnoteError):
    pass


class IndexStateError(FootnoteError):
    pass


class IndexMissing(IndexStateError):
    pass


class IndexMismatch(IndexStateError):
    pass


class IndexCorrupt(IndexStateError):
    """Damaged files: every message ends with the remedy, which never touches the corpus."""

    REMEDY = "rebuild it from the corpus with `footnote index` (or restart `footnote serve`)"

    def __init__(self, problem: str) -> None:
        super().__init__(f"damaged index: {problem}; {self.REMEDY}")


class DatabaseUnavailable(IndexStateError):
    pass
