"""The evaluation loop: rows, summary, failures recorded per question, resume without duplicates."""

import json

from agents.plan import ModelPlanAgent
from agents.reflect import ModelReflectAgent
from agents.tool import ModelToolAgent
from evaluation.results import ResultsFile
from evaluation.runner import EvalOptions, evaluate
from graph import AgentGroup, GroupContext
from tasks import get_task
from tests.support.builders import ROWS, hotpot_toolbox
from tests.support.fakes import ScriptedPlan

TASK = get_task("hotpotqa")
MANY = [{**ROWS[i % 2], "id": f"q{i}"} for i in range(6)]


def answering_group():
    """Every episode: Finish[Fredville] with no reflection."""
    def plan(view):
        return ScriptedPlan([("answer", "Finish")])(view)
    return AgentGroup(GroupContext(plan=plan, tool=lambda v, t, a: "Fredville", toolbox=hotpot_toolbox()))


def test_rows_and_summary(tmp_path):
    summary = evaluate(answering_group(), TASK, ROWS, EvalOptions(tmp_path, progress=False))
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2"]
    first = rows[0]
    for key in ("id", "question", "gold", "prediction", "em", "f1", "steps", "halted", "error", "transcript"):
        assert key in first
    assert first["em"] == 1.0 and rows[1]["em"] == 0.0 and first["transcript"][0]["action"] == "Finish"
    assert summary["n"] == 2 and summary["em"] == 50.0 and summary["groups"]["easy"]["em"] == 100.0
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_endpoint_failure_is_recorded_and_batch_continues(tmp_path):
    from core.errors import EndpointError
    calls = {"n": 0}

    def flaky_plan(view):
        calls["n"] += 1
        if calls["n"] == 2:
            raise EndpointError("generation failed at http://x/v1 for model 'm'")
        return ScriptedPlan([("a", "Finish")])(view)
    group = AgentGroup(GroupContext(plan=flaky_plan, tool=lambda v, t, a: "Fredville", toolbox=hotpot_toolbox()))
    summary = evaluate(group, TASK, MANY[:3], EvalOptions(tmp_path, progress=False))
    rows = ResultsFile(tmp_path / "results.jsonl").rows
    assert len(rows) == 3 and "http://x/v1" in rows[1]["error"] and rows[2]["error"] is None
    assert summary["errors"] == 1


def test_killed_run_resumes_without_duplicates_or_loss(tmp_path):
    calls = {"n": 0}

    def tool(view, thought, action):
        calls["n"] += 1
        return "Fredville"
    group = AgentGroup(GroupContext(plan=lambda v: ScriptedPlan([("a", "Finish")])(v), tool=tool,
                                    toolbox=hotpot_toolbox()))

    def kill_after_three(row):  # the process is killed right after the third row is written
        if calls["n"] >= 3:
            raise KeyboardInterrupt
    try:
        evaluate(group, TASK, MANY, EvalOptions(tmp_path, progress=False), on_row=kill_after_three)
    except KeyboardInterrupt:
        pass
    path = tmp_path / "results.jsonl"
    assert len(path.read_text().splitlines()) == 3
    with path.open("a") as f:
        f.write('{"id": "q3", "pred')  # a torn write from the moment of the kill
    summary = evaluate(group, TASK, MANY, EvalOptions(tmp_path, progress=False))
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert sorted(ids) == sorted(r["id"] for r in MANY) and len(ids) == len(set(ids))
    assert calls["n"] == 6  # finished questions were not answered again
    assert summary["n"] == 6


def test_concurrent_episodes_write_whole_rows_once(tmp_path):
    summary = evaluate(answering_group(), TASK, MANY, EvalOptions(tmp_path, concurrency=4, progress=False))
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 6 and len({json.loads(line)["id"] for line in lines}) == 6
    assert summary["n"] == 6


def test_limit_counts_only_first_rows(tmp_path):
    summary = evaluate(answering_group(), TASK, MANY, EvalOptions(tmp_path, limit=2, progress=False))
    assert summary["n"] == 2


def test_model_backed_group_runs_in_eval(tmp_path):
    from tests.support.fakes import ScriptedModel
    model = ScriptedModel(generations=["t", "Fredville", "t"] * 2, prefer=["Finish", "right"] * 2)
    ctx = GroupContext(plan=ModelPlanAgent(model, "meta"), tool=ModelToolAgent(model, "meta"),
                       reflect=ModelReflectAgent(model, "meta"), toolbox=hotpot_toolbox(), task=TASK)
    summary = evaluate(AgentGroup(ctx), TASK, ROWS, EvalOptions(tmp_path, progress=False))
    assert summary["n"] == 2 and summary["em"] == 50.0
