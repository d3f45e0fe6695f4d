"""Checking a generated answer against the passages it cites.

The model's reply is split into sentences. Each `[n]` must name a retrieved passage (others are
removed and reported); each cited passage is narrowed to the sentence that best supports the
claim, so a citation quotes exact text as in extractive mode; and a sentence is flagged
unsupported when it cites nothing, when its cited sentences are too far from it (meaning and
informative words), or when it names something (a name, an acronym, a number) that its cited
documents never mention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..embedding import Embedder
from ..models import Citation, Unsupported
from ..retrieval import Hit, SearchIndex
from ..text import Analyzer

# Support is the same blend of meaning and words the extractive answerer ranks sentences with.
from .extractive import NOT_COVERED
from .support import Vocabulary, support

MARKER = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]")
# A sentence ends after . ! ? and the markers that follow it ("... in 2016. [1]"), or at a line break.
_SENTENCE_END = re.compile(r"[.!?](?:[ \t]*\[[\d,\s]+\])*[ \t]+|\n+")
# Outside content a model could be talked into emitting: images (which fetch on render), links,
# raw HTML, URLs. Images, HTML and URLs go; a link keeps its text.
_HTML = re.compile(r"</?\s*[a-zA-Z][^>]*>")
# A reference definition (`[g]: //host/x`) turns `[x][g]` or `[g]` anywhere into a link: it goes.
_REFERENCE = re.compile(r"^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*\S.*$", re.M)
# URLs with a scheme, protocol-relative (`//host`), `www.`, e-mail addresses, and bare domains
# of common top-level domains (chat renderers such as Slack link those too).
_URL = re.compile(
    r"\b(?:https?|ftp)://\S+|\bwww\.\S+|(?<![\w:/])//[\w-]+(?:\.[\w-]+)+\S*|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"
    r"|\b(?:[\w-]+\.)+(?:com|org|net|io|co|ai|app|dev|info|biz|xyz|example|gov|edu)\b\S*",
    re.I,
)

_REFUSAL = re.compile(r"do(?:es)? not (?:cover|contain|answer)|cannot be answered|no information", re.I)
# Sentences with fewer informative words than this ("Here is what I found:") are not claims.
_CLAIM_MIN_TERMS = 2


@dataclass
class Checked:
    text: str
    citations: list[Citation]
    unsupported: list[Unsupported] = field(default_factory=list)
    dropped_markers: list[int] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.citations)


def _unlinked(text: str) -> str:
    """``text`` without images, link targets, reference definitions or HTML tags. Brackets are
    paired by depth in one pass, so nested ones (``![a [b]](//x)``) are taken whole, in linear
    time whatever the nesting."""
    text = _REFERENCE.sub("", text)
    brackets, parens = _pairs(text, "[", "]"), _pairs(text, "(", ")")
    out: list[str] = []
    resume: dict[int, int] = {}  # a link's closing `]` -> past its `(target)`
    i = 0
    while i < len(text):
        if i in resume:
            i = resume.pop(i)
            continue
        image = text.startswith("![", i)
        opening = i + 1 if image else i
        end = brackets.get(opening)
        target = parens.get(end + 1) if end is not None else None
        if end is not None and target is not None:
            if image:  # gone, alt text and all
                i = target + 1
            else:  # its text stays (and is read on for links inside it); the target goes
                resume[end] = target + 1
                i = opening + 1
            continue
        out.append(text[i])
        i += 1
    return _HTML.sub("", "".join(out))


def _pairs(text: str, opening: str, closing: str) -> dict[int, int]:
    """Each opening bracket's position -> its partner's, for the brackets that close."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for j, ch in enumerate(text):
        if ch == opening:
            stack.append(j)
        elif ch == closing and stack:
            pairs[stack.pop()] = j
    return pairs


def defang(text: str) -> str:
    """Text made safe to show where markdown is rendered (chat UIs, Slack): no images, no links,
    no tags, and URLs as code, which no renderer turns into a link or fetches."""
    return _URL.sub(lambda m: f"`{m.group(0).replace('`', '')}`", _unlinked(text))


def clean(text: str, hits: Sequence[Hit]) -> tuple[str, list[int]]:
    """A generated ``text`` with no images, links, tags or URLs (a planted document could have
    the model write them; the citations carry the documents' own text), and with the [n] markers
    that name no passage removed (and listed)."""
    text = _URL.sub("", _unlinked(text))
    dropped: list[int] = []

    def keep_valid(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        valid = [n for n in dict.fromkeys(numbers) if 1 <= n <= len(hits)]
        dropped.extend(n for n in numbers if n not in valid and n not in dropped)
        return f"[{', '.join(map(str, valid))}]" if valid else ""

    text = MARKER.sub(keep_valid, text)
    # What removals leave behind: doubled spaces, a space before punctuation.
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", text)), dropped


def cleaned_stream(tokens: Iterable[str], hits: Sequence[Hit]) -> Iterator[str]:
    """The model's tokens, cleaned as they come: text is held back only while a construct that
    cleaning may remove is still open (a marker, link, image or tag spans several tokens), so that
    nothing streamed carries an image, a foreign link or a marker naming no passage."""
    buffer = ""
    for token in tokens:
        buffer += token
        if cut := _release_point(buffer):
            if piece := clean(buffer[:cut], hits)[0]:
                yield piece
            buffer = buffer[cut:]
    if buffer and (piece := clean(buffer, hits)[0]):
        yield piece


def _release_point(buffer: str) -> int:
    """The end of the buffer's last whitespace outside any open `[`, `(` or `<`, and not right
    after a `]` (a link's `(url)` may follow); URLs end at whitespace, so they are whole."""
    cut = depth = 0
    for i, ch in enumerate(buffer):
        if ch in "[(<":
            depth += 1
        elif ch in "])>":
            depth = max(0, depth - 1)
        elif ch.isspace() and depth == 0 and i and buffer[i - 1] != "]":
            cut = i + 1
    return cut


def split_sentences(text: str) -> list[str]:
    out: list[str] = []
    start = 0
    for m in [*_SENTENCE_END.finditer(text), None]:
        end = m.end() if m else len(text)
        piece = text[start:end].strip()
        start = end
        if not piece:
            continue
        if out and not MARKER.sub("", piece).strip(" .,;"):  # markers alone close the sentence before
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


class Grounder:
    def __init__(self, analyzer: Analyzer, embedder: Embedder, threshold: float) -> None:
        self.analyzer = analyzer
        self.embedder = embedder
        self.threshold = threshold

    def check(self, reply: str, index: SearchIndex, hits: Sequence[Hit]) -> Checked:
        text, dropped = clean(reply, hits)
        text = text.strip()
        sentences = split_sentences(text)
        cited = [[int(n) for m in MARKER.findall(s) for n in re.findall(r"\d+", m)] for s in sentences]
        if not any(cited):
            refused = not text or bool(_REFUSAL.search(text))
            if refused:
                return Checked(NOT_COVERED, [], dropped_markers=dropped)
        claims = [MARKER.sub("", s).strip() for s in sentences]
        vectors = self.embedder.embed(claims) if claims else np.zeros((0, 1), dtype=np.float32)

        # For each cited passage, the sentence spans chosen for the claims that cite it.
        spans: dict[int, list[tuple[int, int]]] = {}
        unsupported: list[Unsupported] = []
        for sentence, claim, numbers, vector in zip(sentences, claims, cited, vectors):
            terms = set(self.analyzer.terms(claim))
            if not numbers:
                if len(terms) >= _CLAIM_MIN_TERMS and not _REFUSAL.search(claim):
                    unsupported.append(Unsupported(sentence=sentence, citations=[], reason="cites no passage"))
                continue
            vocabulary = Vocabulary.of(claim, index, self.analyzer)
            best = 0.0
            for n in dict.fromkeys(numbers):
                start, end, score = self._best_sentence(index, hits[n - 1], vocabulary, vector)
                spans.setdefault(n, []).append((start, end))
                best = max(best, score)
            # The whole document, not the passage: "the alliance" in a passage is NATO in its article.
            sources = {hits[n - 1].chunk.source for n in numbers}
            missing = [
                name for name in dict.fromkeys(self.analyzer.names(claim))
                if not any(index.mentions(source, name) for source in sources)
            ]
            if missing:
                reason = f"names {', '.join(missing)}, which its cited documents never mention"
                unsupported.append(Unsupported(sentence=sentence, citations=sorted(set(numbers)), reason=reason))
            elif best < self.threshold:
                reason = f"its cited passages do not say this (support {best:.2f} < {self.threshold:.2f})"
                unsupported.append(Unsupported(sentence=sentence, citations=sorted(set(numbers)), reason=reason))

        citations = []
        docs = index.infos({hits[n - 1].chunk.source for n in spans})
        for n in sorted(spans):
            chunk = hits[n - 1].chunk
            doc = docs[chunk.source]
            # One quote per passage: the narrowest span holding every sentence the answer relies on.
            start, end = min(s for s, _ in spans[n]), max(e for _, e in spans[n])
            citations.append(Citation(
                id=n, source=chunk.source, title=doc.title, date=doc.date,
                quote=chunk.span(start, end),
                start=start, end=end, page=doc.page_at(start),
            ))
        return Checked(text, citations, unsupported, dropped)

    def _best_sentence(
        self, index: SearchIndex, hit: Hit, vocabulary: Vocabulary, vector: np.ndarray
    ) -> tuple[int, int, float]:
        sentences = index.chunk_sentences([hit.row]).get(hit.row, [])
        dense = index.sentence_vectors([s.id for s in sentences]) @ vector.astype(np.float32)
        best = (hit.chunk.start, hit.chunk.end, -1.0)
        for s, cos in zip(sentences, dense):
            lexical, _ = vocabulary.coverage(index.sentence_terms(hit.chunk.span(s.start, s.end)))
            score = support(float(cos), lexical)
            if score > best[2]:
                best = (s.start, s.end, score)
        return best
