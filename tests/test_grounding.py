"""Cleaning and splitting a generated reply, token stream by token stream."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.answering.grounding import clean, cleaned_stream, defang, split_sentences
from service.chunking import Chunk
from service.retrieval import Hit

HITS = [
    Hit(Chunk(f"doc#{n}", "doc.txt", 0, 10, f"passage {n} see https://example.org/report"), n, 1.0)
    for n in range(3)
]
REPLY = (
    "Resolutions 2270 and 1718 were cited [1][9]. ![x](http://evil.example/p.png) "
    "The report is at https://example.org/report and [a mirror](http://evil.example/m) [2, 7]. "
    "<img src=http://evil.example/i.png> Done [3]."
)


def test_clean_drops_unknown_markers_images_links_tags_and_urls() -> None:
    text, dropped = clean(REPLY, HITS)
    assert dropped == [9, 7]
    assert "evil.example" not in text and "![" not in text and "<img" not in text
    assert "example.org" not in text  # even a URL a passage holds: the citation carries it
    assert "cited [1]." in text and "a mirror [2]." in text and "Done [3]." in text


@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=40))
def test_a_stream_cut_anywhere_cleans_to_the_whole_reply(cuts: list[int]) -> None:
    tokens, rest = [], REPLY
    for size in cuts:
        tokens.append(rest[:size])
        rest = rest[size:]
    tokens.append(rest)
    pieces = list(cleaned_stream(tokens, HITS))
    streamed = "".join(pieces)
    assert " ".join(streamed.split()) == " ".join(clean(REPLY, HITS)[0].split())
    assert not any("evil" in p or "[9]" in p or "[7" in p for p in pieces)


def test_sentences_keep_their_trailing_markers() -> None:
    assert split_sentences("First claim. [1] Second claim [2].\nThird? [1, 2]") == [
        "First claim. [1]", "Second claim [2].", "Third? [1, 2]"
    ]


def test_defang_leaves_no_renderable_link() -> None:
    assert defang("See ![i](http://a.example/x.png) [here](http://b.example) or http://c.example") == (
        "See  here or `http://c.example`"
    )


BYPASSES = [
    "![status [ok]](//evil.example/pixel.png?leak=x)",  # nested brackets, protocol-relative
    "[portal [login]](//evil.example/login)",
    "Read [the notice][g] now.\n[g]: //evil.example/notice",  # reference-style
    "Mail a@evil.example or visit evil.example/phish today.",  # e-mail, bare domain
    "<https://evil.example/auto>",  # autolink
]


@pytest.mark.parametrize("payload", BYPASSES, ids=["image", "link", "reference", "bare", "autolink"])
def test_nested_relative_and_reference_links_are_stripped_too(payload: str) -> None:
    text, _ = clean(f"Resolution 2270 was cited [1]. {payload}", HITS)
    assert "evil" not in text and "](" not in text and "![" not in text and "cited [1]" in text
    shown = defang(payload)
    assert "](" not in shown and "![" not in shown and "]:" not in shown
    # What is left of an address is code, which no renderer links or fetches.
    for word in shown.split():
        assert "evil.example" not in word or word.startswith("`"), shown


def test_hostile_bracket_nesting_costs_linear_time() -> None:
    text = "[" * 50_000 + "(" * 50_000
    began = time.perf_counter()
    clean(text, HITS)
    defang(text)
    assert time.perf_counter() - began < 5
