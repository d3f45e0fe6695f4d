"""Turning file bytes into text, per format. The text returned is what every offset indexes
into, so a loader decides it once and nothing rewrites it afterwards."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from xml.etree import ElementTree

from .errors import InvalidDocument, UnsupportedType

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}

# A .docx is a zip: cap what its XML may inflate to, absolutely and relative to its packed size.
DOCX_MAX_XML_BYTES = 50 * 1024 * 1024
DOCX_MAX_RATIO = 200
# What one PDF stream may inflate to (pypdf allows 75 MB): far beyond any page's text, and a
# page sharing a huge stream with every other page would decode it once per page.
PDF_MAX_STREAM_BYTES = 16 * 1024 * 1024
# Pages of a PDF are joined by a blank line; page numbers are kept as offsets.
PAGE_BREAK = "\n\n"


@dataclass(frozen=True)
class Extracted:
    text: str
    # Offset of each page's first character (PDF), for page numbers in citations.
    pages: tuple[int, ...] = ()
    title: str | None = None


def suffix_of(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def extract(name: str, data: bytes) -> Extracted:
    """The text of a file, or UnsupportedType / InvalidDocument saying what is wrong with it."""
    suffix = suffix_of(name)
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedType(
            f"{name}: unsupported file type {suffix or '(none)'!r}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    if suffix in TEXT_SUFFIXES:
        found = Extracted(decode(name, data))
    elif suffix in HTML_SUFFIXES:
        found = _html(name, data)
    elif suffix == ".pdf":
        found = _pdf(name, data)
    else:
        found = _docx(name, data)
    if not found.text.strip():
        raise InvalidDocument(f"{name}: no text" + (" (an image-only PDF needs OCR first)" if suffix == ".pdf" else ""))
    try:  # a PDF's font map can name a lone surrogate, which nothing downstream can store
        found.text.encode("utf-8")
        (found.title or "").encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidDocument(f"{name}: its text holds characters that are not valid Unicode") from None
    return found


def decode(name: str, data: bytes, declared: str | None = None) -> str:
    """UTF-8 (a BOM is dropped), else the declared encoding, else a detected one; never lossy."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidDocument(f"{name}: binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    candidates = [declared] if declared else []
    if _looks_western(data):
        candidates.append("cp1252")
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None:
        candidates.append(best.encoding)
    for encoding in candidates:
        try:
            return data.decode(encoding)  # strict: a character that does not decode is an error
        except (UnicodeDecodeError, LookupError):
            continue
    raise InvalidDocument(f"{name}: cannot decode the text (not UTF-8, and no encoding fits)")


