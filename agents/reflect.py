"""The reflect agent: a thought about the proposed answer, then Reflect[right] or Reflect[wrong]."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.base import REFLECT, AgentSettings, EpisodeView, ReflectDecision
from agents.llm import CompletionModel, generate_line
from agents.parsing import parse_action
from agents.thought import think

VERDICTS = ("right", "wrong")


@dataclass
class ModelReflectAgent:
    """Reflect agent backed by a completion model; `role` picks the prompt (`reflect` or `meta`)."""

    model: CompletionModel
    role: str = "reflect"
    settings: AgentSettings = field(default_factory=AgentSettings)

    def __call__(self, view: EpisodeView) -> ReflectDecision:
        step = think(self.model, self.role, view, self.settings)
        thought, cue, raw = step.text, step.cue, step.raw
        if self.settings.scored:
            values = self.model.score(cue + f" {REFLECT}[", [f"{v}]" for v in VERDICTS])
            return ReflectDecision(thought, "right" if values[0] >= values[1] else "wrong", raw=raw)
        text = generate_line(self.model, cue, self.settings.action_tokens)
        parsed = parse_action(text, [REFLECT])
        verdict = parsed.argument.strip().lower() if parsed.ok else ""
        if verdict in VERDICTS:
            return ReflectDecision(thought, verdict, raw=text)  # type: ignore[arg-type]
        error = parsed.error or f"Reflect needs 'right' or 'wrong', got {parsed.argument!r}"
        return ReflectDecision(thought, None, error=error, raw=text)
