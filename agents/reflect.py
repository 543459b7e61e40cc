"""The reflect agent: a thought about the proposed answer, then Reflect[right] or Reflect[wrong]."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.base import REFLECT, AgentSettings, EpisodeView, ReflectDecision
from agents.llm import CompletionModel
from agents.parsing import clean_thought, parse_action
from prompts.builder import PromptBuilder

VERDICTS = ("right", "wrong")


@dataclass
class ModelReflectAgent:
    """Reflect agent backed by a completion model; `role` picks the prompt (`reflect` or `meta`)."""

    model: CompletionModel
    role: str = "reflect"
    settings: AgentSettings = field(default_factory=AgentSettings)

    def __call__(self, view: EpisodeView) -> ReflectDecision:
        prompts = PromptBuilder(self.role, view.tools)
        raw = self.model.generate(prompts.thought(view.question, view.steps), stop=["\n"],
                                  max_tokens=self.settings.thought_tokens)
        thought = clean_thought(raw)
        cue = prompts.action(view.question, view.steps, thought)
        if self.settings.scored:
            values = self.model.score(cue + f" {REFLECT}[", [f"{v}]" for v in VERDICTS])
            return ReflectDecision(thought, "right" if values[0] >= values[1] else "wrong", raw=raw)
        text = self.model.generate(cue, stop=["\n"], max_tokens=self.settings.action_tokens)
        parsed = parse_action(text, [REFLECT])
        verdict = parsed.argument.strip().lower() if parsed.ok else ""
        if verdict in VERDICTS:
            return ReflectDecision(thought, verdict, raw=text)  # type: ignore[arg-type]
        error = parsed.error or f"Reflect needs 'right' or 'wrong', got {parsed.argument!r}"
        return ReflectDecision(thought, None, error=error, raw=text)
