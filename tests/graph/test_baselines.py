"""Reference answerers (graph/designs/baselines.py): constant and direct answers, same result format."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError
from evaluation.runner import EvalOptions, evaluate
from graph.designs.baselines import majority_answer
from tasks import get_task
from tests.support.builders import build_on_model, hotpot_toolbox
from tests.support.fakes import ScriptedModel

SQA = get_task("scienceqa")
HOTPOT = get_task("hotpotqa")
SQA_ROWS = [
    {"id": "s1", "question": "Which is a mammal?", "choices": ["shark", "dolphin"], "answer": "B",
     "metadata": {"grade": 2}},
    {"id": "s2", "question": "Which is warm?", "choices": ["ice", "fire", "snow"], "answer": "B",
     "metadata": {"grade": 3}},
    {"id": "s3", "question": "Which is a plant?", "choices": ["fern", "cat"], "answer": "A",
     "metadata": {"grade": 7}},
]


def test_majority_counts_answer_letters_of_the_training_file():
    assert majority_answer(SQA, SQA_ROWS) == "B"
    assert majority_answer(SQA, [{"answer": "C"}, {"answer": "A"}]) == "A"  # a tie goes to the first letter
    assert majority_answer(HOTPOT, None) == "yes"
    with pytest.raises(ConfigError, match="--baseline-train"):
        majority_answer(SQA, None)


def test_majority_baseline_evaluates_like_a_group(tmp_path):
    summary = evaluate(build_on_model("majority", SQA, hotpot_toolbox(), None, train_rows=SQA_ROWS), SQA, SQA_ROWS,
                       EvalOptions(tmp_path, progress=False))
    assert summary["correct"] == round(100 * 2 / 3, 2) and summary["groups"]["grade1-4"]["correct"] == 100.0
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["prediction"] for r in rows] == ["B", "B", "B"] and all(r["steps"] == 1 for r in rows)
    assert summary["diagnostics"]["finish_rate"] == 100.0 and summary["diagnostics"]["valid_action_rate"] == 100.0


def test_direct_baseline_scores_options_or_generates(tmp_path):
    model = ScriptedModel(prefer=["dolphin", "ice", "fern"])
    summary = evaluate(build_on_model("direct", SQA, hotpot_toolbox(), model), SQA, SQA_ROWS, EvalOptions(tmp_path, progress=False))
    assert summary["correct"] == round(100 * 2 / 3, 2)
    assert model.prompts[0].endswith("Question: Which is a mammal?\nAnswer:")
    assert "dolphin" not in model.prompts[0].split("Question:")[0]  # no option text leaks into the instruction
    model = ScriptedModel(generations=[" Fredville\n"])
    row = {"id": "h1", "question": "What is the capital of Freedonia?", "answer": "Fredville", "level": "easy"}
    summary = evaluate(build_on_model("direct", HOTPOT, hotpot_toolbox(), model), HOTPOT, [row], EvalOptions(tmp_path / "h", progress=False))
    assert summary["em"] == 100.0


def test_unknown_or_incomplete_baselines_are_refused():
    with pytest.raises(ConfigError, match="unknown design 'oracle'"):
        build_on_model("oracle", SQA, hotpot_toolbox(), None)
    with pytest.raises(ConfigError, match="needs a model"):
        build_on_model("direct", SQA, hotpot_toolbox(), None)


def test_eval_cli_runs_the_majority_baseline_without_a_server(tmp_path):
    from autoact.cli import main
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in SQA_ROWS))
    assert main(["eval", "--task", "scienceqa", "--data", str(data), "--baseline", "majority",
                 "--baseline-train", str(data), "--out", str(tmp_path / "out"), "--no-progress",
                 "--base-url", "http://127.0.0.1:9/v1"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["correct"] == round(100 * 2 / 3, 2) and summary["n"] == 3


def test_chance_draws_options_uniformly_and_the_same_for_the_same_question(tmp_path):
    from collections import Counter

    from graph.designs.baselines import chance_answerer
    answer = chance_answerer(SQA)
    inputs = {"choices": ["a", "b", "c", "d"]}
    draws = Counter(answer(f"question {i}", inputs) for i in range(4000))
    assert set(draws) == {"A. a", "B. b", "C. c", "D. d"}
    assert all(abs(count / 4000 - 0.25) < 0.03 for count in draws.values())  # uniform within sampling noise
    assert answer("question 7", inputs) == answer("question 7", inputs)
    rows = [{**r, "id": f"{r['id']}-{i}", "question": f"{r['question']} ({i})"} for i in range(40) for r in SQA_ROWS]
    summary = evaluate(build_on_model("chance", SQA, hotpot_toolbox(), None), SQA, rows,
                       EvalOptions(tmp_path, progress=False))
    lo, hi = summary["intervals"]["correct"]
    assert lo <= summary["chance"]["uniform"] <= hi  # it scores the chance level the summary states


def test_chance_is_refused_for_open_answers():
    with pytest.raises(ConfigError, match="closed answer options; hotpotqa answers are open"):
        build_on_model("chance", HOTPOT, hotpot_toolbox(), None)
