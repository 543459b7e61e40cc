"""Filtering and differentiation: pairs of a hand-written trajectory, and prompts equal to the runtime's."""

from __future__ import annotations

import json

import pytest

from agents.plan import ModelPlanAgent
from agents.reflect import ModelReflectAgent
from agents.tool import ModelToolAgent
from graph import AgentGroup, GroupContext
from tasks import get_task
from tests.support.builders import ROWS, TRAJECTORY_STEPS, hotpot_toolbox
from tests.support.fakes import ScriptedModel
from tools import default_tool_specs
from training.dataset import HELD_OUT_FILE, write_dataset
from training.differentiate import differentiate, hold_out_verdicts, negative_pair, trajectory_pairs

TOOLS = default_tool_specs("hotpotqa")
Q = ROWS[0]["question"]
STEPS = TRAJECTORY_STEPS


def test_pairs_of_a_hand_written_trajectory():
    pairs = trajectory_pairs(Q, STEPS, TOOLS, "q1")
    assert [p["completion"] for p in pairs["plan"]] == [
        " Find the country page.\n", " Retrieve", " The capital is Fredville.\n", " Finish"]
    assert [p["completion"] for p in pairs["tool"]] == ["Freedonia]", "Fredville]"]
    assert [p["completion"] for p in pairs["reflect"]] == [" The page says so.\n", "right]"]
    assert pairs["plan"][0]["prompt"].endswith(f"Question: {Q}\nThought 1:")
    assert pairs["plan"][3]["prompt"].endswith("Thought 2: The capital is Fredville.\nAction 2:")
    assert pairs["tool"][1]["prompt"].endswith("Action 2: Finish[")
    assert "Observation 1: Freedonia is a small country." in pairs["tool"][1]["prompt"]
    assert pairs["reflect"][1]["prompt"].endswith("Thought 3: The page says so.\nAction 3: Reflect[")
    assert "planner" in pairs["plan"][0]["prompt"] and "reviewer" in pairs["reflect"][0]["prompt"]


def run_group(answer: str) -> tuple[GroupContext, dict, ScriptedModel, ScriptedModel, ScriptedModel]:
    """The group run on Q by scripted models: Retrieve, Finish[answer], Reflect[right]."""
    plan = ScriptedModel(generations=[s["thought"] for s in STEPS[:2]], prefer=["Retrieve", "Finish"], name="plan")
    tool = ScriptedModel(generations=["Freedonia", answer], name="tool")
    reflect = ScriptedModel(generations=["The page says so."], prefer=["right"], name="reflect")
    ctx = GroupContext(plan=ModelPlanAgent(plan), tool=ModelToolAgent(tool), reflect=ModelReflectAgent(reflect),
                       toolbox=hotpot_toolbox(), task=get_task("hotpotqa"))
    return ctx, AgentGroup(ctx).invoke(Q), plan, tool, reflect


def test_pair_prompts_equal_what_the_runtime_sends_each_role():
    ctx, state, plan, tool, reflect = run_group("Fredville")
    pairs = trajectory_pairs(Q, state["steps"], ctx.toolbox.specs)
    assert [p["prompt"] for p in pairs["plan"]] == plan.prompts
    assert [p["prompt"] for p in pairs["tool"]] == tool.prompts
    assert [p["prompt"] for p in pairs["reflect"]] == reflect.prompts


def trajectory(i, reward=1.0, **extra):
    return {"id": f"t{i}", "question": Q, "transcript": STEPS, "reward": reward, "halted": False, "error": None,
            **extra}


