"""Self-improvement rounds (autoact/rounds.py): what each round is given, the table, regression, the best round.

The stages themselves are the pipeline's (tested end to end in test_pipeline_e2e.py); here
each round's pipeline run is replaced by one that writes the files a real round writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoact import rounds as rounds_module
from autoact.presets import PipelineConfig
from autoact.rounds import RoundsConfig, run_rounds
from core.errors import ConfigError

SCORES = {1: 40.0, 2: 55.0, 3: 30.0, 4: 60.0}  # round 3 regresses


class Seen(list):
    """The configs the fake pipeline was given; rounds in `barren` keep no trajectory (no adapters, no eval)."""

    barren: set[int] = set()


@pytest.fixture
def fake_rounds(monkeypatch):
    seen = Seen()

    def fake_pipeline(config: PipelineConfig, on_stage=None):
        seen.append(config)
        work = Path(config.workdir)
        number = int(work.name.split("-")[1])
        (work / "data").mkdir(parents=True, exist_ok=True)
        (work / "questions.jsonl").write_text(json.dumps({"id": f"q{number}", "question": f"Q{number}?"}) + "\n")
        if number in seen.barren:
            (work / "data" / "stats.json").write_text(json.dumps({"kept": 0, "roles": {}}))
            return {"stages": [{"name": "synthesize", "counts": {"trajectories": 8, "correct": 0.0}}]}
        (work / "data" / "stats.json").write_text(json.dumps(
            {"kept": number, "roles": {"plan": {"pairs": 2 * number}, "tool": {"pairs": number},
                                       "reflect": {"pairs": 0}}}))
        for role in ("plan", "tool"):
            (work / "adapters" / role).mkdir(parents=True, exist_ok=True)
            (work / "adapters" / role / "training_args.json").write_text("{}")
        (work / "eval" / "autoact").mkdir(parents=True, exist_ok=True)
        (work / "eval" / "autoact" / "summary.json").write_text(json.dumps(
            {"task": "scienceqa", "n": 20, "correct": SCORES[number],
             "diagnostics": {"valid_action_rate": 100.0, "finish_rate": 90.0 + number}}))
        if config.zero_shot_eval:
            (work / "eval" / "zero-shot").mkdir(parents=True, exist_ok=True)
            (work / "eval" / "zero-shot" / "summary.json").write_text(json.dumps({"correct": 25.0}))
        return {"stages": [{"name": "synthesize", "counts": {"trajectories": 8, "correct": 10.0 * number}}]}

    monkeypatch.setattr(rounds_module, "run_pipeline", fake_pipeline)
    return seen


def test_each_round_after_the_first_uses_the_previous_group_and_new_questions(fake_rounds, tmp_path):
    config = PipelineConfig(task="scienceqa", workdir=tmp_path)
    data = run_rounds(config, RoundsConfig(rounds=3))
    first, second, third = fake_rounds
    assert first.workdir == tmp_path / "round-1" and first.synth_adapters is None and first.zero_shot_eval
    assert second.synth_adapters == {"plan": tmp_path / "round-1" / "adapters" / "plan",
                                     "tool": tmp_path / "round-1" / "adapters" / "tool"}
    assert not second.zero_shot_eval and second.init_adapters is None
    assert third.avoid_questions == [tmp_path / "round-1" / "questions.jsonl", tmp_path / "round-2" / "questions.jsonl"]
    assert third.extra_training_data == [tmp_path / "round-1" / "data", tmp_path / "round-2" / "data"]
    assert [r["score"] for r in data["table"]] == [40.0, 55.0, 30.0]
    assert [r["regression"] for r in data["table"]] == [False, False, True]
    assert data["table"][1]["kept"] == 2 and data["table"][1]["plan_pairs"] == 4
    assert data["table"][1]["synthesis_success"] == 20.0 and data["table"][2]["finish_rate"] == 93.0
    assert data["zero_shot"] == 25.0 and data["best_round"] == 2 and data["stopped"] == ""
    assert data["best_adapters"] == str(tmp_path / "round-2" / "adapters")
    text = (tmp_path / "rounds.md").read_text()
    assert "| 2 | round 1's group | 8 | 20.0 | 2 | 4 | 2 | 0 | 100.0 | 92.0 | 55.0 | False |" in text
    assert (tmp_path / "rounds.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((tmp_path / "rounds.json").read_text())["best_round"] == 2


def test_stop_on_regression_ends_the_loop_and_keeps_the_best_round(fake_rounds, tmp_path):
    config = PipelineConfig(task="scienceqa", workdir=tmp_path)
    data = run_rounds(config, RoundsConfig(rounds=4, stop_on_regression=True, continue_adapters=True))
    assert len(fake_rounds) == 3 and "round 3 scored 30.0" in data["stopped"]
    assert data["best_round"] == 2
    third = fake_rounds[2]
    assert third.init_adapters == tmp_path / "round-2" / "adapters" and third.extra_training_data == []


@pytest.mark.parametrize("continue_adapters", [False, True])
def test_rounds_without_a_group_synthesize_again_with_the_meta_agent(fake_rounds, tmp_path, continue_adapters):
    fake_rounds.barren = {1, 2}  # rounds 1 and 2 keep nothing; round 3 trains the first group
    config = PipelineConfig(task="scienceqa", workdir=tmp_path)
    data = run_rounds(config, RoundsConfig(rounds=4, continue_adapters=continue_adapters))
    assert len(fake_rounds) == 4 and data["stopped"] == ""
    second, third, fourth = fake_rounds[1:]
    assert second.synth_adapters is None and third.synth_adapters is None
    assert third.avoid_questions == [tmp_path / "round-1" / "questions.jsonl", tmp_path / "round-2" / "questions.jsonl"]
    assert third.extra_training_data == [tmp_path / "round-1" / "data", tmp_path / "round-2" / "data"]
    assert third.init_adapters is None
    assert fourth.synth_adapters == {"plan": tmp_path / "round-3" / "adapters" / "plan",
                                     "tool": tmp_path / "round-3" / "adapters" / "tool"}
    if continue_adapters:  # round 4 continues round 3's adapters; rounds 1-3's data is already in them
        assert fourth.init_adapters == tmp_path / "round-3" / "adapters" and fourth.extra_training_data == []
    else:
        assert fourth.init_adapters is None and len(fourth.extra_training_data) == 3
    assert [r["synthesized_by"] for r in data["table"]] == ["Meta-Agent", "Meta-Agent", "Meta-Agent",
                                                             "round 3's group"]
    assert [r["kept"] for r in data["table"]] == [0, 0, 3, 4] and data["best_round"] == 4
    assert "round 3's group" in (tmp_path / "rounds.md").read_text()


def test_one_round_is_the_plain_pipeline_and_zero_rounds_are_refused(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(rounds_module, "run_pipeline", lambda config, on_stage=None: calls.append(config) or {})
    config = PipelineConfig(task="scienceqa", workdir=tmp_path)
    run_rounds(config, RoundsConfig(rounds=1))
    assert calls == [config] and not (tmp_path / "round-1").exists()
    with pytest.raises(ConfigError, match="--rounds"):
        run_rounds(config, RoundsConfig(rounds=0))
