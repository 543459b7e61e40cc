"""Episode state (graph/state.py): step statuses, legacy inference, the initial state, and what the nodes write."""

from __future__ import annotations

import typing

import pytest

from agents.base import PlanDecision, ReflectDecision
from graph import AgentGroup, GroupContext
from graph.state import UNUSABLE, StepStatus, initial_state, step_status
from tasks import get_task
from tests.support.builders import ROWS, hotpot_toolbox
from tests.support.fakes import ScriptedPlan, scripted_reflect, scripted_tool
from tools.base import ToolSpec
from tools.toolbox import Toolbox

Q = ROWS[0]["question"]


def test_step_status_prefers_the_recorded_status():
    step = {"node": "plan", "observation": "Invalid action: could not read", "status": "tool_error"}
    assert step_status(step) == "tool_error"
    assert step_status({"node": "reflect", "argument": "maybe", "status": "ok"}) == "ok"


@pytest.mark.parametrize("observation, expected", [
    ("Invalid action: could not read an action from 'blah'", "invalid_action"),
    ("Reflect can only follow a Finish; no answer has been proposed yet.", "misplaced_reflect"),
    ("Finish needs an answer between the brackets, e.g. Finish[Paris].", "empty_finish"),
    ("There is no tool named Teleport; valid tools: Retrieve.", "unknown_tool"),
    ("Tool Calculator failed: ZeroDivisionError: division by zero", "tool_error"),
    ("Tool output mentions nothing", "ok"),
    ("Freedonia is a small country.", "ok"),
    ("", "ok"),
])
def test_legacy_plan_steps_infer_status_from_observation(observation, expected):
    assert step_status({"node": "plan", "action": "X", "argument": "y", "observation": observation}) == expected


def test_legacy_inference_matches_prefixes_only():
    """Wording in the middle of an observation (a page quoting it) does not count."""
    assert step_status({"node": "plan", "observation": "The page says: Invalid action is a term."}) == "ok"


def test_empty_status_falls_back_to_inference():
    assert step_status({"node": "plan", "observation": "Invalid action: x", "status": ""}) == "invalid_action"


@pytest.mark.parametrize("argument, expected", [("right", "ok"), ("wrong", "ok"), ("maybe", "invalid_reflection"),
                                                ("", "invalid_reflection"), (None, "invalid_reflection")])
def test_legacy_reflect_steps_infer_status_from_their_verdict(argument, expected):
    step = {"node": "reflect", "action": "Reflect", "argument": argument,
            "observation": "The answer may be wrong. Keep investigating, then Finish again."}
    assert step_status(step) == expected


def test_unusable_holds_exactly_the_unusable_statuses():
    assert UNUSABLE == {"invalid_action", "misplaced_reflect", "empty_finish", "unknown_tool", "invalid_reflection"}
    assert UNUSABLE <= set(typing.get_args(StepStatus))
    assert set(typing.get_args(StepStatus)) - UNUSABLE == {"ok", "tool_error"}


def test_initial_state_fields():
    state = initial_state("Q?")
    assert state == {"question": "Q?", "inputs": {"question": "Q?"}, "steps": [], "pending": None, "phase": "plan",
                     "proposed_answer": None, "answer": None, "finishes": 0, "reflections": 0, "halted": False,
                     "halt_reason": None, "tool_memory": {}}


def test_initial_state_copies_inputs_and_shares_nothing():
    inputs = {"question": "Q?", "choices": ["a", "b"]}
    first, second = initial_state("Q?", inputs), initial_state("Q?", inputs)
    assert first["inputs"] == inputs and first["inputs"] is not inputs
    first["steps"].append({"node": "plan"})
    first["tool_memory"]["page"] = "x"
    assert second["steps"] == [] and second["tool_memory"] == {}


class Broken:
    spec = ToolSpec("Broken", "always fails", "Broken[anything]")

    def run(self, argument, ctx):
        raise OSError("disk gone")


def statuses(plan, args, verdicts=None, reflect=True, toolbox=None) -> list[tuple[str, str]]:
    if reflect is True:
        reflect = scripted_reflect(verdicts or [])
    ctx = GroupContext(plan=plan if callable(plan) else ScriptedPlan(plan), tool=scripted_tool(args),
                       toolbox=toolbox or hotpot_toolbox(), task=get_task("hotpotqa"), reflect=reflect or None)
    return [(s["action"], s["status"]) for s in AgentGroup(ctx).invoke(Q)["steps"]]


def test_tool_step_and_finish_are_ok():
    assert statuses([("r", "Retrieve"), ("f", "Finish")], ["Freedonia", "Fredville"], ["right"]) == [
        ("Retrieve", "ok"), ("Finish", "ok"), ("Reflect", "ok")]


def test_unknown_tool_step():
    assert statuses([("t", "Teleport"), ("f", "Finish")], ["Mars", "x"], reflect=False)[0] == (
        "Teleport", "unknown_tool")


def test_raising_tool_step_is_a_tool_error():
    toolbox = Toolbox([Broken()])
    assert statuses([("b", "Broken"), ("f", "Finish")], ["now", "x"], reflect=False, toolbox=toolbox)[0] == (
        "Broken", "tool_error")


def test_empty_finish_step():
    assert statuses([("f", "Finish"), ("f", "Finish")], ["  ", "x"], reflect=False) == [
        ("Finish", "empty_finish"), ("Finish", "ok")]


def test_plan_decision_with_error_is_an_invalid_action():
    def plan(view):
        if not view.steps:
            return PlanDecision("?", "", error="could not read an action")
        return PlanDecision("f", "Finish")
    assert statuses(plan, ["x"], reflect=False) == [("", "invalid_action"), ("Finish", "ok")]


def test_reflect_before_finish_is_misplaced():
    assert statuses([("r", "Reflect"), ("f", "Finish")], ["x"], reflect=False) == [
        ("Reflect", "misplaced_reflect"), ("Finish", "ok")]


def test_unreadable_verdict_is_an_invalid_reflection():
    verdicts = [ReflectDecision("hmm", None, error="no verdict"), ReflectDecision("yes", "right")]
    got = statuses([("f", "Finish"), ("f", "Finish")], ["x", "y"], reflect=lambda view: verdicts.pop(0))
    assert got == [("Finish", "ok"), ("Reflect", "invalid_reflection"), ("Finish", "ok")]
