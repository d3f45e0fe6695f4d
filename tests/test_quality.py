"""Answer quality on gold questions, scored by the same code as `footnote eval`."""

from __future__ import annotations

import pytest

from service.engine import Engine
from service.evaluation import contains, evaluate, load_gold

from .conftest import DATA, shared


def assert_all_bars_met(engine: Engine, path) -> None:  # noqa: ANN001
    report = evaluate(engine, load_gold(path))
    misses = [(r.id, r.question, r.answer[:150]) for r in report.results if r.id in report.failed]
    assert report.failed == [], misses
    assert report.answer_accuracy == report.citation_accuracy == report.refusal_accuracy == 1.0
    assert report.span_integrity == 1.0
    assert report.retrieval_hit_at_k == 1.0


def test_project_gold_set(engine: Engine) -> None:
    assert_all_bars_met(engine, DATA / "gold_qa.jsonl")


def test_shared_seed_gold_set(engine: Engine) -> None:
    assert_all_bars_met(engine, shared("eval/seed_qa.jsonl"))


def test_answers_are_deterministic(engine: Engine) -> None:
    first = engine.ask("Who are NATO's four Indo-Pacific partners?")
    assert all(engine.ask("Who are NATO's four Indo-Pacific partners?") == first for _ in range(3))


@pytest.mark.parametrize(
    ("answer", "needle", "expected"),
    [
        ("the Democratic People’s Republic of Korea", "democratic people's republic of korea", True),
        ("Resolutions 2270 (2016)", "2270", True),
        ("Euro-Atlantic", "euro atlantic", True),
        ("New  Zealand", "new zealand", True),
        ("Japan", "south korea", False),
    ],
)
def test_gold_matching_ignores_case_quotes_and_punctuation(answer: str, needle: str, expected: bool) -> None:
    assert contains(answer, needle) is expected
