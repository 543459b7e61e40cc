"""`AgentGroup`: the AutoAct group graph with the agents bound to its roles, ready to answer questions."""

from __future__ import annotations

from typing import Any, AsyncIterator, Mapping

from langgraph.checkpoint.base import BaseCheckpointSaver

from graph.builder import build_group_graph
from graph.context import GroupContext
from graph.protocol import GraphAgent


class AgentGroup(GraphAgent):
    """A group-planning agent: plan → tool → execute → (reflect), with the step budget its context sets."""

    context: GroupContext

    def __init__(self, context: GroupContext, checkpointer: BaseCheckpointSaver | None = None,
                 name: str = "autoact") -> None:
        super().__init__(name=name, graph=build_group_graph(checkpointer, with_reflect=context.reflect is not None),
                         context=context, recursion_limit=context.limits.recursion_limit(),
                         checkpointer=checkpointer)

    async def astream(self, question: str, inputs: Mapping[str, Any] | None = None,
                      thread_id: str | None = None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        async for chunk in self.graph.astream(self.start(question, inputs), self.config(thread_id),
                                              context=self.context, stream_mode="updates"):
            for node, update in chunk.items():
                yield node, update or {}
