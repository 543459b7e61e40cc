"""Small shared builders for tests."""

from __future__ import annotations

from pathlib import Path

from tools import Docstore, ToolResources, build_toolbox, default_tool_specs

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

ROWS = [
    {"id": "q1", "question": "Which city is the capital of Freedonia?", "answer": "Fredville", "level": "easy",
     "type": "bridge",
     "context": [["Freedonia", ["Freedonia is a small country.", " Its capital is Fredville."]],
                 ["Fredville", ["Fredville is a city on the river Fred.", " It has 10,000 people."]]]},
    {"id": "q2", "question": "Is Fredville a city?", "answer": "yes", "level": "hard", "type": "comparison",
     "context": [["Sylvania", ["Sylvania borders Freedonia."]]]},
]

# a right trajectory for ROWS[0]: Retrieve, Finish, Reflect[right]
TRAJECTORY_STEPS = [
    {"node": "plan", "thought": "Find the country page.", "action": "Retrieve", "argument": "Freedonia",
     "observation": "Freedonia is a small country. Its capital is Fredville."},
    {"node": "plan", "thought": "The capital is Fredville.", "action": "Finish", "argument": "Fredville",
     "observation": "Proposed answer: Fredville. Now reflect on whether it is right."},
    {"node": "reflect", "thought": "The page says so.", "action": "Reflect", "argument": "right",
     "observation": "The answer Fredville is accepted."},
]


def hotpot_toolbox(rows=ROWS):
    store = Docstore.from_rows(rows)
    return build_toolbox(default_tool_specs("hotpotqa"), ToolResources(pages=store, searcher=store))


def build_on_model(name, task, toolbox, model, limits=None, settings=None, **extra):
    """The registered design `name` with `model` in every role (graph.designs), as the CLI builds it."""
    from agents.base import AgentSettings
    from graph.context import Limits
    from graph.designs import DesignInputs, build_design
    inputs = DesignInputs(task=task, toolbox=toolbox, plan=model, limits=limits or Limits(),
                          settings=settings or AgentSettings(), **extra)
    return build_design(name, inputs)
