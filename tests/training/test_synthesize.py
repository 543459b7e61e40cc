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
