"""The plan agent: a thought, then the name of the next action."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.base import AgentSettings, EpisodeView, PlanDecision, REFLECT, best
from agents.llm import CompletionModel
from agents.parsing import clean_thought, parse_action
from prompts.builder import PromptBuilder


@dataclass
class ModelPlanAgent:
    """Plan agent backed by a completion model; `role` picks the prompt (`plan` or `meta`)."""

    model: CompletionModel
    role: str = "plan"
    settings: AgentSettings = field(default_factory=AgentSettings)

    def __call__(self, view: EpisodeView) -> PlanDecision:
        prompts = PromptBuilder(self.role, view.tools)
        raw = self.model.generate(prompts.thought(view.question, view.steps), stop=["\n"],
                                  max_tokens=self.settings.thought_tokens)
        thought = clean_thought(raw)
        cue = prompts.action(view.question, view.steps, thought)
        if self.settings.scored:
            values = self.model.score(cue, [f" {name}" for name in view.actions])
            scores = dict(zip(view.actions, values))
            return PlanDecision(thought, best(scores), scores=scores, raw=raw)
        text = self.model.generate(cue, stop=["\n"], max_tokens=self.settings.action_tokens)
        parsed = parse_action(text, [*view.actions, REFLECT])
        return PlanDecision(thought, parsed.name, error=parsed.error, raw=text)
