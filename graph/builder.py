"""Builds the group-planning graph: plan → tool → execute → (reflect) → … as in DESIGN.md §1."""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph import routing
from graph.context import GroupContext
from graph.nodes import execute_node, halt_node, plan_node, reflect_node, tool_node
from graph.state import GroupState


def group_state_graph() -> StateGraph:
    """The uncompiled graph: nodes and edges only; agents come from the run context."""
    g = StateGraph(GroupState, context_schema=GroupContext)
    g.add_node("plan", plan_node)
    g.add_node("tool", tool_node)
    g.add_node("execute", execute_node)
    g.add_node("reflect", reflect_node)
    g.add_node("halt", halt_node)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", routing.after_plan, {"tool": "tool", "execute": "execute", "halt": "halt"})
    g.add_edge("tool", "execute")
    g.add_conditional_edges("execute", routing.after_execute,
                            {"plan": "plan", "reflect": "reflect", "halt": "halt", "end": END})
    g.add_conditional_edges("reflect", routing.after_reflect, {"plan": "plan", "halt": "halt", "end": END})
    g.add_edge("halt", END)
    return g


def build_group_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """The compiled group graph. Invoke it with `context=GroupContext(...)` and a recursion limit
    (`Limits.recursion_limit()`), or use `graph.group.AgentGroup`, which does both."""
    return group_state_graph().compile(checkpointer=checkpointer, name="autoact-group")
