"""Builds the group-planning graph: plan → tool → execute → (reflect) → … as in DESIGN.md §1."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph import routing
from graph.context import GroupContext
from graph.nodes import execute_node, halt_node, plan_node, reflect_node, tool_node
from graph.state import GroupState


def group_state_graph(with_reflect: bool = True) -> StateGraph:
    """The uncompiled graph: nodes and edges only; agents come from the run context.

    Without `with_reflect` there is no reflect node: the loop of a single acting agent
    (ReAct), where the first Finish is final.
    """
    g = StateGraph(GroupState, context_schema=GroupContext)
    g.add_node("plan", plan_node)
    g.add_node("tool", tool_node)
    g.add_node("execute", execute_node)
    g.add_node("halt", halt_node)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", routing.after_plan, {"tool": "tool", "execute": "execute", "halt": "halt"})
    g.add_edge("tool", "execute")
    after_execute = {"plan": "plan", "halt": "halt", "end": END}
    if with_reflect:
        g.add_node("reflect", reflect_node)
        after_execute["reflect"] = "reflect"
        g.add_conditional_edges("reflect", routing.after_reflect, {"plan": "plan", "halt": "halt", "end": END})
    g.add_conditional_edges("execute", routing.after_execute, after_execute)
    g.add_edge("halt", END)
    return g


def linear_graph(state: type, context: type, nodes: Sequence[tuple[str, Callable[..., Any]]], name: str,
                 checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """A design whose nodes run once each, in order (ReWOO's planner → worker → solver, say)."""
    g = StateGraph(state, context_schema=context)
    for node, fn in nodes:
        g.add_node(node, fn)
    names = [START, *(node for node, _ in nodes), END]
    for a, b in zip(names, names[1:]):
        g.add_edge(a, b)
    return g.compile(checkpointer=checkpointer, name=name)


def build_group_graph(checkpointer: BaseCheckpointSaver | None = None, with_reflect: bool = True) -> CompiledStateGraph:
    """The compiled group graph. Invoke it with `context=GroupContext(...)` and a recursion limit
    (`Limits.recursion_limit()`), or use `graph.group.AgentGroup`, which does both."""
    return group_state_graph(with_reflect).compile(checkpointer=checkpointer, name="autoact-group")


def build_single_agent_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """One agent acting alone (the `cot` and `react` designs): the group graph without reflection."""
    return build_group_graph(checkpointer, with_reflect=False)
