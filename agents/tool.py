"""The tool agent: the argument of the action the plan agent chose."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from agents.argument_choices import argument_candidates
from agents.base import FINISH, AgentSettings, EpisodeView, best
from agents.choices import record
from agents.llm import CompletionModel
from agents.parsing import clean_argument
from prompts.builder import PromptBuilder


@dataclass
class ModelToolAgent:
    """Tool agent backed by a completion model; `role` picks the prompt (`tool` or `meta`).

    For `Finish` on a task with closed options (ScienceQA), the options are
    scored instead of generated, unless free generation is asked for. With
    `settings.scored_arguments`, entity arguments and open answers are chosen
    among the episode's spans (`agents.argument_choices`), scored per character
    so that long names are not penalised for their length.
    """

    model: CompletionModel
    role: str = "tool"
    settings: AgentSettings = field(default_factory=AgentSettings)
    prompt_values: Mapping[str, str] = field(default_factory=dict)  # the template's own placeholders

    def __call__(self, view: EpisodeView, thought: str, action: str) -> str:
        cue = PromptBuilder(self.role, view.tools, dict(self.prompt_values)).argument(view.question, view.steps, thought, action)
        if action == FINISH and view.choices and self.settings.scored:
            values = self.model.score(cue, [f"{choice}]" for choice in view.choices])
            scores = dict(zip(view.choices, values))
            record("option", scores)
            return best(scores)
        candidates = argument_candidates(view, action) if self.settings.scored_arguments else None
        if candidates:
            values = self.model.score(cue, [f"{c}]" for c in candidates])
            scores = {c: v / (len(c) + 1) for c, v in zip(candidates, values)}  # per character
            record("argument", scores)
            return best(scores)
        text = self.model.generate(cue, stop=["]", "\n"], max_tokens=self.settings.argument_tokens)
        return clean_argument(text)
