"""Loading files into Documents: exact text plus the metadata a citation shows. No model here."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from . import aliases
from .errors import CorpusError, InvalidRequest
from .loaders import SUPPORTED_SUFFIXES, Extracted, extract

# Bump when what is derived from a file's text changes (2: the acronyms it defines, in its
# metadata): the index records it, and an index read by an older version has its documents'
# metadata derived anew from the stored text when it is opened (nothing embedded again).
READER_VERSION = 2

# Turns a file's name and bytes into text: ``extract`` itself, or one under a budget.
Reader = Callable[[str, bytes], Extracted]

# A leading "date 2024-11-09" (or "Date: 2024-11-09") header line or prefix.
_DATE_HEADER = re.compile(r"\A\s*(?:date|published)\s*:?\s*(\d{4}-\d{2}-\d{2})\b[ \t]*\n?", re.I)
_TITLE_HEADER = re.compile(r"\A\s*title\s*:\s*(\S[^\n]*)\n", re.I)
_MD_TITLE = re.compile(r"\A\s*#\s+(\S[^\n]*)\n")
# A news dateline: "WASHINGTON( WNAM MONITORING):" or "LONDON (Reuters) -".
_DATELINE = re.compile(r"\A\s*([A-Z][A-Z .,'-]{2,}?)\s*\(\s*([^)\n]{1,60}?)\s*\)\s*[:\u2014\u2013-]")


@dataclass(frozen=True)
class Document:
    """A document as indexed. ``text`` is what every citation's offsets index into."""

    source: str
    text: str
    title: str | None = None
    date: str | None = None
    # Where the body starts after header lines (title/date), which are metadata, not content.
    body_start: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    # Offset of each page's first character, for formats with pages (PDF).
    pages: tuple[int, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding ``offset``, or None for a document without pages."""
        return bisect_right(self.pages, offset) if self.pages else None

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def parse_document(source: str, text: str) -> Document:
    """Build a Document from decoded text, reading title/date headers and a dateline."""
    title: str | None = None
    date: str | None = None
    metadata: dict[str, str] = {}
    pos = 0
    # Headers may come in either order; each is consumed at most once.
    for _ in range(2):
        rest = text[pos:]
        if date is None and (m := _DATE_HEADER.match(rest)):
            date, pos = m.group(1), pos + m.end()
        elif title is None and (m := _TITLE_HEADER.match(rest) or _MD_TITLE.match(rest)):
            title, pos = m.group(1).strip(), pos + m.end()
    if m := _DATELINE.match(text[pos:]):
        metadata["dateline"] = f"{m.group(1).strip()} ({m.group(2).strip()})"
    if found := aliases.mine(text):  # kept with the document, so questions may use either form
        metadata["aliases"] = aliases.encode(found)
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return Document(source, text, title, date, pos, metadata)


def reread(doc: Document) -> dict[str, str]:
    """A stored document's metadata as this version reads its text (what the extractor gave, and
    what is derived from the text anew)."""
    return {**doc.metadata, **parse_document(doc.source, doc.text).metadata}


def read_document(path: Path, source: str, read: Reader = extract) -> Document:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{source}: cannot read file ({exc.strerror})") from exc
    return load_bytes(source, data, read)


def load_bytes(source: str, data: bytes, read: Reader = extract) -> Document:
    """A Document from a file's bytes in any supported format."""
    found = read(source, data)
    doc = parse_document(source, found.text)
    title = doc.title or found.title
    return replace(doc, title=title, pages=found.pages)


def discover(paths: Iterable[Path]) -> dict[str, Path]:
    """Map source names to files. A directory contributes its supported files, named by their
    path relative to it; a file is named by its file name. Hidden files are skipped."""
    found: dict[str, Path] = {}
    for root in paths:
        if root.is_dir():
            entries = []
            # os.walk, not Path.rglob: a corpus of 100,000 files is listed in a fraction of the time.
            for folder, dirs, names in os.walk(root):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                prefix = os.path.relpath(folder, root).replace(os.sep, "/")
                for name in sorted(names):
                    if name.startswith(".") or os.path.splitext(name)[1].lower() not in SUPPORTED_SUFFIXES:
                        continue
                    path = Path(folder, name)
                    if path.is_file():
                        entries.append((name if prefix == "." else f"{prefix}/{name}", path))
            entries.sort()
        elif root.is_file():
            entries = [(root.name, root)]
        else:
            raise CorpusError(f"{root}: no such file or directory")
        for source, path in entries:
            if source in found and found[source].resolve() != path.resolve():
                raise CorpusError(f"two files would both be named {source!r}: {found[source]}, {path}")
            found[source] = path
    return found


def load_documents(paths: Iterable[Path]) -> list[Document]:
    return [read_document(path, source) for source, path in discover(paths).items()]


# Letters and digits of every script stay (``\w``); punctuation that file systems or shells treat
# specially (``? * : | " < >`` and the like) becomes ``_``.
_UNSAFE = re.compile(r"[^\w.() +-]+")
# Bytes per path part kept (file systems allow 255; room is left for the staging suffixes).
MAX_NAME_BYTES = 200


def safe_name(name: str) -> str:
    """A relative source name that stays inside the folder it is written to: ``..``, absolute
    roots, hidden-file dots, control and other odd characters are dropped or replaced; letters
    of any script are kept (NFC-normalised), and a long name is cut before its extension."""
    parts = []
    for part in re.split(r"[/\\]+", unicodedata.normalize("NFC", name)):
        part = _UNSAFE.sub("_", "".join(ch for ch in part if ch.isprintable())).strip(" ._")
        if part and part not in (".", ".."):
            parts.append(_shortened(part))
    cleaned = "/".join(parts)
    if not cleaned or "." not in parts[-1]:
        raise InvalidRequest(f"file name {name!r} has no usable name and extension")
    return cleaned


def _shortened(part: str) -> str:
    if len(part.encode()) <= MAX_NAME_BYTES:
        return part
    stem, dot, suffix = part.rpartition(".")
    if not dot or len(suffix.encode()) > 16:
        stem, suffix = part, ""
    room = MAX_NAME_BYTES - len(suffix.encode()) - len(dot)
    return stem.encode()[:room].decode("utf-8", "ignore").rstrip(" ._") + dot + suffix
