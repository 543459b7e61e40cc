"""Run-scoped dependencies of a design's graph: the tools, the task, the limits, and who acts.

Passed to LangGraph as `context=` (its `context_schema`), so any role can be swapped per run
without touching graph code. `DesignContext` is what every design has; `ModelDesignContext`
adds the one model of a single-model design; `GroupContext` binds an agent to each role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from agents.base import FINISH, REFLECT, EpisodeView, PlanAgent, ReflectAgent, ToolAgent
from agents.llm import CompletionModel
from core.tokens import CHARS_PER_TOKEN
from tasks.base import Task
from tools.base import ToolSpec
from tools.spec import FINISH_SPEC, REFLECT_SPEC
from tools.toolbox import Toolbox


def prompt_tools(task_tools: Sequence[ToolSpec]) -> tuple[ToolSpec, ...]:
    """The tools every role's prompt lists: the task's, then Finish and Reflect (handled by the graph)."""
    own = tuple(s for s in task_tools if s.name not in (FINISH, REFLECT))
    return (*own, FINISH_SPEC, REFLECT_SPEC)


@dataclass(frozen=True)
class Limits:
    """Bounds of an episode."""

    max_steps: int = 10
    max_reflections: int = 1
    context_tokens: int = 2048  # halt before a prompt would exceed this (estimated)
    chars_per_token: float = CHARS_PER_TOKEN
    answer_at_limit: bool = False  # the last steps must Finish (and leave room to reflect) instead of halting

    def must_finish(self, steps_taken: int, can_reflect: bool) -> bool:
        """With `answer_at_limit`: whether the step about to be planned is the last that can still Finish."""
        return self.answer_at_limit and self.max_steps - steps_taken <= (2 if can_reflect else 1)

    def recursion_limit(self) -> int:
        """LangGraph super-steps an episode can need: plan, tool, execute per step, plus reflect/halt."""
        return 4 * self.max_steps + 8


@dataclass(kw_only=True)
class DesignContext:
    """What every design's run context holds: the task's tools, the task, the limits of an episode."""

    toolbox: Toolbox
    task: Task | None = None
    limits: Limits = field(default_factory=Limits)


@dataclass(kw_only=True)
class ModelDesignContext(DesignContext):
    """A design where one model does everything (ReWOO, BOLAA, Chameleon, Reflexion's judge)."""

    model: CompletionModel


@dataclass(kw_only=True)
class GroupContext(DesignContext):
    """Who plays each role in an episode. `reflect=None` removes reflection: the first Finish is final."""

    plan: PlanAgent
    tool: ToolAgent
    reflect: ReflectAgent | None = None
    budget_role: str = "plan"  # whose prompt length the context budget is measured on

    def tool_specs(self) -> tuple[ToolSpec, ...]:
        return prompt_tools(self.toolbox.specs)

    def view(self, state: Mapping[str, Any]) -> EpisodeView:
        inputs = state.get("inputs") or {}
        choices = self.task.answer_choices(inputs) if self.task and "choices" in inputs else None
        return EpisodeView(
            question=state["question"], inputs=inputs, steps=list(state.get("steps") or []),
            tools=self.tool_specs(), actions=(*self.toolbox.names, FINISH),
            proposed_answer=state.get("proposed_answer"), choices=tuple(choices) if choices else None,
        )


__all__ = ["DesignContext", "GroupContext", "Limits", "ModelDesignContext", "prompt_tools"]
