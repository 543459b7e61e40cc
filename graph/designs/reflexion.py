"""Reflexion (Shinn et al., 2023) on the runtime: ReAct trials with lessons kept between them.

A LangGraph graph of three nodes around an inner ReAct agent:

    trial ─► judge ─► (done) ─► END
              │
              └─► lesson ─► trial …   (up to `max_trials`)

- trial: the inner agent answers the question, with the lessons so far shown under it;
- judge: a trial fails when it halted or proposed no answer; otherwise the model judges its
  own answer, scoring `right` against `wrong` (never the gold answer);
- lesson: after a failed trial the model writes one line on what to do differently, kept in
  memory for the next trial.

Every trial's steps are kept in order; each judgement is a `Reflect[right|wrong]` step, so
results and diagnostics read as for the group. The answer is the last trial's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agents.base import REFLECT
from agents.choices import ranked
from agents.llm import generate_line
from agents.parsing import clean_thought
from graph.context import ModelDesignContext
from graph.designs.acting import build_single_agent
from graph.designs.inputs import DesignInputs
from graph.group import AgentGroup
from graph.protocol import GraphAgent
from graph.state import EpisodeState, Step
from prompts.builder import PromptBuilder, render_transcript


class ReflexionState(EpisodeState, total=False):
    lessons: list[str]
    trial: int
    trial_failed: bool


@dataclass(kw_only=True)
class ReflexionContext(ModelDesignContext):
    """`model` judges answers and writes lessons; `actor` (the inner ReAct agent) makes the trials."""

    actor: AgentGroup
    max_trials: int = 3
    lesson_tokens: int = 48


def with_lessons(question: str, lessons: list[str]) -> str:
    """The question as the next trial sees it: with the lessons so far under it."""
    if not lessons:
        return question
    notes = "\n".join(f"- {lesson}" for lesson in lessons)
    return PromptBuilder("reflexion_lessons", values={"question": question, "lessons": notes}).instruction()


def trial_node(state: ReflexionState, runtime: Runtime[ReflexionContext]) -> dict[str, Any]:
    ctx = runtime.context
    final = ctx.actor.invoke(with_lessons(state["question"], state.get("lessons") or []), state.get("inputs"))
    answer = final.get("answer") or final.get("proposed_answer") or ""
    return {"steps": list(final.get("steps") or []), "proposed_answer": answer or None,
            "trial": state.get("trial", 0) + 1, "trial_failed": bool(final.get("halted")) or not answer,
            "halted": bool(final.get("halted")), "halt_reason": final.get("halt_reason")}


def judge_node(state: ReflexionState, runtime: Runtime[ReflexionContext]) -> dict[str, Any]:
    ctx = runtime.context
    answer = state.get("proposed_answer")
    if state.get("trial_failed") or not answer:
        verdict, thought = "wrong", "The attempt ended without an answer."
    else:
        prompt = PromptBuilder("reflexion_judge", values={"question": state["question"], "answer": answer}).instruction()
        right, wrong = ctx.model.score(prompt, [" right", " wrong"])
        verdict = "right" if right >= wrong else "wrong"
        thought = f"Judged the answer {answer} {verdict}."
    step = Step(node="reflect", thought=thought, action=REFLECT, argument=verdict,
                observation=f"Trial {state.get('trial', 1)} judged {verdict}.", status="ok")
    if answer and not state.get("trial_failed"):
        step["choices"] = {"verdict": ranked({"right": right, "wrong": wrong})}
    done = verdict == "right" or state.get("trial", 1) >= ctx.max_trials
    return {"steps": [step], "phase": "done" if done else "lesson",
            "answer": (answer or "") if done else None, "trial_failed": verdict == "wrong"}


def lesson_node(state: ReflexionState, runtime: Runtime[ReflexionContext]) -> dict[str, Any]:
    ctx = runtime.context
    attempt = render_transcript((state.get("steps") or [])[-8:])
    prompt = PromptBuilder("reflexion_lesson", values={"question": state["question"], "attempt": attempt,
                                                       "answer": state.get("proposed_answer") or "(none)"}).instruction()
    lesson = clean_thought(generate_line(ctx.model, prompt, ctx.lesson_tokens))
    return {"lessons": [*(state.get("lessons") or []), lesson or "Try a different first action."],
            "halted": False, "halt_reason": None}


def after_judge(state: ReflexionState) -> Literal["lesson", "end"]:
    return "end" if state.get("phase") == "done" else "lesson"


def build_reflexion_graph(checkpointer: Any = None) -> CompiledStateGraph:
    g = StateGraph(ReflexionState, context_schema=ReflexionContext)
    g.add_node("trial", trial_node)
    g.add_node("judge", judge_node)
    g.add_node("lesson", lesson_node)
    g.add_edge(START, "trial")
    g.add_edge("trial", "judge")
    g.add_conditional_edges("judge", after_judge, {"lesson": "lesson", "end": END})
    g.add_edge("lesson", "trial")
    return g.compile(checkpointer=checkpointer, name="reflexion")


def build_reflexion(inputs: DesignInputs) -> GraphAgent:
    actor = build_single_agent(inputs, "react")
    context = inputs.model_context(ReflexionContext, toolbox=actor.context.toolbox, actor=actor,
                                   max_trials=inputs.max_trials)
    return GraphAgent("reflexion", build_reflexion_graph(), context, recursion_limit=3 * inputs.max_trials + 4,
                      start_extra={"lessons": [], "trial": 0})
