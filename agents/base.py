"""What the graph hands an agent (an episode view) and what each role answers.

A role is any callable with the right signature: a model-backed agent from
this package, or a plain Python function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Protocol, Sequence

from tools.base import ToolSpec

FINISH = "Finish"
REFLECT = "Reflect"


@dataclass(frozen=True)
class EpisodeView:
    """A read-only view of an episode at the moment an agent is asked to act."""

    question: str
    inputs: Mapping[str, Any]
    steps: Sequence[Mapping[str, Any]]
    tools: tuple[ToolSpec, ...]  # task tools + Finish (+ Reflect): what prompts list
    actions: tuple[str, ...]  # names the plan agent may choose: task tools + Finish
    proposed_answer: str | None = None
    choices: tuple[str, ...] | None = None  # closed answer options, when the task has them


@dataclass(frozen=True)
class PlanDecision:
    thought: str
    action: str  # empty when the action could not be read
    error: str | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    raw: str = ""


@dataclass(frozen=True)
class ReflectDecision:
    thought: str
    verdict: Literal["right", "wrong"] | None  # None: unreadable
    error: str | None = None
    raw: str = ""
    margin: float | None = None  # scored verdicts: log p(right) - log p(wrong), calibrated when asked


class PlanAgent(Protocol):
    def __call__(self, view: EpisodeView) -> PlanDecision: ...


class ToolAgent(Protocol):
    def __call__(self, view: EpisodeView, thought: str, action: str) -> str: ...


class ReflectAgent(Protocol):
    def __call__(self, view: EpisodeView) -> ReflectDecision: ...


@dataclass(frozen=True)
class AgentSettings:
    """How model-backed agents talk to their model."""

    scored: bool = True  # closed choices by likelihood; False: free generation, parsed leniently
    scored_arguments: bool = False  # entity arguments and open answers chosen among episode spans (opt-in)
    calibrated_reflect: bool = False  # scored verdicts relative to a content-free answer's (agents.reflect; opt-in)
    reflect_threshold: float = 0.0  # a scored verdict is right when its margin reaches this (reflect_threshold.py)
    thought_tokens: int = 64
    action_tokens: int = 40
    argument_tokens: int = 32


def best(scores: Mapping[str, float]) -> str:
    """The highest-scoring candidate (first one on ties)."""
    return max(scores, key=lambda k: scores[k])
