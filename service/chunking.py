"""Sentence-aware chunking. Every span is cut from the document text by offset, never found by
searching, so ``text[start:end]`` is the chunk (or sentence) by construction."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .documents import Document

# Bump when segmentation or packing changes: the manifest records it, so old indexes rebuild.
CHUNKER_VERSION = 2

_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st vs etc e.g i.e cf al jan feb mar apr jun jul aug sep sept oct
    nov dec no nos gen gov sen rep col lt sgt capt adm inc co corp ltd fig approx dept est mt ft
    u.s u.n u.k e.u""".split()
)
# End punctuation, then closing quotes/brackets, then space, then something that can start one.
_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c\u2018(\[]?[A-Z0-9])")
_TERMINAL = ".!?:;\"'\u201d\u2019)]"
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    source: str
    start: int
    end: int
    text: str

    def span(self, start: int, end: int) -> str:
        """The document's text[start:end], for a span inside this chunk."""
        return self.text[start - self.start : end - self.start]


@dataclass(frozen=True)
class Sentence:
    """The unit the index embeds: a passage is found by its best-matching sentence, and an
    answer quotes sentences."""

    source: str
    start: int
    end: int


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the period at ``dot`` closes an abbreviation or an initial (``Sept.``, ``U.N.``)."""
    m = _WORD_BEFORE.search(text, max(0, dot - 12), dot)
    if not m:
        return False
    word = m.group(1).lower().rstrip(".")
    return word in _ABBREVIATIONS or len(word) == 1 or bool(re.fullmatch(r"(?:[a-z]\.)+[a-z]", word))


def _line_spans(text: str, start: int, end: int) -> list[Span]:
    """Split at blank lines, and at single newlines that end a sentence or a short line."""
    spans: list[Span] = []
    pos = start
    for m in re.finditer(r"\n", text[start:end]):
        nl = start + m.start()
        line = text[pos:nl].rstrip()
        after = text[nl + 1 : nl + 2]
        if (
            not line
            or line[-1] in _TERMINAL
            or len(line) - len(line.lstrip()) > 0  # indented (list, code, heading)
            or len(text[pos:nl].strip()) < 60  # short line: heading or list item
            or after in ("\n", "#", "-", "*", "\u2022", "")
        ):
            spans.append(Span(pos, nl))
            pos = nl + 1
    spans.append(Span(pos, end))
    return spans


def _strip(text: str, span: Span) -> Span | None:
    s, e = span.start, span.end
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return Span(s, e) if e > s else None


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans of ``text[start:end]`` with surrounding whitespace excluded."""
    end = len(text) if end is None else end
    out: list[Span] = []
    for line in _line_spans(text, start, end):
        pos = line.start
        for m in _BOUNDARY.finditer(text, line.start, line.end):
            dot = m.start() + len(m.group(0).rstrip("\"'\u201d\u2019)]")) - 1
            if text[dot] == "." and _is_abbreviation(text, dot):
                continue
            if span := _strip(text, Span(pos, m.end())):
                out.append(span)
            pos = m.end()
        if span := _strip(text, Span(pos, line.end)):
            out.append(span)
    return out


def _cap(text: str, spans: list[Span], size: int) -> list[Span]:
    """Cut sentences longer than ``size`` at the last space before the limit."""
    out: list[Span] = []
    for span in spans:
        s = span.start
        while span.end - s > size:
            cut = text.rfind(" ", s + 1, s + size)
            cut = cut if cut > s else s + size
            end = cut
            while end > s and text[end - 1].isspace():
                end -= 1
            out.append(Span(s, end))
            s = cut
            while s < span.end and text[s].isspace():
                s += 1
        if s < span.end:
            out.append(Span(s, span.end))
    return out


def chunk_document(doc: Document, size: int, overlap: int) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``size`` characters; consecutive chunks share
    trailing sentences worth at most ``overlap`` characters."""
    if overlap >= size:
        raise ValueError(f"overlap must be < size, got {overlap} >= {size}")
    text = doc.text
    units = _cap(text, split_sentences(text, doc.body_start), size)
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j = i + 1
        while j < len(units) and units[j].end - units[i].start <= size:
            j += 1
        start, end = units[i].start, units[j - 1].end
        chunks.append(Chunk(f"{doc.source}#{len(chunks)}", doc.source, start, end, text[start:end]))
        if j == len(units):
            break
        # Step back over trailing sentences that fit in the overlap, but always move forward.
        k = j
        while k - 1 > i and end - units[k - 1].start <= overlap:
            k -= 1
        i = k
    return chunks


def chunk_sentences(doc: Document, chunks: list[Chunk]) -> list[Sentence]:
    """The distinct sentences of a document's chunks, in text order (overlapping chunks share
    sentences; each is embedded once)."""
    spans = {(s.start, s.end) for c in chunks for s in split_sentences(doc.text, c.start, c.end)}
    return [Sentence(doc.source, a, b) for a, b in sorted(spans)]
