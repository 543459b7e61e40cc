"""The typed state of one group-planning episode (DESIGN.md §1)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict


class Step(TypedDict, total=False):
    """One finished step of the transcript."""

    node: Literal["plan", "reflect"]  # who chose the action
    thought: str
    action: str
    argument: str
    observation: str


class Pending(TypedDict, total=False):
    """The step under construction between the plan, tool and execution nodes."""

    thought: str
    action: str
    argument: str
    error: str | None


class GroupState(TypedDict, total=False):
    question: str
    inputs: dict[str, Any]  # the task row as agents may see it (no gold answer)
    steps: Annotated[list[Step], operator.add]
    pending: Pending | None
    phase: Literal["plan", "reflect", "done"]
    proposed_answer: str | None
    answer: str | None
    finishes: int
    reflections: int
    halted: bool
    halt_reason: str | None
    tool_memory: dict[str, Any]


def initial_state(question: str, inputs: dict[str, Any] | None = None) -> GroupState:
    """The state an episode starts from."""
    return GroupState(question=question, inputs=dict(inputs or {"question": question}), steps=[],
                      pending=None, phase="plan", proposed_answer=None, answer=None, finishes=0,
                      reflections=0, halted=False, halt_reason=None, tool_memory={})
