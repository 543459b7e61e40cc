"""Lenient parsing of free text from weak models: actions `Name[argument]` and thoughts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

MAX_ARGUMENT_CHARS = 200

_CALL = re.compile(r"([A-Za-z][A-Za-z0-9_ ]{0,30}?)\s*\[(.*?)(?:\]|$)", re.DOTALL)
_BARE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*[:\-]?\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class ParsedAction:
    """An action read from text; `error` says why it is unusable (then name may be empty)."""

    name: str
    argument: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def canonical_name(name: str, valid: Sequence[str]) -> str | None:
    """The valid action name `name` refers to, ignoring case, spaces and underscores."""
    wanted = _key(name)
    for candidate in valid:
        if _key(candidate) == wanted:
            return candidate
    return None


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """Text up to the first stop sequence (servers do not always honour stops)."""
    cut = len(text)
    for stop in stops:
        if stop and (i := text.find(stop)) != -1:
            cut = min(cut, i)
    return text[:cut]


_ACTION_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]*\[")


def clean_argument(text: str) -> str:
    """An argument from generated text: first line, no brackets or quotes, bounded length.

    A model that writes a whole call where only its argument belongs ("Retrieve[Paris" after
    "Retrieve[") gets the call's name dropped.
    """
    text = text.strip().split("\n", 1)[0]
    text = _ACTION_PREFIX.sub("", text)
    text = text.split("]", 1)[0].strip().strip("[").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text[:MAX_ARGUMENT_CHARS].rstrip()


_ANSWER_LEAD = re.compile(r"^(?:so,?\s+)?(?:the\s+(?:final\s+|correct\s+)?answer\s+is|answer)\b\s*[:\-]?\s*",
                          re.IGNORECASE)


def clean_answer(text: str) -> str:
    """A short answer from a generated line: without a lead-in ("The answer is: ..."), quotes or final stop."""
    text = _ANSWER_LEAD.sub("", " ".join(text.split()))
    text = text.rstrip(".").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def clean_thought(text: str, stops: Sequence[str] = ("\nAction", "\nObservation", "\nThought")) -> str:
    """A thought from generated text: up to the next section, single-spaced, bounded."""
    text = cut_at_stops(text, stops).strip()
    return " ".join(text.split())[:600]


def parse_action(text: str, valid: Sequence[str]) -> ParsedAction:
    """Read `Name[argument]` from model output, leniently.

    Accepts lower-case names, missing closing brackets, surrounding prose
    ("I will Retrieve[X] now"), a missing bracket altogether ("Retrieve X"),
    and text that runs on past the action. Anything else is an error the
    episode reports as an observation.
    """
    text = cut_at_stops(text or "", ("\nObservation", "\nThought")).strip()
    if not text:
        return ParsedAction("", "", "empty action")
    first_line = text.split("\n", 1)[0].strip()
    for match in _CALL.finditer(first_line):
        words = match.group(1).split()
        # "I will Retrieve[X]": try the last word, then the whole phrase ("Image 2 Text").
        for candidate in (words[-1] if words else "", match.group(1)):
            name = canonical_name(candidate, valid)
            if name:
                return ParsedAction(name, clean_argument(match.group(2)))
    bare = _BARE.match(first_line)
    if bare:
        name = canonical_name(bare.group(1), valid)
        if name:
            return ParsedAction(name, clean_argument(bare.group(2)))
    shown = first_line if len(first_line) <= 80 else first_line[:77] + "..."
    return ParsedAction("", "", f"could not read an action from {shown!r}; valid actions: {', '.join(valid)}")
