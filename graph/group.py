"""`AgentGroup`: the compiled graph plus the agents bound to its roles, ready to answer questions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator, Mapping

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from graph.builder import build_group_graph
from graph.context import GroupContext
from graph.state import GroupState, initial_state


@dataclass
class AgentGroup:
    """A group-planning agent: `invoke` answers one question, `stream` yields each node's update."""

    context: GroupContext
    checkpointer: BaseCheckpointSaver | None = None
    graph: CompiledStateGraph = field(init=False)

    def __post_init__(self) -> None:
        self.graph = build_group_graph(self.checkpointer, with_reflect=self.context.reflect is not None)

    def config(self, thread_id: str | None = None) -> dict[str, Any]:
        cfg: dict[str, Any] = {"recursion_limit": self.context.limits.recursion_limit()}
        if self.checkpointer is not None:
            cfg["configurable"] = {"thread_id": thread_id or uuid.uuid4().hex}
        return cfg

    def start(self, question: str, inputs: Mapping[str, Any] | None = None) -> GroupState:
        return initial_state(question, dict(inputs) if inputs else None)

    def invoke(self, question: str, inputs: Mapping[str, Any] | None = None,
               thread_id: str | None = None) -> GroupState:
        """Run one episode to the end and return its final state."""
        return self.graph.invoke(self.start(question, inputs), self.config(thread_id), context=self.context)

    def stream(self, question: str, inputs: Mapping[str, Any] | None = None,
               thread_id: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield `(node, update)` as each node finishes."""
        for chunk in self.graph.stream(self.start(question, inputs), self.config(thread_id),
                                       context=self.context, stream_mode="updates"):
            for node, update in chunk.items():
                yield node, update or {}

    async def astream(self, question: str, inputs: Mapping[str, Any] | None = None,
                      thread_id: str | None = None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        async for chunk in self.graph.astream(self.start(question, inputs), self.config(thread_id),
                                              context=self.context, stream_mode="updates"):
            for node, update in chunk.items():
                yield node, update or {}


def final_state(updates: list[tuple[str, dict[str, Any]]], start: GroupState) -> GroupState:
    """Fold streamed updates into the final state (steps accumulate, other keys overwrite)."""
    state: dict[str, Any] = dict(start)
    state["steps"] = list(start.get("steps") or [])
    for _, update in updates:
        for key, value in update.items():
            if key == "steps":
                state["steps"].extend(value)
            else:
                state[key] = value
    return state  # type: ignore[return-value]
