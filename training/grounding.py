"""Grounding for self-instruct (HotpotQA): corpus page pairs each round's questions are asked about.

Pairs are bridge pairs (one page links to the other) or comparison pairs
(pages about the same kind of thing); single pages are the fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from core.answers import normalize_answer


@dataclass(frozen=True)
class Grounding:
    """The pages a round is grounded on, and the corpus row they come from."""

    titles: tuple[str, ...]
    kind: Literal["bridge", "comparison", "single"]
    row: int
    what: str = ""  # the shared kind of thing, for comparison pairs ("film", "city")


_KIND_PHRASE = re.compile(r"\b(?:is|was|are|were)\s+(?:an?|the|one of the)\s+([^,.;()]+)", re.IGNORECASE)
_KIND_STOP = re.compile(r"\s+(?:in|of|from|who|which|that|and|based|located|by|for|with|on|at|as"
                        r"|written|known|sung|born|made|set|\w+ed)\b.*$", re.IGNORECASE)


def page_kind(sentences: Sequence[str]) -> str:
    """The kind of thing a page is about, from its first sentence ("film", "city"); "" if unclear."""
    if not sentences:
        return ""
    m = _KIND_PHRASE.search(sentences[0])
    if not m:
        return ""
    words = _KIND_STOP.sub("", m.group(1)).split()
    return words[-1].lower() if words else ""


def _mentions(text: str, title: str) -> bool:
    name = re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()
    return len(name) >= 4 and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


def find_groundings(rows: Sequence[Mapping[str, Any]], per_row: int = 3) -> list[Grounding]:
    """Bridge and comparison page pairs of a HotpotQA-format corpus.

    A row's two supporting pages give its pair (of the row's type). Rows
    without them give bridge pairs where one page names the other's title, and
    comparison pairs of pages about the same kind of thing. Single pages are
    the fallback when no pair exists.
    """
    found: list[Grounding] = []
    for i, row in enumerate(rows):
        pages = {t: s for t, s in row.get("context") or [] if s}
        gold = list(dict.fromkeys(t for t, _ in row.get("supporting_facts") or [] if t in pages))
        kind = row.get("type")
        if len(gold) == 2 and kind in ("bridge", "comparison"):
            a, b = gold
            if kind == "bridge" and _mentions("".join(pages[a]), b) < _mentions("".join(pages[b]), a):
                a, b = b, a
            what = page_kind(pages[a]) if kind == "comparison" and page_kind(pages[a]) == page_kind(pages[b]) else ""
            found.append(Grounding((a, b), kind, i, what))
            continue
        titles = list(pages)
        bridges = [(a, b) for a in titles for b in titles if a != b and _mentions("".join(pages[a]), b)]
        found += [Grounding(p, "bridge", i) for p in bridges[:per_row]]
        by_kind: dict[str, list[str]] = {}
        for t in titles:
            if k := page_kind(pages[t]):
                by_kind.setdefault(k, []).append(t)
        pairs = [(k, ts[j], ts[j + 1]) for k, ts in by_kind.items() for j in range(0, len(ts) - 1, 2)]
        found += [Grounding((a, b), "comparison", i, k) for k, a, b in pairs[:per_row]]
    if not found:
        found = [Grounding((t,), "single", i) for i, row in enumerate(rows)
                 for t, s in row.get("context") or [] if s]
    return found


def page_text(sentences: Sequence[str], limit: int) -> str:
    """A page's leading whole sentences, flattened and cut to `limit` characters."""
    text = ""
    for s in sentences:
        if text and len(text) + len(s) > limit:
            break
        text += s
    return " ".join(text.split())[: max(limit, 1)]


def answer_supported(answer: str, text: str) -> bool:
    """Whether the pages' `text` contains the answer (yes/no always passes)."""
    norm = normalize_answer(answer)
    return norm in ("yes", "no") or (bool(norm) and f" {norm} " in f" {normalize_answer(text)} ")
