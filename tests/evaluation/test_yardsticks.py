"""Intervals and chance levels added to summaries (evaluation/yardsticks.py), through `evaluate`."""

from __future__ import annotations

import json

from evaluation.runner import EvalOptions, evaluate
from evaluation.statistics import bootstrap_interval
from tasks import get_task
from tests.support.builders import build_on_model, hotpot_toolbox

SQA = get_task("scienceqa")
ROWS = [
    {"id": "a", "question": "Q1", "choices": ["x", "y"], "answer": "A", "metadata": {"grade": 2}},
    {"id": "b", "question": "Q2", "choices": ["x", "y", "z"], "answer": "B", "metadata": {"grade": 3}},
    {"id": "c", "question": "Q3", "choices": ["x", "y", "z", "w"], "answer": "A", "metadata": {"grade": 6}},
    {"id": "d", "question": "Q4", "choices": ["x", "y"], "answer": "B", "metadata": {"grade": 7}},
]


def test_summary_carries_intervals_and_the_chance_level_of_its_questions(tmp_path):
    agent = build_on_model("majority", SQA, hotpot_toolbox(), None, train_rows=[{"answer": "A"}])
    summary = evaluate(agent, SQA, ROWS, EvalOptions(tmp_path, progress=False))
    assert summary["correct"] == 50.0  # "A" is right on a and c
    assert summary["intervals"]["correct"] == list(bootstrap_interval([1, 0, 1, 0]))
    # uniform guess: mean of 1/2, 1/3, 1/4, 1/2; first option: a and c
    assert summary["chance"] == {"uniform": round(100 * (1 / 2 + 1 / 3 + 1 / 4 + 1 / 2) / 4, 2), "first_option": 50.0}
    lower = summary["groups"]["grade1-4"]
    assert lower["chance"] == {"uniform": round(100 * (1 / 2 + 1 / 3) / 2, 2), "first_option": 50.0}
    assert lower["intervals"]["correct"] == list(bootstrap_interval([1, 0]))
    assert json.loads((tmp_path / "summary.json").read_text()) == summary  # JSON holds the same


def test_open_answer_tasks_have_intervals_but_no_chance(tmp_path):
    hotpot = get_task("hotpotqa")
    rows = [{"id": "h1", "question": "Is it?", "answer": "yes", "level": "easy"},
            {"id": "h2", "question": "Who?", "answer": "Ann", "level": "easy"}]
    summary = evaluate(build_on_model("majority", hotpot, hotpot_toolbox(), None), hotpot, rows,
                       EvalOptions(tmp_path, progress=False))
    assert "chance" not in summary and summary["intervals"]["f1"] == list(bootstrap_interval([1.0, 0.0]))
