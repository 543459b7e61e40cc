"""Chameleon (Lu et al., 2023) on the runtime: a planner composes a program of modules, run in order.

    planner ─► executor ─► answerer ─► END

- planner: the model writes the program, the names of the tool modules to run in order
  (`Retrieve, Lookup, Finish`), read leniently; names that are not tools are dropped;
- executor: runs the modules one after another; for each, the model writes the module's input
  from the question and the outputs so far, and the module's output is added to them;
- answerer: the final answer module (options scored for multiple-choice tasks, generated
  otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agents.base import FINISH
from agents.parsing import canonical_name, clean_argument
from graph.builder import linear_graph
from graph.context import ModelDesignContext, prompt_tools
from graph.designs.closing import final_answer
from graph.designs.inputs import DesignInputs
from graph.protocol import GraphAgent
from graph.state import EpisodeState, Step
from prompts.builder import PromptBuilder


class ChameleonState(EpisodeState, total=False):
    program: list[str]  # the tool modules to run, in order


@dataclass(kw_only=True)
class ChameleonContext(ModelDesignContext):
    max_modules: int = 5
    program_tokens: int = 32
    argument_tokens: int = 32


def parse_program(text: str, modules: list[str], limit: int) -> list[str]:
    """Module names of a written program, in order, up to `limit`; `Finish` ends it."""
    program: list[str] = []
    for piece in re.split(r"[,;\n]|->|→|\band\b|\bthen\b", text.split("\n\n", 1)[0]):
        word = re.match(r"[\s\d.)*`-]*([A-Za-z][A-Za-z0-9_]*)", piece)  # "2. Retrieve[x]" → Retrieve
        name = canonical_name(word.group(1), [*modules, FINISH]) if word else None
        if name == FINISH:
            break
        if name and len(program) < limit:
            program.append(name)
    return program


def planner_node(state: ChameleonState, runtime: Runtime[ChameleonContext]) -> dict[str, Any]:
    ctx = runtime.context
    builder = PromptBuilder(f"chameleon_{ctx.task.name}", prompt_tools(ctx.toolbox.specs))
    prompt = builder.cue(state["question"], [], "Program:")
    text = ctx.model.generate(prompt, stop=["\nQuestion:", "\n\n"], max_tokens=ctx.program_tokens)
    return {"program": parse_program(text, list(ctx.toolbox.names), ctx.max_modules)}


def executor_node(state: ChameleonState, runtime: Runtime[ChameleonContext]) -> dict[str, Any]:
    ctx = runtime.context
    steps: list[Step] = []
    memory = dict(state.get("tool_memory") or {})
    for module in state.get("program") or []:
        cue = PromptBuilder("chameleon_module", values={"module": module}).cue(
            state["question"], steps, f"Input to {module}: {module}[")
        argument = clean_argument(ctx.model.generate(cue, stop=["]", "\n"], max_tokens=ctx.argument_tokens))
        call = ctx.toolbox.call(module, argument, state.get("inputs") or {}, memory)
        memory = call.memory
        steps.append(Step(node="plan", thought=f"(program module {len(steps) + 1}: {module})", action=module,
                          argument=argument, observation=call.observation, status=call.status))
    return {"steps": steps, "tool_memory": memory}


def answerer_node(state: ChameleonState, runtime: Runtime[ChameleonContext]) -> dict[str, Any]:
    ctx = runtime.context
    cue = PromptBuilder("chameleon_answer").cue(state["question"], state.get("steps") or [], f"Answer: {FINISH}[")
    return final_answer(ctx.model, ctx.task, state.get("inputs") or {}, cue, "(program module: answer)",
                        max_tokens=ctx.argument_tokens)


def build_chameleon_graph(checkpointer: Any = None) -> CompiledStateGraph:
    return linear_graph(ChameleonState, ChameleonContext, [("planner", planner_node), ("executor", executor_node),
                                                           ("answerer", answerer_node)], "chameleon", checkpointer)


def build_chameleon(inputs: DesignInputs) -> GraphAgent:
    return GraphAgent("chameleon", build_chameleon_graph(), inputs.model_context(ChameleonContext))
