"""Closed sets of arguments for scored-argument mode (`AgentSettings.scored_arguments`).

The embedded model rarely writes a useful page name or answer after `Retrieve[`
or `Finish[` ("1", "Hint"), but it can rank names that are already in the
episode. In this opt-in mode the tool agent scores candidates instead of
generating:

- an entity argument (a tool whose usage reads `Name[entity]`, `[query]`,
  `[page]` or `[title]`): quoted strings and names of the question, titles a
  tool suggested ("Similar: [...]"), then names seen in observations, minus the
  arguments this action was already given (a repeat brings nothing new);
- the answer of `Finish` on an open-answer task: "yes" or "no" for a yes/no
  question ("Are X and Y both ...?"); the question's names when it offers
  alternatives ("Which is older, X or Y?"); otherwise the names, dates and
  numbers of the observations that the question does not name itself (a
  question rarely contains its answer). Answers the reflect agent rejected
  are never offered again; before any observation, the question's names and
  yes/no are.

Any other argument (`Lookup[keyword]`, `Calculator[expression]`) stays free
text. An empty candidate set also falls back to free generation.
"""

from __future__ import annotations

import ast
import re
from typing import Mapping, Sequence

from agents.base import FINISH, REFLECT, EpisodeView
from agents.spans import name_spans, number_spans
from core.answers import normalize_answer

__all__ = ["ENTITY_PLACEHOLDERS", "argument_candidates"]

#: Usage placeholders whose argument names a page or thing: chosen among names.
ENTITY_PLACEHOLDERS = frozenset({"entity", "query", "page", "title"})

_SIMILAR = re.compile(r"Similar:\s*(\[.*?\])", re.DOTALL)
#: How tools and the graph open an observation that found nothing: its words are not names.
_FAILED = ("Could not find", "No page loaded", "No results", "No more results", "Lookup needs", "Invalid",
           "There is no tool", "Tool ", "Reflect can only", "Finish needs")
_OR = re.compile(r"\bor\b", re.IGNORECASE)
_POLAR = re.compile(r"\s*(?:is|are|was|were|do|does|did|can|could|has|have|had|will|would|should)\b", re.IGNORECASE)
_POSSESSIVE = re.compile(r"['’]s\b")
_OF = re.compile(r"\s+of(?:\s+the)?\s+")
_QUOTED = re.compile(r'"([^"]{2,80})"|“([^”]{2,80})”')


def _placeholder(view: EpisodeView, action: str) -> str:
    spec = next((t for t in view.tools if t.name == action), None)
    m = re.search(r"\[([^\]]*)\]", spec.usage) if spec else None
    return m.group(1).strip().lower() if m else ""


def _suggested(observation: str) -> list[str]:
    """Titles listed after "Similar:" in an observation."""
    m = _SIMILAR.search(observation)
    if not m:
        return []
    try:
        titles = ast.literal_eval(m.group(1))
    except (ValueError, SyntaxError):
        return []
    return [t for t in titles if isinstance(t, str)]


def _unique(spans: Sequence[str], exclude: set[str], limit: int) -> list[str]:
    out: list[str] = []
    seen = set(exclude)
    for span in spans:
        span = span.strip()
        key = normalize_answer(span)
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(span)
        if len(out) == limit:
            break
    return out


def _with_parts(spans: Sequence[str]) -> list[str]:
    """Each span, then its parts around "of" ("Attorney General of Nevada": "Attorney General", "Nevada")."""
    out: list[str] = []
    for span in spans:
        out.append(span)
        parts = [p for p in _OF.split(span) if p[:1].isupper()]
        out += parts if len(parts) > 1 else []
    return out


def _observations(steps: Sequence[Mapping[str, str]]) -> list[str]:
    """Tool observations that found something, newest first (the latest page is the likeliest next hop)."""
    return [s.get("observation") or "" for s in reversed(steps)
            if s.get("action") not in (FINISH, REFLECT, "") and s.get("observation")
            and not s["observation"].startswith(_FAILED)]


def argument_candidates(view: EpisodeView, action: str, limit: int = 24) -> list[str] | None:
    """The arguments `action` may take in scored-argument mode, best first; None: generate freely."""
    if action == FINISH:
        # closed options (ScienceQA) are scored by the tool agent already
        return None if view.choices else _answers(view, limit) or None
    if _placeholder(view, action) not in ENTITY_PLACEHOLDERS:
        return None
    return _entities(view, action, limit) or None


def _answers(view: EpisodeView, limit: int) -> list[str]:
    question = view.question
    rejected = {normalize_answer(s.get("argument") or "") for i, s in enumerate(view.steps)
                if s.get("action") == FINISH and i + 1 < len(view.steps)
                and view.steps[i + 1].get("action") == REFLECT and view.steps[i + 1].get("argument") == "wrong"}
    found = [span for text in _observations(view.steps)
             for span in (*_with_parts(name_spans(text)), *number_spans(text))]
    choice, polar = bool(_OR.search(question)), bool(_POLAR.match(question))
    yes_no = [a for a in ("yes", "no") if a not in rejected]
    if polar and not choice:  # "Are X and Y both ...?" is answered yes or no
        return yes_no
    asked = [f" {normalize_answer(q)} " for q in (question, _POSSESSIVE.sub("", question))]
    # a question names its answer only when it offers alternatives ("Which is older, X or Y?")
    spans = name_spans(question) if choice else [
        s for s in found if not any(f" {normalize_answer(s)} " in q for q in asked)]
    if not spans and not choice:  # nothing seen yet: the question's names, or yes/no
        spans, polar = name_spans(question), True
    tail = yes_no if polar else []
    exclude = rejected | {normalize_answer(question), "yes", "no"} | {normalize_answer(a) for a in view.actions}
    return [*_unique(spans, exclude, max(limit - len(tail), 0)), *tail]


def _entities(view: EpisodeView, action: str, limit: int) -> list[str]:
    question = view.question
    used = {normalize_answer(s.get("argument") or "") for s in view.steps if s.get("action") == action}
    quoted = [a or b for a, b in _QUOTED.findall(question)]
    names = name_spans(question)
    # a leading title or adjective often sticks to a name ("Democrat Catherine Cortez Masto")
    shorter = [name.split(" ", 1)[1] for name in names if name.count(" ") >= 2]
    suggested = [t for s in reversed(view.steps) for t in _suggested(s.get("observation") or "")]
    seen_names = [span for text in _observations(view.steps) for span in _with_parts(name_spans(text))]
    return _unique([*quoted, *names, *shorter, *suggested, *seen_names], used, limit)
