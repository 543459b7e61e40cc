"""Synthesis: the runtime graph writes one trajectory row per question, resumably, with its run record."""

import json

from agents.base import PlanDecision
from graph import AgentGroup, GroupContext
from tasks import get_task
from tests.support.builders import ROWS, hotpot_toolbox
from training.synthesize import meta_path, synthesize

TASK = get_task("hotpotqa")
QUESTIONS = [{**ROWS[i % 2], "id": f"si-{i}"} for i in range(5)]


def group(calls):
    def tool(view, thought, action):
        calls.append(view.question)
        return "Fredville"
    return AgentGroup(GroupContext(plan=lambda v: PlanDecision("t", "Finish"), tool=tool, toolbox=hotpot_toolbox()))


def test_rows_carry_reward_and_transcript_and_rerun_resumes(tmp_path):
    out = tmp_path / "traj.jsonl"
    calls: list[str] = []
    synthesize(group(calls), TASK, QUESTIONS[:3], out, progress=False, run_info={"model": "m"})
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["reward"] for r in rows] == [1.0, 0.0, 1.0] and all(r["transcript"] for r in rows)
    meta = json.loads(meta_path(out).read_text())
    assert meta["model"] == "m" and meta["tools"][0]["name"] == "Retrieve" and meta["prompts_version"]

    summary = synthesize(group(calls), TASK, QUESTIONS, out, concurrency=2, progress=False)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == [q["id"] for q in QUESTIONS] and len(calls) == 5  # 3 + only the 2 new ones
    assert summary["n"] == 5 and "resumed" in json.loads(meta_path(out).read_text())
    assert (tmp_path / "traj.summary.json").exists()


def test_several_samples_per_question_are_rows_of_their_own_and_resume(tmp_path):
    out = tmp_path / "traj.jsonl"
    calls: list[str] = []
    synthesize(group(calls), TASK, QUESTIONS[:2], out, progress=False, samples=3)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["si-0#0", "si-0#1", "si-0#2", "si-1#0", "si-1#1", "si-1#2"]
    assert {(r["question_id"], r["sample"]) for r in rows} == {(f"si-{i}", k) for i in range(2) for k in range(3)}
    from training.differentiate import differentiate
    data = differentiate(rows, hotpot_toolbox().specs)  # the scripted group takes the same steps every time
    assert data.kept == 1 and dict(data.dropped) == {"duplicate trajectory": 2, "reward below threshold": 3}
    assert json.loads(meta_path(out).read_text())["samples"] == 3 and len(calls) == 6
    synthesize(group(calls), TASK, QUESTIONS[:3], out, progress=False, samples=3)
    assert len(calls) == 9  # only the new question's three samples ran


def test_a_resume_with_another_sample_count_is_refused_naming_the_record(tmp_path):
    import pytest

    from core.errors import ConfigError
    out = tmp_path / "traj.jsonl"
    synthesize(group([]), TASK, QUESTIONS[:1], out, progress=False)
    with pytest.raises(ConfigError, match=r"traj\.meta\.json: these trajectories were synthesized with 1 sample"):
        synthesize(group([]), TASK, QUESTIONS[:1], out, progress=False, samples=2)


def test_sample_rows_and_what_the_progress_bar_counts_as_kept():
    from training.synthesize import is_kept, sample_rows
    assert sample_rows(QUESTIONS[:2], 1) == QUESTIONS[:2]  # one attempt: the paper's rows, ids unchanged
    two = sample_rows(QUESTIONS[:1], 2)
    assert [(r["id"], r["question_id"], r["sample"]) for r in two] == [("si-0#0", "si-0", 0), ("si-0#1", "si-0", 1)]
    assert is_kept({"reward": 1.0, "halted": False, "error": None})
    assert not is_kept({"reward": 1.0, "halted": True}) and not is_kept({"reward": 0.5})
    assert not is_kept({"reward": 1.0, "error": "boom"})
