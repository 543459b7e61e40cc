"""Builds the group-planning graph: plan → tool → execute → (reflect) → … as in DESIGN.md §1."""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from graph import routing
from graph.context import GroupContext
from graph.nodes import execute_node, halt_node, plan_node, reflect_node, tool_node
from graph.state import GroupState, initial_state


class QuestionInput(TypedDict, total=False):
    """What a bound graph is invoked with: the question, and the task's inputs (ScienceQA's options …)."""

    question: str
    inputs: dict[str, Any]


def _start_node(state: dict[str, Any]) -> dict[str, Any]:
    """The episode's first state, from the question a bound graph was invoked with."""
    return dict(initial_state(str(state.get("question") or ""), state.get("inputs")))


def _bound(context: GroupContext) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wraps a node (or a routing function) so it runs with `context` whatever context its invocation carries."""
    def bind(fn: Callable[..., Any]) -> Callable[..., Any]:
        def node(state: GroupState, runtime: Runtime[GroupContext]) -> Any:
            return fn(state, runtime.override(context=context))
        node.__name__ = fn.__name__
        node.__doc__ = fn.__doc__
        return node
    return bind


def group_state_graph(with_reflect: bool = True, context: GroupContext | None = None) -> StateGraph:
    """The uncompiled graph: nodes and edges only; agents come from the run context.

    Without `with_reflect` there is no reflect node: the loop of a single acting agent
    (ReAct), where the first Finish is final. With `context`, the agents are bound in instead
    (for servers that pass no context, `langgraph dev`): the graph takes a
    :class:`QuestionInput`, and a first node `start` makes the episode's state from it.
    """
    node = _bound(context) if context is not None else (lambda fn: fn)
    if context is None:
        g = StateGraph(GroupState, context_schema=GroupContext)
        g.add_edge(START, "plan")
    else:
        g = StateGraph(GroupState, input_schema=QuestionInput)
        g.add_node("start", _start_node)
        g.add_edge(START, "start")
        g.add_edge("start", "plan")
    g.add_node("plan", node(plan_node))
    g.add_node("tool", node(tool_node))
    g.add_node("execute", node(execute_node))
    g.add_node("halt", node(halt_node))
    g.add_conditional_edges("plan", routing.after_plan, {"tool": "tool", "execute": "execute", "halt": "halt"})
    g.add_edge("tool", "execute")
    after_execute = {"plan": "plan", "halt": "halt", "end": END}
    if with_reflect:
        g.add_node("reflect", node(reflect_node))
        after_execute["reflect"] = "reflect"
        g.add_conditional_edges("reflect", node(routing.after_reflect), {"plan": "plan", "halt": "halt", "end": END})
    g.add_conditional_edges("execute", node(routing.after_execute), after_execute)
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


def bound_group_graph(context: GroupContext, checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """The compiled group graph with `context`'s agents bound in, invoked with `{"question": …}`;
    its step budget is `context.limits.recursion_limit()` (`autoact.langgraph_app` serves it)."""
    return group_state_graph(context.reflect is not None, context).compile(
        checkpointer=checkpointer, name="autoact-group").with_config(recursion_limit=context.limits.recursion_limit())


def build_single_agent_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """One agent acting alone (the `cot` and `react` designs): the group graph without reflection."""
    return build_group_graph(checkpointer, with_reflect=False)
