"""The agent protocol (graph/protocol.py): `GraphAgent.run`, `stream` and `tools` on a scripted AgentGroup."""

from __future__ import annotations

import pytest

from agents.base import PlanDecision
from core.errors import EndpointError
from graph import AgentGroup, GroupContext, Limits
from graph.protocol import Episode, describe_error
from tasks import get_task
from tests.support.builders import ROWS, hotpot_toolbox
from tests.support.fakes import ScriptedPlan, scripted_reflect, scripted_tool

Q = ROWS[0]["question"]
SCRIPT = [("find it", "Retrieve"), ("done", "Finish")]
ARGS = ["Freedonia", "Fredville"]
NODES = ["plan", "tool", "execute", "plan", "tool", "execute", "reflect"]


def group(plan=None, args=None, verdicts=None, reflect=True, **limits) -> AgentGroup:
    """A fresh group playing the given script (the default: Retrieve, Finish, Reflect[right])."""
    ctx = GroupContext(plan=plan if callable(plan) else ScriptedPlan(list(plan or SCRIPT)),
                       tool=scripted_tool(list(ARGS if args is None else args)), toolbox=hotpot_toolbox(),
                       reflect=scripted_reflect(list(verdicts or ["right"])) if reflect else None,
                       task=get_task("hotpotqa"), limits=Limits(**limits))
    return AgentGroup(ctx)


def retrieve_then(err: BaseException):
    """A plan agent that retrieves once, then raises `err` on its next call."""
    def plan(view):
        if view.steps:
            raise err
        return PlanDecision("look", "Retrieve")
    return plan


def test_run_state_equals_invoke_final_state():
    """`run` keeps LangGraph's own final state: the same dict `invoke` returns for the same script."""
    episode = group().run(Q)
    assert isinstance(episode, Episode) and episode.error is None
    assert dict(episode.state) == group().invoke(Q)


def test_episode_properties_read_the_state():
    episode = group().run(Q)
    assert episode.steps == list(episode.state["steps"])
    assert [s["action"] for s in episode.steps] == ["Retrieve", "Finish", "Reflect"]
    assert episode.answer == "Fredville" and episode.halted is False and episode.halt_reason is None


def test_halted_episode_reports_halt_and_reason():
    episode = group([("look", "Search")] * 5, ["Fredville"] * 5, max_steps=2).run(Q)
    assert episode.halted is True and episode.halt_reason == "step limit"
    assert len(episode.steps) == 2 and episode.answer == ""


def test_answer_falls_back_to_the_proposed_answer():
    """An episode stopped after a Finish but before the verdict still reports the proposed answer."""
    def reflect(view):
        raise RuntimeError("judge down")
    ctx = GroupContext(plan=ScriptedPlan([("done", "Finish")]), tool=scripted_tool(["Fredville"]),
                       toolbox=hotpot_toolbox(), reflect=reflect)
    episode = AgentGroup(ctx).run(Q)
    assert episode.state.get("answer") is None and episode.answer == "Fredville"
    assert episode.error is not None and "judge down" in episode.error


def test_on_update_is_called_once_per_node_in_order():
    calls: list[tuple[str, dict]] = []
    group().run(Q, on_update=lambda node, update: calls.append((node, update)))
    assert [node for node, _ in calls] == NODES
    assert calls[0][1]["pending"]["action"] == "Retrieve"  # each call carries that node's own update
    assert calls[1][1]["pending"]["argument"] == "Freedonia"
    assert calls[2][1]["steps"][0]["action"] == "Retrieve"
    assert calls[-1][1]["answer"] == "Fredville" and calls[-1][1]["steps"][0]["node"] == "reflect"


def test_stream_yields_the_same_pairs_as_on_update():
    calls: list[tuple[str, dict]] = []
    group().run(Q, on_update=lambda node, update: calls.append((node, update)))
    streamed = list(group().stream(Q))
    assert streamed == calls and [node for node, _ in streamed] == NODES


def test_our_error_gives_its_message_alone_and_keeps_the_steps_reached():
    err = EndpointError("endpoint http://fake/v1 failed for model 'm'")
    episode = group(retrieve_then(err)).run(Q)
    assert episode.error == "endpoint http://fake/v1 failed for model 'm'"
    assert [s["action"] for s in episode.steps] == ["Retrieve"]
    assert "Its capital is Fredville" in episode.steps[0]["observation"]
    assert not episode.halted and episode.answer == ""


def test_other_errors_give_type_message_and_traceback():
    episode = group(retrieve_then(RuntimeError("boom"))).run(Q)
    assert episode.error is not None and episode.error.startswith("RuntimeError: boom\n")
    assert "Traceback (most recent call last)" in episode.error
    assert "in plan\n" in episode.error and "raise err" in episode.error  # the frame that raised is shown
    assert [s["action"] for s in episode.steps] == ["Retrieve"]


def test_describe_error_distinguishes_our_errors():
    assert describe_error(EndpointError("down")) == "down"
    try:
        raise ValueError("bad")
    except ValueError as err:
        text = describe_error(err)
    assert text.startswith("ValueError: bad\n") and "Traceback" in text
    assert "NoneType" not in describe_error(ValueError("outside"))  # reads its argument, not sys.exc_info


def test_keyboard_interrupt_propagates():
    def plan(view):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        group(plan).run(Q)


def test_tools_are_the_toolbox_specs():
    agent = group()
    assert list(agent.tools) == agent.context.toolbox.specs
    assert [s.name for s in agent.tools] == agent.context.toolbox.names and "Retrieve" in agent.context.toolbox.names
    assert "Finish" not in [s.name for s in agent.tools]
