"""Scripted stand-ins for models and agents, for testing logic without a server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from agents.base import EpisodeView, PlanDecision, ReflectDecision


@dataclass
class ScriptedModel:
    """A CompletionModel whose generations come from a list and whose scores prefer given candidates.

    `prefer` is consumed one entry per `score` call: the candidate containing
    that text gets 0.0, the others -5.0. Every prompt is recorded.
    """

    generations: list[str] = field(default_factory=list)
    prefer: list[str] = field(default_factory=list)
    name: str = "scripted"
    prompts: list[str] = field(default_factory=list)
    fail_after: int | None = None  # raise after this many calls

    def _tick(self, prompt: str) -> None:
        self.prompts.append(prompt)
        if self.fail_after is not None and len(self.prompts) > self.fail_after:
            from core.errors import EndpointError
            raise EndpointError("scripted endpoint failure at http://fake/v1 for model 'scripted'")

    def generate(self, prompt: str, *, stop: Sequence[str], max_tokens: int) -> str:
        self._tick(prompt)
        return self.generations.pop(0) if self.generations else ""

    def score(self, prompt: str, candidates: Sequence[str]) -> list[float]:
        self._tick(prompt)
        want = self.prefer.pop(0) if self.prefer else ""
        return [0.0 if want and want in c else -5.0 for c in candidates]


@dataclass
class ScriptedPlan:
    """A plain-callable plan agent: yields (thought, action) pairs in order."""

    script: list[tuple[str, str]]
    seen: list[EpisodeView] = field(default_factory=list)

    def __call__(self, view: EpisodeView) -> PlanDecision:
        self.seen.append(view)
        thought, action = self.script.pop(0) if self.script else ("stuck", "Finish")
        return PlanDecision(thought, action)


def scripted_tool(arguments: list[str]) -> Callable[[EpisodeView, str, str], str]:
    def tool(view: EpisodeView, thought: str, action: str) -> str:
        return arguments.pop(0) if arguments else ""
    return tool


def scripted_reflect(verdicts: list[str]) -> Callable[[EpisodeView], ReflectDecision]:
    def reflect(view: EpisodeView) -> ReflectDecision:
        verdict = verdicts.pop(0) if verdicts else "right"
        return ReflectDecision(f"checking {view.proposed_answer}", verdict)  # type: ignore[arg-type]
    return reflect
