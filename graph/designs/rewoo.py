"""ReWOO (Xu et al., 2023) on the runtime: plan every tool call up front, run them, then answer.

    planner ─► worker ─► solver ─► END

- planner: the model writes the whole plan at once, one line per call, each naming its
  evidence variable: `#E1 = Retrieve[Carmen]`, `#E2 = Lookup[#E1 born]`; a later call may use
  an earlier variable in its argument;
- worker: runs the calls in order, replacing each `#Ek` in an argument by (the start of)
  that evidence, without asking the model anything;
- solver: the model answers from the question and the collected evidence (option scoring
  for multiple-choice tasks, a short generated answer otherwise).

Each call becomes a step (thought = the plan line, action, argument after substitution,
observation), then a Finish step, so results read as for the group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agents.parsing import clean_argument
from graph.builder import linear_graph
from graph.context import ModelDesignContext, prompt_tools
from graph.designs.closing import final_answer
from graph.designs.inputs import DesignInputs
from graph.protocol import GraphAgent
from graph.state import EpisodeState, Step
from prompts.builder import PromptBuilder

_CALL = re.compile(r"#E(\d+)\s*=\s*([A-Za-z][A-Za-z0-9]*)\s*\[([^\]\n]*)\]?")
_VARIABLE = re.compile(r"#E(\d+)")


class ReWOOState(EpisodeState, total=False):
    plan: list[dict[str, str]]  # {"variable", "action", "argument", "line"}
    evidence: dict[str, str]


@dataclass(kw_only=True)
class ReWOOContext(ModelDesignContext):
    max_calls: int = 6
    plan_tokens: int = 160
    evidence_chars: int = 200  # how much of an evidence text replaces its variable in a later argument


def parse_plan(text: str, max_calls: int) -> list[dict[str, str]]:
    """The `#Ek = Tool[argument]` calls of a plan, in order (other lines are reasoning, kept as notes)."""
    calls: list[dict[str, str]] = []
    for line in text.splitlines():
        match = _CALL.search(line)
        if match and len(calls) < max_calls:
            note = line[:match.start()].strip().removeprefix("Plan:").strip()
            calls.append({"variable": f"#E{match.group(1)}", "action": match.group(2),
                          "argument": match.group(3).strip(), "line": note or line.strip()})
    return calls


def substitute(argument: str, evidence: Mapping[str, str], limit: int) -> str:
    """Replace each `#Ek` by the start of evidence k (a variable without evidence stays as written)."""
    def value(match: re.Match[str]) -> str:
        found = evidence.get(f"#E{match.group(1)}")
        return " ".join(found.split())[:limit] if found is not None else match.group(0)
    return _VARIABLE.sub(value, argument)


def _builder(ctx: ReWOOContext) -> PromptBuilder:
    return PromptBuilder(f"rewoo_{ctx.task.name}", prompt_tools(ctx.toolbox.specs))


def planner_node(state: ReWOOState, runtime: Runtime[ReWOOContext]) -> dict[str, Any]:
    ctx = runtime.context
    prompt = _builder(ctx).cue(state["question"], [], "Plan:")
    text = "Plan:" + ctx.model.generate(prompt, stop=["\n\n", "\nQuestion:", "\nAnswer:"], max_tokens=ctx.plan_tokens)
    return {"plan": parse_plan(text, ctx.max_calls)}


def worker_node(state: ReWOOState, runtime: Runtime[ReWOOContext]) -> dict[str, Any]:
    ctx = runtime.context
    evidence: dict[str, str] = {}
    steps: list[Step] = []
    memory: dict[str, Any] = {}
    for call in state.get("plan") or []:
        argument = clean_argument(substitute(call["argument"], evidence, ctx.evidence_chars))
        result = ctx.toolbox.call(call["action"], argument, state.get("inputs") or {}, memory)
        memory = result.memory
        evidence[call["variable"]] = result.observation
        steps.append(Step(node="plan", thought=call["line"], action=call["action"], argument=argument,
                          observation=result.observation, status=result.status))
    return {"evidence": evidence, "steps": steps}


def solver_node(state: ReWOOState, runtime: Runtime[ReWOOContext]) -> dict[str, Any]:
    ctx = runtime.context
    lines = [f"{call['variable']} = {step['action']}[{step['argument']}]: {step['observation']}"
             for call, step in zip(state.get("plan") or [], state.get("steps") or [])]
    evidence = "\n".join(lines) or "(no evidence was gathered)"
    prompt = PromptBuilder("rewoo_solver").cue(state["question"], [], f"Evidence:\n{evidence}\nAnswer:")
    return final_answer(ctx.model, ctx.task, state.get("inputs") or {}, prompt, "Answer from the evidence.",
                        bracketed=False, max_tokens=24)


def build_rewoo_graph(checkpointer: Any = None) -> CompiledStateGraph:
    return linear_graph(ReWOOState, ReWOOContext, [("planner", planner_node), ("worker", worker_node),
                                                   ("solver", solver_node)], "rewoo", checkpointer)


def build_rewoo(inputs: DesignInputs) -> GraphAgent:
    return GraphAgent("rewoo", build_rewoo_graph(), inputs.model_context(ReWOOContext))