def _looks_western(data: bytes) -> bool:
    """Whether the bytes read as mostly-ASCII Latin text in Windows-1252, the commonest legacy
    encoding (detectors guess poorly on short texts). Cyrillic or Greek legacy text decoded that
    way is nearly all accented letters, so a low share of them tells the two apart."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    letters = [ch for ch in text if ch.isalpha()]
    accented = sum(1 for ch in letters if not ch.isascii())
    return bool(letters) and accented / len(letters) < 0.3


# -- HTML ----------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_SKIPPED = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe", "object"})
_BLOCKS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table td th tr ul".split()
)


class _TextOf:
    """An lxml parser target: libxml2's HTML parser is linear on hostile markup, where Python's
    ``html.parser`` is quadratic (60 KB of unclosed ``<a `` took a minute)."""

    def __init__(self) -> None:
        self.blocks: list[list[str]] = [[]]
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def start(self, tag: str, attrib: object) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIPPED:
            self._skip += 1
        elif tag in _BLOCKS:
            self.blocks.append([])

    def end(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self.blocks.append([])

    def data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self.blocks[-1].append(data)

    def close(self) -> None:
        return None


def _html(name: str, data: bytes) -> Extracted:
    from lxml import etree

    declared = m.group(1).decode("ascii", "replace") if (m := _META_CHARSET.search(data[:4096])) else None
    text = decode(name, data, declared)
    parser = _TextOf()
    # The text is decoded already (strictly, above): libxml2 gets it as UTF-8, whatever the page declares.
    lx = etree.HTMLParser(target=parser, encoding="utf-8", recover=True, no_network=True, remove_comments=True)
    try:
        lx.feed(text.encode("utf-8"))
        lx.close()
    except etree.LxmlError as exc:
        raise InvalidDocument(f"{name}: not readable HTML ({type(exc).__name__})") from exc
    # Whitespace inside a block is layout, not content; blocks become paragraphs.
    paragraphs = [" ".join("".join(b).split()) for b in parser.blocks]
    title = " ".join("".join(parser.title).split()) or None
    return Extracted("\n\n".join(p for p in paragraphs if p), title=title)


# -- PDF -----------------------------------------------------------------------------------------


def _pdf(name: str, data: bytes) -> Extracted:
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError, PyPdfError

    cap = PDF_MAX_STREAM_BYTES
    try:
        with apply_configuration(zlib_maximum_output_length=cap, lzw_maximum_output_length=cap,
                                 run_length_maximum_output_length=cap, brotli_maximum_output_length=cap,
                                 array_based_stream_maximum_output_length=cap):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                raise InvalidDocument(f"{name}: the PDF is encrypted")
            texts = [(page.extract_text() or "").strip() for page in reader.pages]
            title = (reader.metadata.title if reader.metadata else None) or None
    # PyPdfError covers pypdf's limits (a stream inflating too far, a page tree too deep);
    # NotImplementedError an encryption scheme it does not know.
    except LimitReachedError as exc:
        raise InvalidDocument(f"{name}: the PDF is over a reading limit ({exc}); refused") from exc
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, NotImplementedError, RecursionError) as exc:
        raise InvalidDocument(f"{name}: not a readable PDF ({exc.__class__.__name__})") from exc
    pages, parts, offset = [], [], 0
    for text in texts:
        pages.append(offset)
        parts.append(text)
        offset += len(text) + len(PAGE_BREAK)
    return Extracted(PAGE_BREAK.join(parts), pages=tuple(pages), title=title)


# -- DOCX ----------------------------------------------------------------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx(name: str, data: bytes) -> Extracted:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            info = zf.getinfo("word/document.xml")
            if info.file_size > DOCX_MAX_XML_BYTES or info.file_size > DOCX_MAX_RATIO * max(info.compress_size, 1):
                raise InvalidDocument(f"{name}: document.xml inflates too far ({info.file_size} bytes); refused")
            with zf.open(info) as fh:
                # The header's size could lie: read no more than the cap regardless.
                xml = fh.read(DOCX_MAX_XML_BYTES + 1)
    # RuntimeError: a member flagged as encrypted (zipfile wants a password).
    except (zipfile.BadZipFile, KeyError, OSError, NotImplementedError, RuntimeError) as exc:
        raise InvalidDocument(f"{name}: not a readable .docx ({exc.__class__.__name__})") from exc
    if len(xml) > DOCX_MAX_XML_BYTES:
        raise InvalidDocument(f"{name}: document.xml inflates too far; refused")
    try:
        root = ElementTree.fromstring(xml)
    except (ElementTree.ParseError, LookupError) as exc:  # LookupError: an encoding Python does not know
        raise InvalidDocument(f"{name}: malformed .docx XML") from exc
    paragraphs = []
    for p in root.iter(f"{_W}p"):
        parts = []
        for node in p.iter():
            if node.tag == f"{_W}t" and node.text:
                parts.append(node.text)
            elif node.tag == f"{_W}tab":
                parts.append("\t")
            elif node.tag in (f"{_W}br", f"{_W}cr"):
                parts.append("\n")
        paragraphs.append("".join(parts).strip())
    return Extracted("\n\n".join(p for p in paragraphs if p))
