"""BOLAA (Liu et al., 2023) on the runtime: a controller routes each step to a specialised labor agent.

    controller ─► labor ─► controller … ─► answer ─► END      (halt at the step limit)

- controller: chooses who acts next among the labor agents the task's tools call for (one per
  tool family: search, vision, math, data) and `Finish`; the choice is scored;
- labor: the chosen agent sees only its own tools; it takes one step as the group's plan and
  tool agents do (a thought, one of its tools by score, the argument) with its own prompt
  (`prompts/bolaa_labor.txt`), and the tool runs;
- answer: the final answer (options scored for multiple-choice tasks, generated otherwise).

Steps read as the group's: the labor agent's name prefixes its thought.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agents.base import FINISH, AgentSettings, EpisodeView, best
from agents.choices import recording
from agents.plan import ModelPlanAgent
from agents.tool import ModelToolAgent
from graph.context import ModelDesignContext
from graph.designs.closing import final_answer
from graph.designs.inputs import DesignInputs
from graph.protocol import GraphAgent
from graph.state import EpisodeState, Step
from prompts.builder import PromptBuilder

FAMILIES: dict[str, tuple[str, ...]] = {
    "search": ("Retrieve", "Lookup", "Search"),
    "vision": ("Image2Text", "Text2Image"),
    "math": ("Calculator", "Code"),
    "data": ("Database", "KnowledgeGraph", "TableVerbalizer"),
}


class BolaaState(EpisodeState, total=False):
    next: str  # the labor agent the controller chose, Finish, or halt


@dataclass(kw_only=True)
class BolaaContext(ModelDesignContext):
    thought_tokens: int = 64
    argument_tokens: int = 32
    labor: dict[str, tuple[str, ...]] = field(init=False)

    def __post_init__(self) -> None:
        names = set(self.toolbox.names)
        self.labor = {family: tuple(t for t in tools if t in names) for family, tools in FAMILIES.items()
                      if any(t in names for t in tools)}
        unplaced = names - {t for tools in self.labor.values() for t in tools}
        if unplaced:  # a tool of no known family gets an agent of its own
            self.labor.update({name.lower(): (name,) for name in sorted(unplaced)})


def controller_node(state: BolaaState, runtime: Runtime[BolaaContext]) -> dict[str, Any]:
    ctx = runtime.context
    if len(state.get("steps") or []) >= ctx.limits.max_steps:
        return {"next": "halt"}
    agents = "\n".join(f"- {family}: uses {', '.join(tools)}" for family, tools in ctx.labor.items())
    prompt = PromptBuilder("bolaa_controller", values={"agents": agents}).cue(state["question"], state.get("steps") or [],
                                                                            "Next:")
    options = [*ctx.labor, FINISH]
    scores = ctx.model.score(prompt, [f" {o}" for o in options])
    return {"next": best(dict(zip(options, scores)))}


def labor_node(state: BolaaState, runtime: Runtime[BolaaContext]) -> dict[str, Any]:
    """The chosen labor agent takes one step as the group's plan and tool agents do, over its own tools."""
    ctx = runtime.context
    family = state["next"]
    specs = tuple(s for s in ctx.toolbox.specs if s.name in ctx.labor[family])
    view = EpisodeView(question=state["question"], inputs=state.get("inputs") or {},
                       steps=list(state.get("steps") or []), tools=specs, actions=tuple(s.name for s in specs))
    settings = AgentSettings(thought_tokens=ctx.thought_tokens, argument_tokens=ctx.argument_tokens)
    values = {"family": family}
    with recording() as choices:
        decision = ModelPlanAgent(ctx.model, "bolaa_labor", settings, values)(view)
        argument = ModelToolAgent(ctx.model, "bolaa_labor", settings, values)(view, decision.thought, decision.action)
    call = ctx.toolbox.call(decision.action, argument, state.get("inputs") or {}, state.get("tool_memory") or {})
    step = Step(node="plan", thought=f"({family} agent) {decision.thought}", action=decision.action,
                argument=argument, observation=call.observation, status=call.status)
    if choices:
        step["choices"] = choices
    return {"steps": [step], "tool_memory": call.memory}


def answer_node(state: BolaaState, runtime: Runtime[BolaaContext]) -> dict[str, Any]:
    ctx = runtime.context
    steps = state.get("steps") or []
    cue = PromptBuilder("bolaa_answer").cue(state["question"], steps, f"Action {len(steps) + 1}: {FINISH}[")
    return final_answer(ctx.model, ctx.task, state.get("inputs") or {}, cue,
                        "(controller) The team has what it needs.", max_tokens=ctx.argument_tokens)


def halt_node(state: BolaaState) -> dict[str, Any]:
    return {"halted": True, "halt_reason": "step limit", "phase": "done", "answer": ""}


def route(state: BolaaState) -> Literal["labor", "answer", "halt"]:
    if state.get("next") == "halt":
        return "halt"
    return "answer" if state.get("next") == FINISH else "labor"


def build_bolaa_graph(checkpointer: Any = None) -> CompiledStateGraph:
    g = StateGraph(BolaaState, context_schema=BolaaContext)
    g.add_node("controller", controller_node)
    g.add_node("labor", labor_node)
    g.add_node("answer", answer_node)
    g.add_node("halt", halt_node)
    g.add_edge(START, "controller")
    g.add_conditional_edges("controller", route, {"labor": "labor", "answer": "answer", "halt": "halt"})
    g.add_edge("labor", "controller")
    g.add_edge("answer", END)
    g.add_edge("halt", END)
    return g.compile(checkpointer=checkpointer, name="bolaa")


def build_bolaa(inputs: DesignInputs) -> GraphAgent:
    return GraphAgent("bolaa", build_bolaa_graph(), inputs.model_context(BolaaContext),
                      recursion_limit=2 * inputs.limits.max_steps + 6)
