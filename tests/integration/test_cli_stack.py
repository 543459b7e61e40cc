"""End to end through real HTTP: the CLI against a FastChat stack serving a tiny random Llama."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.builders import ROWS

pytestmark = pytest.mark.integration

SCIENCE_ROW = {"id": "s1", "question": "What is the capital of Delaware?\nOptions: (A) Harrisburg (B) Dover",
               "choices": ["Harrisburg", "Dover"], "answer": "B", "caption": "A map of the United States.",
               "ocr": "[([[1, 2], [3, 4]], 'Dover', 0.9)]", "metadata": {"grade": 4}}


def autoact(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoact", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).resolve().parents[2])


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_limit_2_writes_rows_and_summary_then_resumes(tiny_stack, tmp_path):
    rows = [*ROWS, {**ROWS[0], "id": "q3"}]
    data = write_rows(tmp_path / "hotpot.jsonl", rows)
    out = tmp_path / "out"
    args = ["eval", "--task", "hotpotqa", "--data", str(data), "--limit", "2", "--out", str(out),
            "--base-url", tiny_stack.base_url, "--max-steps", "3", "--no-progress", "--concurrency", "1"]
    first = autoact(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in results] == ["q1", "q2"]
    for r in results:
        assert r["error"] is None and 1 <= r["steps"] <= 3 and r["transcript"]
        assert all(s["action"] for s in r["transcript"])  # scored choices always name an action
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 2 and set(summary["groups"]) == {"easy", "hard"}
    assert summary["settings"]["max_steps"] == 3 and "scored_arguments" not in summary["settings"]
    assert "overall" in first.stdout
    # the server's token counts, per role and episode: every step asked the plan agent for a thought
    for r in results:
        assert r["tokens"]["plan"]["requests"] >= r["steps"] and r["tokens"]["plan"]["prompt_tokens"] > 0
        assert r["tokens"]["plan"]["completion_tokens"] > 0
    assert summary["diagnostics"]["tokens_per_episode"]["plan"]["prompt_tokens"] > 0
    assert summary["diagnostics"]["valid_action_rate"] == 100.0
    again = autoact(*args)
    assert again.returncode == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 2  # resumed: nothing redone


def test_run_prints_trace_and_writes_jsonl(tiny_stack, tmp_path):
    data = write_rows(tmp_path / "sci.jsonl", [SCIENCE_ROW])
    trace = tmp_path / "trace.jsonl"
    done = autoact("run", "--task", "scienceqa", "--data", str(data), "--id", "s1", "--trace",
                   "--trace-file", str(trace), "--base-url", tiny_stack.base_url, "--max-steps", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events[0]["node"] == "plan" and {"thought", "action"} <= set(events[0])
    assert "step 1 plan" in done.stdout and "Answer:" in done.stdout


def test_scored_arguments_come_from_the_episode_through_a_real_server(tiny_stack, tmp_path):
    """A random tiny model writes junk; with --scored-arguments every Retrieve and Finish argument is a name
    or number of the question or of an earlier observation (or yes/no)."""
    data = write_rows(tmp_path / "hotpot.jsonl", ROWS)
    trace = tmp_path / "trace.jsonl"
    done = autoact("run", "--task", "hotpotqa", "--data", str(data), "--id", "q1", "--scored-arguments",
                   "--trace-file", str(trace), "--base-url", tiny_stack.base_url, "--max-steps", "6")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [e for e in map(json.loads, trace.read_text().splitlines()) if e["node"] == "execute"]
    chosen = [s for s in steps if s.get("action") in ("Retrieve", "Finish")]
    assert chosen, steps
    seen = ROWS[0]["question"]
    for step in steps:
        if step.get("action") in ("Retrieve", "Finish"):
            arg = step["argument"]
            assert arg and (arg in seen or arg in ("yes", "no")), (arg, seen)
        seen += " " + (step.get("observation") or "")


def test_unreachable_server_gives_a_clear_error(tmp_path):
    data = write_rows(tmp_path / "hotpot.jsonl", ROWS)
    done = autoact("eval", "--task", "hotpotqa", "--data", str(data), "--out", str(tmp_path / "o"),
                   "--base-url", "http://127.0.0.1:9/v1", "--no-progress")
    assert done.returncode == 2 and "http://127.0.0.1:9/v1" in done.stdout and "autoact serve" in done.stdout


def test_bad_data_line_is_named(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps(ROWS[0]) + "\n{oops\n", encoding="utf-8")
    done = autoact("eval", "--task", "hotpotqa", "--data", str(data), "--out", str(tmp_path / "o"),
                   "--base-url", "http://127.0.0.1:9/v1")
    assert done.returncode == 2 and f"{data}:2: not valid JSON" in done.stdout.replace("\n", "")
