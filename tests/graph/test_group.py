"""Every edge of the group state machine, with scripted agents (DESIGN.md §1)."""

from __future__ import annotations

import asyncio

from langgraph.checkpoint.memory import InMemorySaver

from graph import AgentGroup, GroupContext, Limits, build_group_graph, initial_state
from tasks import get_task
from tests.support.builders import ROWS, hotpot_toolbox
from tests.support.fakes import ScriptedPlan, scripted_reflect, scripted_tool

Q = ROWS[0]["question"]


def group(plan, args, verdicts=None, reflect=True, **limits) -> AgentGroup:
    ctx = GroupContext(plan=ScriptedPlan(plan), tool=scripted_tool(args), toolbox=hotpot_toolbox(),
                       reflect=scripted_reflect(verdicts or []) if reflect else None,
                       task=get_task("hotpotqa"), limits=Limits(**limits))
    return AgentGroup(ctx)


def actions(state) -> list[str]:
    return [f"{s['action']}[{s['argument']}]" for s in state["steps"]]


def test_tool_step_then_finish_then_reflect_right_ends():
    g = group([("find it", "Retrieve"), ("done", "Finish")], ["Freedonia", "Fredville"], ["right"])
    state = g.invoke(Q)
    assert actions(state) == ["Retrieve[Freedonia]", "Finish[Fredville]", "Reflect[right]"]
    assert "Its capital is Fredville" in state["steps"][0]["observation"]
    assert state["answer"] == "Fredville" and not state["halted"]
    assert state["steps"][2]["node"] == "reflect"


def test_reflect_wrong_returns_to_plan_and_second_finish_is_final_by_default():
    g = group([("a", "Finish"), ("b", "Finish")], ["Sylvania", "Fredville"], ["wrong", "right"])
    state = g.invoke(Q)
    assert actions(state) == ["Finish[Sylvania]", "Reflect[wrong]", "Finish[Fredville]"]
    assert state["answer"] == "Fredville" and state["reflections"] == 1 and state["finishes"] == 2
    assert state["steps"][-1]["observation"].startswith("Final answer")


def test_repeated_finish_reflect_cycles_with_higher_max_reflections():
    g = group([("a", "Finish"), ("b", "Finish"), ("c", "Finish")], ["x", "y", "z"],
              ["wrong", "wrong", "right"], max_reflections=3)
    state = g.invoke(Q)
    assert actions(state) == ["Finish[x]", "Reflect[wrong]", "Finish[y]", "Reflect[wrong]", "Finish[z]",
                              "Reflect[right]"]
    assert state["answer"] == "z"


def test_no_reflect_agent_first_finish_ends():
    g = group([("a", "Finish")], ["Fredville"], reflect=False)
    state = g.invoke(Q)
    assert actions(state) == ["Finish[Fredville]"] and state["answer"] == "Fredville"


def test_step_limit_halts_with_proposed_answer():
    g = group([("a", "Finish")] + [("look", "Lookup")] * 20, ["guess"] + ["x"] * 20, ["wrong"], max_steps=4)
    state = g.invoke(Q)
    assert len(state["steps"]) == 4 and state["halted"] and state["halt_reason"] == "step limit"
    assert state["answer"] == "guess"


def test_step_limit_without_any_answer():
    g = group([("look", "Search")] * 5, ["Fredville"] * 5, max_steps=3)
    state = g.invoke(Q)
    assert state["halted"] and state["answer"] == "" and len(state["steps"]) == 3


def test_answer_at_limit_makes_the_last_steps_finish_and_leaves_room_to_reflect():
    g = group([("look", "Search")] * 9, ["Fredville"] * 3 + ["Fredville"], ["right"], max_steps=5,
              answer_at_limit=True)
    state = g.invoke(Q)
    # steps 1-3 search; step 4 is the last that leaves room for the reflection, so it must Finish
    assert actions(state) == ["Search[Fredville]"] * 3 + ["Finish[Fredville]", "Reflect[right]"]
    assert state["answer"] == "Fredville" and not state["halted"]
    g = group([("look", "Search")] * 9, ["Fredville"] * 9, reflect=False, max_steps=3, answer_at_limit=True)
    assert actions(g.invoke(Q))[-1] == "Finish[Fredville]"  # without a reflect agent: the very last step
    g = group([("look", "Search")] * 9, ["Fredville"] * 9, max_steps=3)
    assert g.invoke(Q)["halted"]  # off by default: the step limit halts


def test_context_budget_halts_before_overlong_prompt():
    from prompts.builder import PromptBuilder
    probe = group([], [])
    empty = len(PromptBuilder("plan", probe.context.tool_specs()).thought(Q, [])) / 3.5
    g = group([("look", "Retrieve")] * 10, ["Freedonia"] * 10, context_tokens=int(empty) + 80)
    state = g.invoke(Q)
    assert state["halted"] and state["halt_reason"] == "context budget"
    assert 0 < len(state["steps"]) < 10


def test_unknown_tool_invalid_action_and_misplaced_reflect_are_observations():
    def bad_plan(view):
        from agents.base import PlanDecision
        n = len(view.steps)
        return [PlanDecision("?", "", error="could not read an action from 'blah'"),
                PlanDecision("?", "Reflect"), PlanDecision("?", "Teleport"),
                PlanDecision("ok", "Finish")][n]
    ctx = GroupContext(plan=bad_plan, tool=scripted_tool(["somewhere", "Fredville"]), toolbox=hotpot_toolbox(),
                       task=get_task("hotpotqa"))
    state = AgentGroup(ctx).invoke(Q)
    obs = [s["observation"] for s in state["steps"]]
    assert obs[0].startswith("Invalid action")
    assert "Reflect can only follow a Finish" in obs[1]
    assert "Teleport" in obs[2] and "Retrieve" in obs[2]  # unknown tool lists valid names
    assert state["answer"] == "Fredville"


