"""The reflect agent: a thought about the proposed answer, then Reflect[right] or Reflect[wrong].

Scored verdicts compare the likelihoods of `right]` and `wrong]` after the cue. A small model
says "right" to nearly every answer; with `AgentSettings.calibrated_reflect` the margin
(log p(right) - log p(wrong)) is taken relative to the margin the same prompt gets when the
proposed answer is replaced by a content-free one (`N/A`), so what decides is how much this
answer moves the model towards "right", not its prior for the word (contextual calibration,
Zhao et al. 2021). `AgentSettings.reflect_threshold` moves the point where the margin turns the
verdict from right to wrong (0 by default; `training.reflect_threshold` fits one on the agent's own
training pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from agents.base import FINISH, REFLECT, AgentSettings, EpisodeView, ReflectDecision
from agents.choices import record
from agents.llm import CompletionModel, generate_line
from agents.parsing import parse_action
from agents.thought import think
from prompts.builder import PromptBuilder

VERDICTS = ("right", "wrong")
CONTENT_FREE = "N/A"  # the answer a calibrated verdict is measured against


def content_free(view: EpisodeView) -> EpisodeView:
    """The view with its proposed answer (the last Finish's argument and its echo) replaced by `N/A`."""
    steps = [dict(s) for s in view.steps]
    for step in reversed(steps):
        if step.get("action") == FINISH:
            answer = str(step.get("argument", ""))
            head, sep, tail = str(step.get("observation", "")).partition(": ")  # "Proposed answer: ANSWER. ..."
            if answer and sep and tail.startswith(answer):
                step["observation"] = head + sep + CONTENT_FREE + tail[len(answer):]
            step["argument"] = CONTENT_FREE
            break
    return replace(view, steps=steps, proposed_answer=CONTENT_FREE if view.proposed_answer is not None else None)


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
            margin = self._margin(cue, note=True)
            if self.settings.calibrated_reflect:
                blank = content_free(view)
                margin -= self._margin(PromptBuilder(self.role, blank.tools).action(blank.question, blank.steps,
                                                                                     thought))
            verdict = "right" if margin >= self.settings.reflect_threshold else "wrong"
            return ReflectDecision(thought, verdict, raw=raw, margin=round(margin, 4))
        text = generate_line(self.model, cue, self.settings.action_tokens)
        parsed = parse_action(text, [REFLECT])
        verdict = parsed.argument.strip().lower() if parsed.ok else ""
        if verdict in VERDICTS:
            return ReflectDecision(thought, verdict, raw=text)  # type: ignore[arg-type]
        error = parsed.error or f"Reflect needs 'right' or 'wrong', got {parsed.argument!r}"
        return ReflectDecision(thought, None, error=error, raw=text)

    def _margin(self, cue: str, note: bool = False) -> float:
        return verdict_margin(self.model, cue + f" {REFLECT}[", note)


def verdict_margin(model: CompletionModel, prompt: str, note: bool = False) -> float:
    """log p(right) - log p(wrong) as the verdict completing `prompt` (which ends with `Reflect[`);
    with `note`, the two scores are recorded as the step's verdict candidates (`agents.choices`)."""
    right, wrong = model.score(prompt, [f"{v}]" for v in VERDICTS])
    if note:
        record("verdict", {"right": right, "wrong": wrong})
    return right - wrong
