from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.chunking import chunk_document, split_sentences
from service.documents import parse_document
from service.embedding import resolve_model_path

from .conftest import CORPUS

WORDS = st.sampled_from(
    ["NATO", "said", "the", "U.N.", "Sept.", "26", "Dr.", "troops", "“quoted”", "(2016)", "Korea’s", "e.g."]
)
SEPARATORS = st.sampled_from([" ", " ", " ", ". ", "? ", "! ", ".\n", "\n\n", ",  ", "\t", "\u00a0"])


@st.composite
def texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(WORDS, SEPARATORS), min_size=0, max_size=300))
    return "".join(w + s for w, s in parts) + draw(st.sampled_from(["", "end.", "   "]))


@settings(max_examples=300, deadline=None)
@given(text=texts(), size=st.integers(40, 600), overlap_share=st.floats(0, 0.9))
def test_chunks_are_exact_spans_covering_the_body(text: str, size: int, overlap_share: float) -> None:
    overlap = int(size * overlap_share)
    doc = parse_document("doc.txt", text)
    chunks = chunk_document(doc, size, overlap)
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert 0 <= chunk.start < chunk.end <= len(text)
        assert chunk.end - chunk.start <= size
        assert chunk.text == chunk.text.strip()
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts)), "chunks move strictly forward"
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    body = range(doc.body_start, len(text))
    assert all(i in covered for i in body if not text[i].isspace()), "no text is lost between chunks"


def test_sentences_do_not_break_at_abbreviations() -> None:
    text = "NATO condemned Russia’s Sept. 26 statement. The U.N. Security Council met. Dr. Kim spoke."
    sentences = [text[s.start : s.end] for s in split_sentences(text)]
    assert sentences == [
        "NATO condemned Russia’s Sept. 26 statement.",
        "The U.N. Security Council met.",
        "Dr. Kim spoke.",
    ]


def test_closing_quote_stays_with_its_sentence() -> None:
    text = "“We urge all countries to act.” The alliance agreed."
    assert [text[s.start : s.end] for s in split_sentences(text)] == [
        "“We urge all countries to act.”",
        "The alliance agreed.",
    ]


def test_seed_chunks_fit_the_model_window(embedder) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(embedder.name), local_files_only=True)
    for path in CORPUS.glob("*.txt"):
        doc = parse_document(path.name, path.read_text("utf-8"))
        for chunk in chunk_document(doc, 700, 150):
            assert len(tokenizer(chunk.text)["input_ids"]) <= embedder.max_tokens


def test_overlap_must_be_smaller_than_size() -> None:
    with pytest.raises(ValueError, match="overlap must be < size"):
        chunk_document(parse_document("a.txt", "One. Two."), 100, 100)
