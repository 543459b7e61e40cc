"""The typed state of an episode (DESIGN.md §1): the fields every design shares, and the group's own.

A finished step carries its `status`, set where its observation is made, so diagnostics and
differentiation read whether it was usable instead of matching observation text.
"""

from __future__ import annotations

import operator
import re
from typing import Annotated, Any, Literal, Mapping, TypedDict

StepStatus = Literal[
    "ok",  # the action ran (a tool, a Finish with an answer, a verdict)
    "tool_error",  # a known tool was called and failed; the action itself was well formed
    "invalid_action",  # the plan's action could not be read
    "misplaced_reflect",  # the plan chose Reflect with no answer proposed
    "empty_finish",  # Finish without an answer
    "unknown_tool",  # an action naming no tool of the episode (a written plan or program)
    "invalid_reflection",  # the reflect agent's verdict could not be read
]
#: Statuses of steps whose action was not usable: they count against the valid-action rate.
UNUSABLE: frozenset[str] = frozenset({"invalid_action", "misplaced_reflect", "empty_finish", "unknown_tool",
                                      "invalid_reflection"})


class Step(TypedDict, total=False):
    """One finished step of the transcript."""

    node: Literal["plan", "reflect"]  # who chose the action
    thought: str
    action: str
    argument: str
    observation: str
    status: StepStatus
    margin: float  # a scored reflection: log p(right) - log p(wrong), calibrated when asked
    choices: dict[str, list[list]]  # the scored candidates of its closed choices (agents.choices), best first


class EpisodeState(TypedDict, total=False):
    """What every design's state holds; a design adds its own fields by subclassing."""

    question: str
    inputs: dict[str, Any]  # the task row as agents may see it (no gold answer)
    steps: Annotated[list[Step], operator.add]
    phase: str
    proposed_answer: str | None
    answer: str | None
    halted: bool
    halt_reason: str | None
    tool_memory: dict[str, Any]


class Pending(TypedDict, total=False):
    """The step under construction between the plan, tool and execution nodes."""

    thought: str
    action: str
    argument: str
    error: str | None
    choices: dict[str, list[list]]  # what the plan and tool agents scored for this step


class GroupState(EpisodeState, total=False):
    """The group's episode: the step being built, and how often it finished and reflected."""

    pending: Pending | None
    finishes: int
    reflections: int


def initial_state(question: str, inputs: dict[str, Any] | None = None) -> GroupState:
    """The state an episode starts from."""
    return GroupState(question=question, inputs=dict(inputs or {"question": question}), steps=[],
                      pending=None, phase="plan", proposed_answer=None, answer=None, finishes=0,
                      reflections=0, halted=False, halt_reason=None, tool_memory={})


_LEGACY = (("Invalid action", "invalid_action"), ("Reflect can only follow", "misplaced_reflect"),
           ("Finish needs an answer", "empty_finish"), ("There is no tool named", "unknown_tool"))
_LEGACY_TOOL_ERROR = re.compile(r"^Tool [A-Za-z][A-Za-z0-9]* failed: ")


def step_status(step: Mapping[str, Any]) -> str:
    """A step's status; steps recorded before steps carried one get it from their observation's wording."""
    if step.get("status"):
        return str(step["status"])
    observation = str(step.get("observation") or "")
    if step.get("node") == "reflect":
        return "ok" if step.get("argument") in ("right", "wrong") else "invalid_reflection"
    if _LEGACY_TOOL_ERROR.match(observation):
        return "tool_error"
    return next((status for prefix, status in _LEGACY if observation.startswith(prefix)), "ok")
