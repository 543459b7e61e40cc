"""Builds every prompt the agents send, byte for byte the same at inference and in training data.

A prompt is: the role's instruction (a template in this package, with the
task's tools filled in), the question, the transcript so far, and a cue line
such as `Thought 3:` or `Action 3: Retrieve[`.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Mapping, Sequence

from core.errors import ConfigError
from core.roles import PROMPT_ROLES
from tools.base import ToolSpec


def prompts_version() -> str:
    """A short hash of every template shipped here: which prompts produced a dataset or a run."""
    digest = hashlib.sha256()
    for path in sorted(resources.files("prompts").iterdir(), key=lambda p: p.name):
        if path.name.endswith(".txt"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@lru_cache(maxsize=None)
def load_template(name: str) -> string.Template:
    """The instruction template `name` (a `.txt` file shipped in this package)."""
    try:
        text = resources.files("prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no prompt template {name!r}; known: {', '.join(PROMPT_ROLES)}") from None
    return string.Template(text.strip())


def render_tools(specs: Sequence[ToolSpec]) -> str:
    """Numbered tool list: `(1) Name: definition`.

    Usage lines are not shown: small models copy them verbatim as arguments
    (seen with the embedded model: with worked examples every Retrieve asked for
    the Search example; with call forms it asked for `Retrieve[entity]`; with
    names only it asked for entities of the question). The action grammar
    `Name[argument]` is stated by the instructions and the transcript.
    """
    return "\n".join(f"({i}) {spec.name}: {spec.description}" for i, spec in enumerate(specs, 1))


def render_transcript(steps: Sequence[Mapping[str, str]]) -> str:
    """Thought / Action / Observation lines of the finished steps, numbered from 1."""
    lines: list[str] = []
    for i, step in enumerate(steps, 1):
        lines.append(f"Thought {i}: {step.get('thought', '')}".rstrip())
        lines.append(f"Action {i}: {step.get('action', '')}[{step.get('argument', '')}]")
        lines.append(f"Observation {i}: {step.get('observation', '')}".rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class PromptBuilder:
    """Prompts for one role (`meta`, `plan`, `tool`, `reflect`, or a design's template) over a tool set.

    `values` fill a template's own placeholders (a BOLAA labor agent's `$family`, say).
    """

    role: str
    tools: tuple[ToolSpec, ...] = ()
    values: Mapping[str, str] = field(default_factory=dict)

    def instruction(self) -> str:
        """The role's template with `$tools` (every action) or `$task_tools` (all but Reflect) filled in."""
        task_tools = render_tools([t for t in self.tools if t.name != "Reflect"])
        try:
            return load_template(self.role).substitute(tools=render_tools(self.tools), task_tools=task_tools,
                                                       **self.values)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"prompt template {self.role!r} needs a value for {e}") from None

    def context(self, question: str, steps: Sequence[Mapping[str, str]]) -> str:
        """Instruction, question and transcript: everything before the cue."""
        parts = [self.instruction(), "", f"Question: {question}"]
        transcript = render_transcript(steps)
        if transcript:
            parts.append(transcript)
        return "\n".join(parts) + "\n"

    def cue(self, question: str, steps: Sequence[Mapping[str, str]], cue: str) -> str:
        """Everything before the cue, then the cue (`Plan:`, `Next:`, `Answer: Finish[` …)."""
        return self.context(question, steps) + cue

    def thought(self, question: str, steps: Sequence[Mapping[str, str]]) -> str:
        return self.context(question, steps) + f"Thought {len(steps) + 1}:"

    def action(self, question: str, steps: Sequence[Mapping[str, str]], thought: str) -> str:
        n = len(steps) + 1
        return self.context(question, steps) + f"Thought {n}: {thought}\nAction {n}:"

    def argument(self, question: str, steps: Sequence[Mapping[str, str]], thought: str, action: str) -> str:
        return self.action(question, steps, thought) + f" {action}["
