"""Names a document gives two forms of: "the North Atlantic Treaty Organization (NATO)", "DPRK
[Democratic People's Republic of Korea]", "PRC stands for China's official name, the People's
Republic of China". Mined when a document is read and kept in its metadata (``aliases``), so a
question may use either form."""

from __future__ import annotations

import re

_LONG = r"[A-Z][\w’'-]*(?:\s+(?:(?:of|the|and|for|on|de)\b|[A-Z][\w’'-]*)){1,9}"
_SHORT = r"[A-Z][A-Za-z]{0,2}[A-Z]{1,6}s?"
_PATTERNS = (
    re.compile(rf"(?P<long>{_LONG})\s*[(\[]\s*(?P<short>{_SHORT})\s*[)\]]"),  # Long Form (LF)
    re.compile(rf"\b(?P<short>{_SHORT})\s*[(\[]\s*(?:the\s+)?(?P<long>{_LONG})\s*[)\]]"),  # LF [Long Form]
)
# "PRC stands for China's official name, the People's Republic of China": the long form is a
# capitalised phrase in what follows, whichever spells the acronym.
_DEFINED = re.compile(rf"\b(?P<short>{_SHORT})\s+(?:stands for|is short for|means)\b(?P<tail>[^.]{{0,100}})")
SMALL = {"of", "the", "and", "for", "on", "de"}  # words a long form's initials skip


def mine(text: str) -> dict[str, str]:
    """Acronym -> long form, where the long form's initials spell the acronym (in order)."""
    pairs = [(m.group("short"), m.group("long")) for p in _PATTERNS for m in p.finditer(text)]
    pairs += [(m.group("short"), long_.group(0)) for m in _DEFINED.finditer(text)
              for long_ in re.finditer(_LONG, m.group("tail"))]
    found: dict[str, str] = {}
    for short, long_ in pairs:
        short = short.removesuffix("s") if short[:-1].isupper() else short
        if short not in found and (form := _spelt(long_, short.upper())):
            found[short] = form
    return found


def _spelt(phrase: str, short: str) -> str | None:
    """The end of ``phrase`` whose initials spell ``short`` ("the North Atlantic Treaty
    Organization" for NATO), or None."""
    words = phrase.split()
    for at in range(len(words)):
        if words[at].lower() in SMALL:
            continue
        initials = "".join(w[0].upper() for w in words[at:] if w.lower() not in SMALL)
        if _spells(initials, short):
            return " ".join(words[at:])
    return None


def _spells(initials: str, short: str) -> bool:
    """Whether the acronym's letters appear in the initials in order, starting with the first."""
    if not initials or initials[0] != short[0]:
        return False
    rest = iter(initials)
    return all(ch in rest for ch in short) and len(initials) <= len(short) + 2


def encode(aliases: dict[str, str]) -> str:
    return "; ".join(f"{short} = {long_}" for short, long_ in sorted(aliases.items()))


def decode(value: str) -> dict[str, str]:
    pairs = (part.split(" = ", 1) for part in value.split("; ") if " = " in part)
    return {short: long_ for short, long_ in pairs}
