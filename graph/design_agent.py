"""`DesignAgent`: a compiled agent-design graph with its run context, used like an `AgentGroup`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from langgraph.graph.state import CompiledStateGraph

from graph.state import initial_state


@dataclass
class DesignAgent:
    """Answers with `invoke` or `stream` (`(node, update)` pairs), as the evaluation loop expects.

    `context` is the graph's run context (it must have a `toolbox`); `start_extra` adds the
    design's own fields to the initial state.
    """

    context: Any
    graph: CompiledStateGraph
    recursion_limit: int = 25
    start_extra: dict[str, Any] = field(default_factory=dict)

    def start(self, question: str, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**initial_state(question, dict(inputs) if inputs else None), **self.start_extra}

    def _config(self) -> dict[str, Any]:
        return {"recursion_limit": self.recursion_limit}

    def invoke(self, question: str, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.graph.invoke(self.start(question, inputs), self._config(), context=self.context)

    def stream(self, question: str, inputs: Mapping[str, Any] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        for chunk in self.graph.stream(self.start(question, inputs), self._config(), context=self.context,
                                       stream_mode="updates"):
            for node, update in chunk.items():
                yield node, update or {}
