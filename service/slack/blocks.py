"""How an answer looks in Slack (Block Kit), with every piece of document text made inert:
Slack reads `<...>` as links and mentions (`<!channel>`, `<@U1>`, `<http://x|y>`), and links
bare URLs, so document text is defanged and escaped before it is shown."""

from __future__ import annotations

from typing import Any

from ..answering.grounding import defang
from ..models import Answer

NOTHING_FOUND = "Nothing in the documents answers this."
ERROR = "Sorry, something went wrong while answering; the details are in the service log."
QUOTE_CHARS = 280
SECTION_CHARS = 2900  # Slack refuses section text over 3,000 characters

Block = dict[str, Any]


def escape(text: str) -> str:
    """Document or model text as inert mrkdwn: no link, no mention, no broadcast."""
    text = defang(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # "@channel" and friends are plain words unless `link_names` is set, which this bot never
    # sets; the zero-width space keeps them inert if a client re-parses the text anyway.
    for word in ("channel", "here", "everyone"):
        text = text.replace(f"@{word}", f"@\u200b{word}")
    return text


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 1)
    return text[: cut if cut > limit // 2 else limit - 1].rstrip(",;:") + "\u2026"


def answer_blocks(answer: Answer, feedback_id: str | None) -> list[Block]:
    if not answer.answerable:
        blocks: list[Block] = [_section(f":mag: {NOTHING_FOUND}")]
    else:
        blocks = [_section(escape(shorten(answer.answer, SECTION_CHARS)))]
        for c in answer.citations:
            meta = " \u00b7 ".join(escape(x) for x in (c.title, c.date, f"p. {c.page}" if c.page else None) if x)
            head = f"*[{c.id}]* `{escape(c.source)}`" + (f" \u00b7 {meta}" if meta else "")
            blocks.append(_context(f"{head}\n>{escape(shorten(c.quote, QUOTE_CHARS))}"))
        if answer.confidence is not None:
            blocks.append(_context(f"Confidence: {answer.confidence:.0%}"))
        for u in answer.unsupported:
            blocks.append(_context(f":warning: Not backed by the sources: _{escape(shorten(u.sentence, 200))}_ ({escape(u.reason)})"))
    if answer.fallback_reason:
        blocks.append(_context(":information_source: The language model was unavailable; this answer quotes the documents."))
    if feedback_id:
        blocks.append({
            "type": "actions", "block_id": "footnote_feedback",
            "elements": [
                _button(":thumbsup:", "feedback_up", feedback_id),
                _button(":thumbsdown:", "feedback_down", feedback_id),
            ],
        })
    return blocks


def answer_text(answer: Answer) -> str:
    """The notification and fallback text; also what a thread's history is read back from."""
    return escape(shorten(answer.answer, SECTION_CHARS)) if answer.answerable else NOTHING_FOUND


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _button(emoji: str, action_id: str, value: str) -> Block:
    return {"type": "button", "action_id": action_id, "value": value,
            "text": {"type": "plain_text", "text": emoji, "emoji": True}}