def test_filtering_keeps_only_exactly_right_finished_trajectories(tmp_path):
    rows = [trajectory(1), trajectory(2, reward=0.5), trajectory(3, halted=True), trajectory(4, error="boom"),
            {**trajectory(5), "transcript": []}, trajectory(6), trajectory(7)]
    data = differentiate(rows, TOOLS, min_reward=1.0, max_trajectories=2, reflect_negatives=False)
    assert data.kept == 2
    assert dict(data.dropped) == {"reward below threshold": 1, "halted": 1, "error": 1, "empty transcript": 1,
                                  "over --max-trajectories": 1}
    stats = write_dataset(tmp_path, data, len(rows), {"model": "m"}, lambda text: len(text.split()))
    assert stats["roles"]["plan"]["pairs"] == 8 and stats["roles"]["tool"]["pairs"] == 4
    assert stats["roles"]["reflect"]["pairs"] == 4 and stats["success_rate"] == round(2 / 7, 4)
    lines = (tmp_path / "tool.jsonl").read_text().splitlines()
    assert len(lines) == 4 and set(json.loads(lines[0])) >= {"prompt", "completion", "source", "step"}
    assert json.loads((tmp_path / "stats.json").read_text())["source"] == {"model": "m"}


def test_wrong_finishes_teach_the_reflect_agent_to_say_wrong_balanced(tmp_path):
    """A trajectory whose final answer was wrong gives one Reflect[wrong] pair: the reflect step after its last
    Finish, prompted as the reflect agent saw it; no plan, tool or thought pair; at most one per right]."""
    wrong = [*STEPS[:1], {**STEPS[1], "argument": "Oldtown"}, STEPS[2]]
    rows = [trajectory(1), trajectory(2, reward=0.0, transcript=wrong, question_id="q2"),
            trajectory(3, reward=0.0, transcript=wrong, question_id="q2"),
            {**trajectory(4, reward=0.0), "id": "t4", "transcript": [*wrong[:1], {**wrong[1], "argument": "Bigtown"},
                                                                     wrong[2]]},
            trajectory(5, reward=0.0, halted=True, transcript=wrong), trajectory(6, reward=0.0, transcript=STEPS[:2])]
    data = differentiate(rows, TOOLS)
    assert data.kept == 1 and len(data.pairs["plan"]) == 4 and len(data.pairs["tool"]) == 2
    verdicts = [p for p in data.pairs["reflect"] if p["kind"] == "verdict"]
    assert [p["completion"] for p in verdicts] == ["right]", "wrong]"]  # capped at one per right]
    negative = verdicts[1]
    assert negative["negative"] is True and negative["source"] == "t2" and negative["step"] == 3
    assert negative["prompt"].endswith("Thought 3: The page says so.\nAction 3: Reflect[")
    assert "Action 2: Finish[Oldtown]" in negative["prompt"]
    # t2 and t3 are two samples of one question taking the same steps: one negative; t4 is another; the halted
    # row and the one without a reflect step after its Finish give none
    assert data.reflect == {"right": 1, "wrong": 1, "negatives_found": 2, "negatives_used": 1}
    assert differentiate(rows, TOOLS, negative_ratio=2.0).reflect["negatives_used"] == 2
    assert differentiate(rows, TOOLS, reflect_negatives=False).reflect == {
        "right": 1, "wrong": 0, "negatives_found": 0, "negatives_used": 0}
    assert differentiate(rows, TOOLS, unfiltered=True).reflect["negatives_found"] == 0
    stats = write_dataset(tmp_path, data, len(rows), {}, lambda text: len(text.split()))
    assert stats["reflect_verdicts"] == data.reflect and stats["roles"]["reflect"]["pairs"] == 3


def test_negative_prompt_equals_what_the_runtime_sends_the_reflect_agent():
    ctx, state, _, _, reflect = run_group("Oldtown")
    pair = negative_pair(Q, state["steps"], ctx.toolbox.specs)
    assert pair is not None and pair["prompt"] == reflect.prompts[-1] and pair["completion"] == "wrong]"


def test_unfiltered_ablation_keeps_wrong_and_halted_but_not_failed_runs():
    rows = [trajectory(1), trajectory(2, reward=0.0), trajectory(3, halted=True), trajectory(4, error="boom"),
            {**trajectory(5), "transcript": []}]
    data = differentiate(rows, TOOLS, unfiltered=True)
    assert data.kept == 3 and dict(data.dropped) == {"error": 1, "empty transcript": 1}


def test_invalid_steps_give_no_pairs():
    bad = [{"node": "plan", "thought": "?", "action": "", "argument": "", "observation": "Invalid action: x"},
           *STEPS]
    pairs = trajectory_pairs(Q, bad, TOOLS)
    assert len(pairs["plan"]) == 4 and pairs["plan"][0]["step"] == 2


