"""The LLM mode's prompts: template files in prompts/, filled through LangChain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from langchain_core.prompts import ChatPromptTemplate

from .errors import FootnoteError
from .models import Turn
from .retrieval import Hit
from .store import DocumentInfo

# Each task's variables; a template missing one would silently drop it from the prompt.
_VARIABLES = {"answer": {"passages", "question"}, "condense": {"history", "question"}}


@dataclass(frozen=True)
class Prompts:
    answer: ChatPromptTemplate
    condense: ChatPromptTemplate


def load_prompts(folder: Path) -> Prompts:
    templates = {}
    for task, variables in _VARIABLES.items():
        parts = []
        for role, suffix in (("system", "system"), ("human", "user")):
            path = folder / f"{task}.{suffix}.txt"
            try:
                parts.append((role, path.read_text("utf-8")))
            except OSError as exc:
                raise FootnoteError(f"prompt template {path} cannot be read: {exc.strerror}") from exc
        template = ChatPromptTemplate.from_messages(parts)
        if set(template.input_variables) != variables:
            raise FootnoteError(
                f"prompt templates {folder}/{task}.*.txt use {sorted(template.input_variables)}, "
                f"expected {sorted(variables)} (see prompts/README.md)"
            )
        templates[task] = template
    return Prompts(**templates)


def format_passages(hits: Sequence[Hit], documents: Mapping[str, DocumentInfo]) -> str:
    """Numbered passages, escaped so that document text cannot end its passage and speak as the
    prompt."""
    out = []
    for n, hit in enumerate(hits, start=1):
        doc = documents[hit.chunk.source]
        attrs = f'id="{n}" source="{escape(doc.source)}"'
        if doc.title:
            attrs += f' title="{escape(doc.title)}"'
        if doc.date:
            attrs += f' date="{escape(doc.date)}"'
        out.append(f"<passage {attrs}>\n{escape(hit.chunk.text, quote=False)}\n</passage>")
    return "\n".join(out)


def format_history(history: Sequence[Turn]) -> str:
    lines = []
    for turn in history:
        lines.append(f"User: {turn.question}")
        if turn.answer:
            lines.append(f"Assistant: {turn.answer}")
    return "\n".join(lines)
