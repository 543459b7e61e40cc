"""Conditional edges of the group graph: small functions returning the next node's name."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime

from agents.base import REFLECT
from graph.context import GroupContext
from graph.state import GroupState


def _out_of_steps(state: GroupState, runtime: Runtime[GroupContext]) -> bool:
    return len(state.get("steps") or []) >= runtime.context.limits.max_steps


def after_plan(state: GroupState) -> Literal["tool", "execute", "halt"]:
    """An unreadable action or a misplaced Reflect goes straight to execution, which reports it."""
    if state.get("halted"):
        return "halt"
    pending = state.get("pending") or {}
    if pending.get("error") or pending.get("action") == REFLECT:
        return "execute"
    return "tool"


def after_execute(state: GroupState, runtime: Runtime[GroupContext]) -> Literal["plan", "reflect", "halt", "end"]:
    if state.get("phase") == "done":
        return "end"
    if _out_of_steps(state, runtime):
        return "halt"
    return "reflect" if state.get("phase") == "reflect" else "plan"


def after_reflect(state: GroupState, runtime: Runtime[GroupContext]) -> Literal["plan", "halt", "end"]:
    if state.get("phase") == "done":
        return "end"
    return "halt" if _out_of_steps(state, runtime) else "plan"
