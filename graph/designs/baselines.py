"""Reference answerers that expose cheap wins, run like any design (`autoact eval --agent NAME`).

- `majority`: always the same answer. ScienceQA: the answer letter most frequent in a
  training file; HotpotQA: "yes" (the commonest HotpotQA answer).
- `direct`: the base model answers at once, without tools. ScienceQA: the option it
  scores likeliest after the question; HotpotQA: a short greedy answer.
- `chance`: an option drawn uniformly at random (seeded by the question, so a rerun draws the
  same); only for tasks with closed options. Its expected score is the chance level the
  summaries report.

A baseline is a graph of one node whose episode is one `Finish` step, so results rows,
summaries and diagnostics have the same form as the group's.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agents.base import FINISH, best
from agents.llm import CompletionModel, generate_line
from agents.parsing import clean_answer
from core.errors import ConfigError
from graph.context import DesignContext
from graph.designs.inputs import DesignInputs
from graph.protocol import GraphAgent
from graph.state import EpisodeState, Step
from prompts.builder import PromptBuilder
from tasks.base import Task
from tools import ToolResources, build_toolbox

Answerer = Callable[[str, Mapping[str, Any]], str]


@dataclass(kw_only=True)
class BaselineContext(DesignContext):
    name: str  # the baseline's name, shown in its step's thought
    answer: Answerer  # (question, inputs) → the answer


def answer_node(state: EpisodeState, runtime: Runtime[BaselineContext]) -> dict[str, Any]:
    answer = runtime.context.answer(state["question"], state.get("inputs") or {})
    step = Step(node="plan", thought=f"({runtime.context.name} baseline)", action=FINISH, argument=answer,
                observation=f"Final answer: {answer}.", status="ok")
    return {"steps": [step], "proposed_answer": answer, "answer": answer, "phase": "done"}


def build_baseline_graph(name: str = "baseline") -> CompiledStateGraph:
    """One node, named after the baseline, that answers and ends the episode."""
    g = StateGraph(EpisodeState, context_schema=BaselineContext)
    g.add_node(name, answer_node)
    g.add_edge(START, name)
    g.add_edge(name, END)
    return g.compile(name=name)


def majority_answer(task: Task, train_rows: Sequence[Mapping[str, Any]] | None) -> str:
    """The constant answer of the majority baseline."""
    if task.name == "hotpotqa":
        return "yes"
    if not train_rows:
        raise ConfigError(f"the majority baseline for {task.name} needs a training file (--baseline-train FILE) "
                          "to count answer letters in")
    counts = Counter(str(r["answer"]).strip()[:1].upper() for r in train_rows if r.get("answer"))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def direct_answerer(task: Task, model: CompletionModel) -> Answerer:
    """The direct baseline: option scoring when the task has options, else a short greedy answer."""
    def answer(question: str, inputs: Mapping[str, Any]) -> str:
        prompt = PromptBuilder("direct").cue(question, [], "Answer:")
        choices = task.answer_choices(inputs) if inputs.get("choices") else None
        if choices:
            return best(dict(zip(choices, model.score(prompt, [f" {c}" for c in choices]))))
        return clean_answer(generate_line(model, prompt, 16))
    return answer


def _baseline(name: str, inputs: DesignInputs, answer: Answerer) -> GraphAgent:
    context = BaselineContext(toolbox=build_toolbox([], ToolResources()), task=inputs.task, limits=inputs.limits,
                              name=name, answer=answer)
    return GraphAgent(name, build_baseline_graph(name), context)


def chance_answerer(task: Task, seed: int = 0) -> Answerer:
    """A uniform draw among the options; the same question always draws the same option."""
    if not task.closed_options:
        raise ConfigError(f"the chance baseline needs closed answer options; {task.name} answers are open")

    def answer(question: str, inputs: Mapping[str, Any]) -> str:
        choices = task.answer_choices(inputs) or []
        digest = hashlib.sha256(f"{seed}\0{question}".encode()).digest()
        return choices[int.from_bytes(digest[:8], "big") % len(choices)] if choices else ""
    return answer


def build_chance(inputs: DesignInputs) -> GraphAgent:
    return _baseline("chance", inputs, chance_answerer(inputs.task))


def build_direct(inputs: DesignInputs) -> GraphAgent:
    return _baseline("direct", inputs, direct_answerer(inputs.task, inputs.model()))


def build_majority(inputs: DesignInputs) -> GraphAgent:
    constant = majority_answer(inputs.task, inputs.train_rows)
    return _baseline("majority", inputs, lambda question, inputs: constant)