def test_empty_finish_is_not_a_proposal():
    g = group([("a", "Finish"), ("b", "Finish")], ["", "Fredville"], ["right"])
    state = g.invoke(Q)
    assert "needs an answer" in state["steps"][0]["observation"] and state["answer"] == "Fredville"


def test_lookup_uses_page_from_retrieve_through_tool_memory():
    g = group([("r", "Retrieve"), ("l", "Lookup"), ("f", "Finish")], ["Fredville", "people", "10,000"], ["right"])
    state = g.invoke(Q)
    assert "10,000 people" in state["steps"][1]["observation"]


def test_stream_updates_name_each_node_in_order():
    g = group([("r", "Retrieve"), ("f", "Finish")], ["Freedonia", "Fredville"], ["right"])
    nodes = [node for node, _ in g.stream(Q)]
    assert nodes == ["plan", "tool", "execute", "plan", "tool", "execute", "reflect"]


def test_astream_matches_stream():
    """The async stream yields the same (node, update) pairs as the sync one, for the same scripted episode."""
    def episode():
        return group([("r", "Retrieve"), ("f", "Finish")], ["Freedonia", "Fredville"], ["right"])

    async def collect():
        return [pair async for pair in episode().astream(Q)]
    streamed = list(episode().stream(Q))
    assert asyncio.run(collect()) == streamed
    assert [node for node, _ in streamed] == ["plan", "tool", "execute", "plan", "tool", "execute", "reflect"]


def test_plain_graph_invoke_with_context_and_recursion_limit():
    ctx = GroupContext(plan=ScriptedPlan([("f", "Finish")]), tool=scripted_tool(["Fredville"]),
                       toolbox=hotpot_toolbox())
    graph = build_group_graph()
    state = graph.invoke(initial_state(Q), {"recursion_limit": ctx.limits.recursion_limit()}, context=ctx)
    assert state["answer"] == "Fredville"


def test_checkpointer_keeps_state_by_thread_id(tmp_path):
    from langgraph.checkpoint.sqlite import SqliteSaver
    with SqliteSaver.from_conn_string(str(tmp_path / "ck.sqlite")) as saver:
        ctx = GroupContext(plan=ScriptedPlan([("f", "Finish")]), tool=scripted_tool(["Fredville"]),
                           toolbox=hotpot_toolbox(), reflect=scripted_reflect(["right"]))
        g = AgentGroup(ctx, checkpointer=saver)
        g.invoke(Q, thread_id="t1")
        snap = g.graph.get_state({"configurable": {"thread_id": "t1"}})
        assert snap.values["answer"] == "Fredville" and len(snap.values["steps"]) == 2
        history = list(g.graph.get_state_history({"configurable": {"thread_id": "t1"}}))
        assert len(history) >= 4


def test_interrupted_run_resumes_from_checkpoint():
    """A run stopped before `execute` continues from the checkpoint, not from the start."""
    saver = InMemorySaver()
    plan = ScriptedPlan([("r", "Retrieve"), ("f", "Finish")])
    ctx = GroupContext(plan=plan, tool=scripted_tool(["Freedonia", "Fredville"]), toolbox=hotpot_toolbox())
    graph = build_group_graph(saver)
    cfg = {"configurable": {"thread_id": "r"}, "recursion_limit": 50}
    graph.invoke(initial_state(Q), cfg, context=ctx, interrupt_before=["execute"])
    assert graph.get_state(cfg).next == ("execute",)
    state = graph.invoke(None, cfg, context=ctx)
    assert state["answer"] == "Fredville" and len(plan.seen) == 2


TOPOLOGY = """\
__start__ --> plan;
execute -. &nbsp;end&nbsp; .-> __end__;
execute -.-> halt;
execute -.-> plan;
execute -.-> reflect;
plan -.-> execute;
plan -.-> halt;
plan -.-> tool;
reflect -. &nbsp;end&nbsp; .-> __end__;
reflect -.-> halt;
reflect -.-> plan;
tool --> execute;
halt --> __end__;"""


def test_topology_mermaid_snapshot():
    mermaid = build_group_graph().get_graph().draw_mermaid()
    edges = [line.strip() for line in mermaid.splitlines() if "-->" in line or "-.->" in line or ".->" in line]
    assert "\n".join(edges) == TOPOLOGY


def test_recursion_limit_covers_the_step_limit():
    g = group([("look", "Search")] * 30, ["Fredville"] * 30, max_steps=25)
    assert g.config()["recursion_limit"] == Limits(max_steps=25).recursion_limit()
    state = g.invoke(Q)  # would raise GraphRecursionError if the limit were too small
    assert len(state["steps"]) == 25 and state["halted"]


def test_graph_command_prints_the_group_as_mermaid(capsys):
    from autoact.cli import main
    assert main(["graph", "--agent", "autoact"]) == 0
    out = capsys.readouterr().out
    assert "graph TD;" in out
    for edge in ("__start__ --> plan;", "tool --> execute;", "execute -.-> reflect;", "reflect -.-> plan;",
                 "halt --> __end__;"):
        assert edge in out