def test_inspect_prints_kept_trajectories_with_their_actions(tmp_path, capsys):
    from autoact.cli import main
    path = tmp_path / "t.jsonl"
    rows = [trajectory(1, gold="Fredville"), trajectory(2, reward=0.0)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["inspect", "--trajectories", str(path), "--n", "5"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 of 2 trajectories reach reward 1.0" in out and "t1" in out and "t2" not in out
    assert "Retrieve[Freedonia]" in out and "Reflect[right]" in out  # brackets are not taken for markup


def test_samples_of_one_question_taking_the_same_steps_are_kept_once():
    first = {**trajectory(1), "id": "q#0", "question_id": "q"}
    repeat = {**first, "id": "q#1"}
    other_steps = {**first, "id": "q#2", "transcript": [{**STEPS[0], "argument": "Fredville"}, *STEPS[1:]]}
    other_question = {**first, "id": "r#0", "question_id": "r"}
    data = differentiate([first, repeat, other_steps, other_question], TOOLS)
    assert data.kept == 3 and dict(data.dropped) == {"duplicate trajectory": 1}


def _question_pairs(question_id: str, verdict: str) -> list[dict]:
    return [{"prompt": f"{question_id} t", "completion": " thinking\n", "kind": "thought", "question_id": question_id},
            {"prompt": f"{question_id} v", "completion": verdict, "kind": "verdict", "question_id": question_id}]


def test_held_out_verdicts_are_whole_questions_in_proportion_to_each_verdict():
    pairs = [p for i in range(8) for p in _question_pairs(f"r{i}", "right]")]
    pairs += [p for i in range(8) for p in _question_pairs(f"w{i}", "wrong]")]
    train, held = hold_out_verdicts(pairs, 0.25)
    assert hold_out_verdicts(pairs, 0.25) == (train, held)  # the same split every time
    held_verdicts = [p["completion"] for p in held if p["kind"] == "verdict"]
    assert sorted(held_verdicts) == ["right]", "right]", "wrong]", "wrong]"]
    held_questions = {p["question_id"] for p in held}
    assert len(held) == 8 and held_questions.isdisjoint(p["question_id"] for p in train)  # thoughts go along
    assert sorted(map(json.dumps, train + held)) == sorted(map(json.dumps, pairs))
    # 2 right and 2 wrong pairs: a quarter of either is under one pair, so nothing is held out
    few = pairs[:4] + pairs[16:20]
    assert hold_out_verdicts(few, 0.25) == (few, [])
    with pytest.raises(ValueError, match="between 0 and 1"):
        hold_out_verdicts(pairs, 1.0)


def test_differentiate_holds_out_reflect_pairs_but_keeps_plan_and_tool_pairs(tmp_path):
    wrong = [*STEPS[:1], {**STEPS[1], "argument": "Oldtown"}, STEPS[2]]
    rows = [trajectory(i, question_id=f"q{i}") for i in range(8)]
    rows += [trajectory(10 + i, reward=0.0, transcript=wrong, question_id=f"n{i}") for i in range(8)]
    whole = differentiate(rows, TOOLS)
    data = differentiate(rows, TOOLS, hold_out=0.25)
    assert len(data.pairs["plan"]) == len(whole.pairs["plan"]) == 32 and data.pairs["tool"] == whole.pairs["tool"]
    assert len(data.pairs["reflect"]) + len(data.held_out) == len(whole.pairs["reflect"])
    assert {p["question_id"] for p in data.held_out}.isdisjoint(p["question_id"] for p in data.pairs["reflect"])
    assert (data.reflect["held_out_right"], data.reflect["held_out_wrong"]) == (2, 2)
    stats = write_dataset(tmp_path, data, len(rows), {}, lambda text: 1)
    held = [json.loads(line) for line in (tmp_path / HELD_OUT_FILE).read_text().splitlines()]
    assert held == data.held_out and stats["held_out_pairs"] == len(held)
    write_dataset(tmp_path, whole, len(rows), {}, lambda text: 1)  # written again without: no stale held-out file
    assert not (tmp_path / HELD_OUT_FILE).exists()
