"""The scored candidates behind each closed choice, kept for the transcript.

An agent that scores candidates (the plan agent's action names, the tool agent's answer options
and scored arguments, the reflect agent's right/wrong) calls :func:`record` with the scores
it chose by. A graph node runs its agent inside :func:`recording` and puts what was recorded
on the step it writes (`Step["choices"]`): `{kind: [[candidate, score], ...]}`, best first,
scores rounded to :data:`DIGITS` places. An agent that records nothing (a generated action, a
user's own agent) leaves the step without choices. Recording is per thread of execution (a
context variable), so concurrent episodes never mix their choices.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["DIGITS", "Choices", "ranked", "record", "recording"]

DIGITS = 3
#: kind → candidates ranked best first, each `[text, score]`
Choices = dict[str, list[list]]
_CURRENT: ContextVar[Choices | None] = ContextVar("autoact_choices", default=None)


def ranked(scores: Mapping[str, float]) -> list[list]:
    """`[[candidate, score], ...]`, best first (ties keep the candidates' order), scores rounded."""
    order = sorted(enumerate(scores.items()), key=lambda item: (-item[1][1], item[0]))
    return [[str(text), round(float(score), DIGITS)] for _, (text, score) in order]


def record(kind: str, scores: Mapping[str, float]) -> None:
    """Note the candidates of one closed choice (`kind`: action, argument, option, verdict), if recording."""
    sink = _CURRENT.get()
    if sink is not None and scores:
        sink[kind] = ranked(scores)


@contextmanager
def recording(into: Choices | None = None) -> Iterator[Choices]:
    """Collect what :func:`record` notes inside the block (into `into`, or a new dict)."""
    sink: Choices = {} if into is None else into
    token = _CURRENT.set(sink)
    try:
        yield sink
    finally:
        _CURRENT.reset(token)
