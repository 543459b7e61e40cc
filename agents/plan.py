"""The plan agent: a thought, then the name of the next action."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from agents.base import REFLECT, AgentSettings, EpisodeView, PlanDecision, best
from agents.choices import record
from agents.llm import CompletionModel, generate_line
from agents.parsing import parse_action
from agents.thought import think


@dataclass
class ModelPlanAgent:
    """Plan agent backed by a completion model; `role` picks the prompt (`plan`, `meta` or a design's)."""

    model: CompletionModel
    role: str = "plan"
    settings: AgentSettings = field(default_factory=AgentSettings)
    prompt_values: Mapping[str, str] = field(default_factory=dict)  # the template's own placeholders

    def __call__(self, view: EpisodeView) -> PlanDecision:
        step = think(self.model, self.role, view, self.settings, self.prompt_values)
        thought, cue, raw = step.text, step.cue, step.raw
        if self.settings.scored and len(view.actions) == 1:  # nothing to choose between (a tool-less design)
            return PlanDecision(thought, view.actions[0], raw=raw)
        if self.settings.scored:
            values = self.model.score(cue, [f" {name}" for name in view.actions])
            scores = dict(zip(view.actions, values))
            record("action", scores)
            return PlanDecision(thought, best(scores), scores=scores, raw=raw)
        text = generate_line(self.model, cue, self.settings.action_tokens)
        parsed = parse_action(text, [*view.actions, REFLECT])
        return PlanDecision(thought, parsed.name, error=parsed.error, raw=text)
