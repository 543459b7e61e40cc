"""The design registry: every agent design by name, with its builder, its graph and one line about it.

The CLI's `--agent` choices, `autoact graph`, assembly and the reports read this table. Adding a
design is one module here and one entry below. `models` says what a design needs served:
`roles` (a model per role, `--plan-model` … or a trained `--group`), `one` (a single model),
`none` (no model at all); `served` names the model it uses by default (`all`: the adapter
trained on every role's data), else the served base model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from langgraph.graph.state import CompiledStateGraph

from core.errors import ConfigError
from graph.builder import build_group_graph, build_single_agent_graph
from graph.designs import acting, baselines, bolaa, chameleon, reflexion, rewoo
from graph.designs.inputs import DesignInputs
from graph.protocol import GraphAgent

__all__ = ["DESIGNS", "Design", "DesignInputs", "build_design", "design"]


@dataclass(frozen=True)
class Design:
    name: str
    description: str
    build: Callable[[DesignInputs], GraphAgent]
    graph: Callable[[], CompiledStateGraph]  # the graph alone, for drawing
    models: Literal["roles", "one", "none"] = "one"
    served: str | None = None  # default served model name (None: the base model)
    reference: bool = False  # a reference answerer (`--baseline`), not an agent design


def _entries() -> list[Design]:
    return [
        Design("autoact", "the plan/tool/reflect group (AutoAct)", acting.build_autoact, build_group_graph,
               models="roles"),
        Design("cot", "chain of thought: one Thought, then the answer; no tools",
               lambda i: acting.build_single_agent(i, "cot"), build_single_agent_graph),
        Design("react", "one agent with worked examples in its prompt; no reflection",
               lambda i: acting.build_single_agent(i, "react"), build_single_agent_graph),
        Design("reflexion", "ReAct trials with self-judged answers and lessons between trials",
               reflexion.build_reflexion, reflexion.build_reflexion_graph),
        Design("rewoo", "the whole plan of tool calls first, then the calls, then the answer",
               rewoo.build_rewoo, rewoo.build_rewoo_graph),
        Design("fireact", "one model fine-tuned on all roles' data, served as 'all' or --model, in every role",
               acting.build_fireact, build_group_graph, models="roles", served="all"),
        Design("bolaa", "a controller routes each step to a labor agent per tool family",
               bolaa.build_bolaa, bolaa.build_bolaa_graph),
        Design("chameleon", "a program of tool modules composed first, then run in order",
               chameleon.build_chameleon, chameleon.build_chameleon_graph),
        Design("direct", "the base model answers at once, without tools (options scored)",
               baselines.build_direct, lambda: baselines.build_baseline_graph("direct"), reference=True),
        Design("chance", "an option drawn uniformly at random, the same for the same question (closed options)",
               baselines.build_chance, lambda: baselines.build_baseline_graph("chance"), models="none",
               reference=True),
        Design("majority", "a constant answer: the commonest answer letter of --baseline-train (ScienceQA), "
               "'yes' (HotpotQA)", baselines.build_majority, lambda: baselines.build_baseline_graph("majority"),
               models="none", reference=True),
    ]


DESIGNS: dict[str, Design] = {entry.name: entry for entry in _entries()}


def design(name: str) -> Design:
    if name not in DESIGNS:
        raise ConfigError(f"unknown design {name!r}: choose {', '.join(DESIGNS)}")
    return DESIGNS[name]


def build_design(name: str, inputs: DesignInputs) -> GraphAgent:
    """The design `name` built from `inputs`, ready to `run`."""
    return design(name).build(inputs)
