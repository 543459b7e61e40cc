"""A task's set of tools behind one never-raising `call`."""

from __future__ import annotations

import copy
from typing import Any, Iterable, Literal, Mapping, NamedTuple

from core.errors import ConfigError
from tools.base import Tool, ToolContext, ToolSpec

TRUNCATION_MARKER = " ... [truncated]"


class ToolCall(NamedTuple):
    """What one action gave: the observation, the tool memory after it, and the step status it earns."""

    observation: str
    memory: dict[str, Any]
    status: Literal["ok", "unknown_tool", "tool_error"]


class Toolbox:
    """Runs tools by exact name and turns every problem into observation text.

    Observations are collapsed to one line (unless `single_line=False`) and cut to
    `max_observation_chars`, ending with `TRUNCATION_MARKER` when cut.
    """

    def __init__(self, tools: Iterable[Tool], max_observation_chars: int = 600,
                 single_line: bool = True) -> None:
        if max_observation_chars <= len(TRUNCATION_MARKER):
            raise ConfigError(f"max_observation_chars must exceed {len(TRUNCATION_MARKER)}; "
                              f"got {max_observation_chars}")
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.spec.name in self._tools:
                raise ConfigError(f"two tools are named {tool.spec.name!r}")
            self._tools[tool.spec.name] = tool
        self.max_observation_chars = max_observation_chars
        self.single_line = single_line

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    @property
    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self._tools.values()]

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def call(self, name: str, argument: str, row: Mapping[str, Any] | None = None,
             memory: Mapping[str, Any] | None = None) -> ToolCall:
        """Run one action; never raises, and leaves `memory` untouched (the new memory is returned)."""
        before: dict[str, Any] = copy.deepcopy(dict(memory or {}))
        tool = self._tools.get(name)
        if tool is None:
            valid = ", ".join(self._tools) or "none"
            return ToolCall(self._clip(f"There is no tool named {name}; valid tools: {valid}."), before,
                            "unknown_tool")
        ctx = ToolContext(row=row or {}, memory=copy.deepcopy(before))
        try:
            observation = tool.run(argument, ctx)
        except Exception as err:  # a tool bug must not end the episode
            return ToolCall(self._clip(f"Tool {name} failed: {type(err).__name__}: {err}"), before, "tool_error")
        return ToolCall(self._clip(str(observation)), ctx.memory, "ok")

    def run(self, name: str, argument: str, row: Mapping[str, Any] | None = None,
            memory: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """`call` as `(observation, new memory)`."""
        result = self.call(name, argument, row, memory)
        return result.observation, result.memory

    def _clip(self, text: str) -> str:
        if self.single_line:
            text = " ".join(text.split())
        limit = self.max_observation_chars
        if len(text) <= limit:
            return text
        return text[: limit - len(TRUNCATION_MARKER)].rstrip() + TRUNCATION_MARKER
