"""Shared stages (autoact/stages.py): role files, differentiating a trajectories file, training each role."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoact import stages
from autoact.stages import differentiate_file, role_files, train_roles
from core.roles import ROLES
from core.tokens import ESTIMATE_NAME
from prompts.builder import prompts_version
from tests.support.builders import ROWS, TRAJECTORY_STEPS
from tools import default_tool_specs
from training.lora import TrainConfig, TrainReport

TOOLS = default_tool_specs("hotpotqa")
Q = ROWS[0]["question"]
STEPS = TRAJECTORY_STEPS


def write_pairs(path: Path, text: str = '{"prompt": "p", "completion": "c"}\n') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_role_files_skip_missing_and_blank_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    plan_a = write_pairs(a / "plan.jsonl")
    write_pairs(a / "tool.jsonl", " \n\t\n")  # whitespace only: no pairs
    plan_b = write_pairs(b / "plan.jsonl")
    (b / "tool.jsonl").mkdir()  # a directory is not a pair file
    assert role_files("plan", [a, b]) == [plan_a, plan_b]
    assert role_files("tool", [a, b]) == []
    assert role_files("reflect", [a, tmp_path / "missing"]) == []


def test_role_files_all_gathers_every_role_per_directory_in_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    files = [write_pairs(a / "reflect.jsonl"), write_pairs(a / "plan.jsonl"), write_pairs(b / "tool.jsonl"),
             write_pairs(b / "plan.jsonl")]
    assert role_files("all", [a, b]) == [a / "plan.jsonl", a / "reflect.jsonl", b / "plan.jsonl", b / "tool.jsonl"]
    assert set(role_files("all", [a, b])) == set(files)


def test_differentiate_file_writes_role_files_and_stats(tmp_path):
    trajectories = tmp_path / "trajectories.jsonl"
    rows = [{"id": f"t{i}", "question": Q, "transcript": STEPS, "reward": reward, "halted": False, "error": None}
            for i, reward in ((1, 1.0), (2, 0.0), (3, 1.0))]
    trajectories.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "data"
    stats = differentiate_file(trajectories, out, TOOLS, min_reward=1.0, max_trajectories=5,
                               source={"model": "tiny"})
    for role in ROLES:
        assert (out / f"{role}.jsonl").is_file()
    assert len((out / "plan.jsonl").read_text().splitlines()) == 8  # 4 plan pairs per kept trajectory
    assert len((out / "tool.jsonl").read_text().splitlines()) == 4
    assert len((out / "reflect.jsonl").read_text().splitlines()) == 5  # and the wrong finish of t2: wrong]
    assert stats["reflect_verdicts"] == {"right": 2, "wrong": 1, "negatives_found": 1, "negatives_used": 1}
    written = json.loads((out / "stats.json").read_text())
    assert written == stats and stats["trajectories"] == 3 and stats["kept"] == 2
    assert stats["source"] == {"trajectories": str(trajectories), "model": "tiny", "prompts_version": prompts_version(),
                               "min_reward": 1.0, "max_trajectories": 5, "unfiltered": False,
                               "reflect_negatives": True, "negative_ratio": 1.0, "hold_out_verdicts": 0.0,
                               "token_counts": ESTIMATE_NAME}


def test_differentiate_file_uses_the_given_counter(tmp_path):
    trajectories = tmp_path / "t.jsonl"
    trajectories.write_text(json.dumps({"id": "t1", "question": Q, "transcript": STEPS, "reward": 1.0}) + "\n")
    stats = differentiate_file(trajectories, tmp_path / "d", TOOLS, max_trajectories=None, count=lambda text: 7,
                               count_name="seven")
    assert stats["source"]["token_counts"] == "seven" and stats["source"]["max_trajectories"] is None
    assert stats["roles"]["tool"]["completion_tokens"] == {"min": 7, "mean": 7, "max": 7}


@pytest.fixture
def recorded(monkeypatch):
    calls: list[dict] = []

    def fake_train(files, out_dir, base, config, **kwargs):
        calls.append({"files": list(files), "out": out_dir, "base": base, "config": config, **kwargs})
        return TrainReport(out_dir=str(out_dir), pairs=len(files))
    monkeypatch.setattr(stages, "train_adapter", fake_train)
    return calls


def test_train_roles_trains_roles_with_pairs_and_maps_others_to_none(tmp_path, recorded):
    data = tmp_path / "data"
    plan_file, reflect_file = write_pairs(data / "plan.jsonl"), write_pairs(data / "reflect.jsonl")
    out, base = tmp_path / "out", tmp_path / "base"
    started: list[tuple] = []

    def on_start(role, files, where):
        started.append((role, files, where, len(recorded)))  # how many trainings ran before this start
    reports = train_roles(["plan", "tool", "reflect"], [data], out, base, TrainConfig(epochs=2.0), resume=True,
                          progress=False, on_start=on_start)
    assert reports["tool"] is None
    assert reports["plan"].out_dir == str(out / "plan") and reports["reflect"].out_dir == str(out / "reflect")
    assert [(c["files"], c["out"], c["base"]) for c in recorded] == [([plan_file], out / "plan", base),
                                                                     ([reflect_file], out / "reflect", base)]
    assert all(c["config"].epochs == 2.0 and c["config"].init_adapter is None for c in recorded)
    assert all(c["resume"] is True and c["overwrite"] is False and c["progress"] is False for c in recorded)
    assert started == [("plan", [plan_file], out / "plan", 0), ("reflect", [reflect_file], out / "reflect", 1)]


def test_train_roles_continues_adapters_found_in_init_from(tmp_path, recorded):
    data = tmp_path / "data"
    for role in ROLES:
        write_pairs(data / f"{role}.jsonl")
    init = tmp_path / "previous"
    (init / "plan").mkdir(parents=True)
    write_pairs(init / "tool")  # a file, not an adapter directory
    config = TrainConfig()
    train_roles(list(ROLES), [data], tmp_path / "out", tmp_path / "base", config, init_from=init)
    assert [c["config"].init_adapter for c in recorded] == [str(init / "plan"), None, None]
    assert config.init_adapter is None  # the caller's config is not changed


def test_train_roles_all_trains_one_adapter_on_every_role(tmp_path, recorded):
    a, b = tmp_path / "a", tmp_path / "b"
    files = [write_pairs(a / "plan.jsonl"), write_pairs(a / "tool.jsonl"), write_pairs(b / "reflect.jsonl")]
    reports = train_roles(["all"], [a, b], tmp_path / "out", tmp_path / "base", TrainConfig())
    assert list(reports) == ["all"] and recorded[0]["files"] == files and recorded[0]["out"] == tmp_path / "out" / "all"


def test_the_differentiate_command_holds_verdicts_out_and_refuses_a_whole_share(tmp_path, capsys):
    from autoact.cli import main
    from tests.training.test_differentiate import trajectory
    from training.dataset import HELD_OUT_FILE

    wrong = [*STEPS[:1], {**STEPS[1], "argument": "Oldtown"}, STEPS[2]]
    rows = [trajectory(i, question_id=f"q{i}") for i in range(8)]
    rows += [trajectory(10 + i, reward=0.0, transcript=wrong, question_id=f"n{i}") for i in range(8)]
    path = tmp_path / "trajectories.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["differentiate", "--trajectories", str(path), "--out", str(tmp_path / "d"), "--task", "hotpotqa",
            "--tokenizer", "none"]
    assert main([*args, "--hold-out-verdicts", "0.25"]) == 0
    assert "held out of training for the threshold fit: 2 right, 2 wrong" in " ".join(capsys.readouterr().out.split())
    assert len((tmp_path / "d" / HELD_OUT_FILE).read_text().splitlines()) == 6  # 2 × (thought, verdict) + 2 wrong]
    with pytest.raises(SystemExit) as stop:
        main([*args, "--hold-out-verdicts", "1"])
    assert stop.value.code == 2 and "must be under 1" in capsys.readouterr().err
