"""The first half of every plan and reflect step: generate a thought, then build the action cue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from agents.base import AgentSettings, EpisodeView
from agents.llm import CompletionModel, generate_line
from agents.parsing import clean_thought
from prompts.builder import PromptBuilder


@dataclass(frozen=True)
class Thought:
    raw: str  # what the model wrote
    text: str  # the cleaned thought that enters the transcript
    cue: str  # the prompt that asks for the action after this thought


def think(model: CompletionModel, role: str, view: EpisodeView, settings: AgentSettings,
          values: Mapping[str, str] | None = None) -> Thought:
    prompts = PromptBuilder(role, view.tools, dict(values or {}))
    raw = generate_line(model, prompts.thought(view.question, view.steps), settings.thought_tokens)
    text = clean_thought(raw)
    return Thought(raw, text, prompts.action(view.question, view.steps, text))
