"""The group-planning runtime as a LangGraph state machine."""

from graph.builder import build_group_graph, group_state_graph
from graph.context import GroupContext, Limits
from graph.group import AgentGroup
from graph.state import GroupState, Step, initial_state

__all__ = ["AgentGroup", "GroupContext", "GroupState", "Limits", "Step", "build_group_graph",
           "group_state_graph", "initial_state"]
