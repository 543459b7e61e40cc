"""The runtime: the agent protocol, the group-planning graph, and every design (`graph.designs`)."""

from graph.builder import build_group_graph, group_state_graph
from graph.context import DesignContext, GroupContext, Limits
from graph.group import AgentGroup
from graph.protocol import Agent, Episode, GraphAgent
from graph.state import EpisodeState, GroupState, Step, initial_state

__all__ = ["Agent", "AgentGroup", "DesignContext", "Episode", "EpisodeState", "GraphAgent", "GroupContext",
           "GroupState", "Limits", "Step", "build_group_graph", "group_state_graph", "initial_state"]
