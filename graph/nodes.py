"""Graph nodes: each reads the state, asks its agent (from the run context) and returns a partial update."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from langgraph.runtime import Runtime

from agents.base import FINISH, REFLECT
from agents.choices import recording
from core.tokens import estimate_tokens
from graph.context import GroupContext
from graph.state import GroupState, Step
from prompts.builder import PromptBuilder


def plan_node(state: GroupState, runtime: Runtime[GroupContext]) -> dict[str, Any]:
    """The plan agent picks a thought and an action name; halts first if the prompt would not fit.

    With `Limits.answer_at_limit`, the last step that leaves room for a reflection offers only Finish.
    """
    ctx = runtime.context
    view = ctx.view(state)
    prompt = PromptBuilder(ctx.budget_role, view.tools).thought(view.question, view.steps)
    if estimate_tokens(prompt, ctx.limits.chars_per_token) > ctx.limits.context_tokens:
        return {"halted": True, "halt_reason": "context budget"}
    can_reflect = ctx.reflect is not None and state.get("reflections", 0) < ctx.limits.max_reflections
    with recording() as choices:
        if ctx.limits.must_finish(len(view.steps), can_reflect):
            decision = ctx.plan(replace(view, actions=(FINISH,)))
            return {"pending": {"thought": decision.thought, "action": FINISH, "error": None, "choices": choices}}
        decision = ctx.plan(view)
    return {"pending": {"thought": decision.thought, "action": decision.action, "error": decision.error,
                        "choices": choices}}


def tool_node(state: GroupState, runtime: Runtime[GroupContext]) -> dict[str, Any]:
    """The tool agent writes the argument of the chosen action."""
    pending = dict(state.get("pending") or {})
    with recording(dict(pending.get("choices") or {})) as choices:
        pending["argument"] = runtime.context.tool(runtime.context.view(state), pending.get("thought", ""),
                                                   pending["action"])
    pending["choices"] = choices
    return {"pending": pending}


def execute_node(state: GroupState, runtime: Runtime[GroupContext]) -> dict[str, Any]:
    """The environment: runs the tool, or records a Finish, or reports an unusable action."""
    ctx = runtime.context
    pending = state.get("pending") or {}
    action, argument = pending.get("action", ""), pending.get("argument", "")
    step = Step(node="plan", thought=pending.get("thought", ""), action=action, argument=argument)
    if pending.get("choices"):
        step["choices"] = pending["choices"]
    update: dict[str, Any] = {"pending": None}
    if pending.get("error"):
        step.update(observation=f"Invalid action: {pending['error']}", status="invalid_action")
    elif action == REFLECT:
        step.update(observation="Reflect can only follow a Finish; no answer has been proposed yet.",
                    status="misplaced_reflect")
    elif action == FINISH:
        update.update(_finish(state, ctx, argument, step))
    else:
        call = ctx.toolbox.call(action, argument, state.get("inputs") or {}, dict(state.get("tool_memory") or {}))
        step.update(observation=call.observation, status=call.status)
        update["tool_memory"] = call.memory
    update["steps"] = [step]
    return update


def _finish(state: GroupState, ctx: GroupContext, answer: str, step: Step) -> dict[str, Any]:
    if not answer.strip():
        step.update(observation="Finish needs an answer between the brackets, e.g. Finish[Paris].",
                    status="empty_finish")
        return {}
    step["status"] = "ok"
    update: dict[str, Any] = {"proposed_answer": answer, "finishes": state.get("finishes", 0) + 1}
    if ctx.reflect is not None and state.get("reflections", 0) < ctx.limits.max_reflections:
        step["observation"] = f"Proposed answer: {answer}. Now reflect on whether it is right."
        update["phase"] = "reflect"
    else:
        step["observation"] = f"Final answer: {answer}."
        update.update(phase="done", answer=answer)
    return update


def reflect_node(state: GroupState, runtime: Runtime[GroupContext]) -> dict[str, Any]:
    """The reflect agent judges the proposed answer: right ends the episode, wrong sends it back to planning."""
    ctx = runtime.context
    assert ctx.reflect is not None  # routing only comes here with a reflect agent
    with recording() as choices:
        decision = ctx.reflect(ctx.view(state))
    step = Step(node="reflect", thought=decision.thought, action=REFLECT, argument=decision.verdict or "",
                status="ok" if decision.verdict in ("right", "wrong") else "invalid_reflection")
    if decision.margin is not None:
        step["margin"] = decision.margin
    if choices:
        step["choices"] = choices
    update: dict[str, Any] = {"reflections": state.get("reflections", 0) + 1}
    if decision.verdict == "right":
        step["observation"] = f"The answer {state.get('proposed_answer')} is accepted."
        update.update(phase="done", answer=state.get("proposed_answer"))
    elif decision.verdict == "wrong":
        step["observation"] = "The answer may be wrong. Keep investigating, then Finish again."
        update["phase"] = "plan"
    else:
        step["observation"] = f"Invalid reflection: {decision.error}. Keep investigating, then Finish again."
        update["phase"] = "plan"
    update["steps"] = [step]
    return update


def halt_node(state: GroupState) -> dict[str, Any]:
    """Ends an episode at the step limit or context budget, keeping whatever answer it had."""
    reason = state.get("halt_reason") or "step limit"
    return {"halted": True, "halt_reason": reason, "phase": "done", "answer": state.get("proposed_answer") or ""}
