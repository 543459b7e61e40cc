"""The pipeline's run record (run.json): stage status, timing, failures, and settings checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoact.pipeline import run_pipeline
from autoact.presets import PRESETS, PipelineConfig
from autoact.run_record import RunRecord, StageError
from core.errors import ConfigError


def record(tmp_path: Path, **overrides) -> RunRecord:
    config = PipelineConfig(task="scienceqa", workdir=tmp_path, overrides=overrides)
    return RunRecord.open(tmp_path, config, config.preset_values())


def test_stages_are_timed_and_counted(tmp_path):
    rec = record(tmp_path, n_questions=3)
    seen = []
    rec.on_stage = seen.append
    with rec.running("self-instruct") as counts:
        counts["questions"] = 3
    saved = json.loads((tmp_path / "run.json").read_text())
    (stage,) = saved["stages"]
    assert stage["name"] == "self-instruct" and stage["status"] == "done" and stage["counts"] == {"questions": 3}
    assert stage["seconds"] >= 0 and seen == ["self-instruct"] and rec.done("self-instruct")
    assert saved["settings"]["n_questions"] == 3 and saved["settings"]["epochs"] == PRESETS["quick"].epochs
    assert saved["task"] == "scienceqa" and "torch" in saved["versions"] and saved["finished_at"] is None


def test_a_failed_stage_is_recorded_with_its_error(tmp_path):
    rec = record(tmp_path)
    with pytest.raises(RuntimeError):
        with rec.running("train") as counts:
            counts["plan_steps"] = 4
            raise RuntimeError("out of memory")
    (stage,) = json.loads((tmp_path / "run.json").read_text())["stages"]
    assert stage["status"] == "failed" and stage["error"] == "RuntimeError: out of memory"
    assert stage["counts"] == {"plan_steps": 4} and not rec.done("train")
    # the next invocation sees it and a success replaces the failure
    rec = record(tmp_path)
    with rec.running("train"):
        pass
    (stage,) = json.loads((tmp_path / "run.json").read_text())["stages"]
    assert stage["status"] == "done" and stage["error"] is None
    assert len(json.loads((tmp_path / "run.json").read_text())["history"]) == 2


def test_a_stage_cut_off_by_a_kill_is_marked_interrupted_by_the_next_invocation(tmp_path):
    rec = record(tmp_path)
    entry = rec.stage("synthesize")
    entry.update(status="running")  # what a SIGKILL during the stage leaves in run.json
    rec.save()
    from evaluation.report_markdown import render_report
    from evaluation.run_loading import load_run
    assert not load_run(tmp_path).process_gone()  # this test's own process wrote it: still running
    data = json.loads((tmp_path / "run.json").read_text())
    data["history"][-1]["pid"] = 2 ** 22 + 12345  # above Linux's pid_max: no such process
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert load_run(tmp_path).process_gone()
    text = render_report([load_run(tmp_path)], {})
    assert "| synthesize | stopped |" in text and "rerun the pipeline to resume" in text
    record(tmp_path)
    (stage,) = json.loads((tmp_path / "run.json").read_text())["stages"]
    assert stage["status"] == "interrupted" and "killed" in stage["error"]


def test_skipping_keeps_a_stage_done_earlier(tmp_path):
    rec = record(tmp_path)
    with rec.running("serve"):
        pass
    rec.skipped("serve", {}, "nothing to do")
    rec.skipped("select-tools", {"x": 1}, "no server")
    stages = {s["name"]: s for s in json.loads((tmp_path / "run.json").read_text())["stages"]}
    assert stages["serve"]["status"] == "done" and stages["select-tools"]["status"] == "skipped"


def test_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset settings: nope"):
        record(tmp_path, nope=1)
    with pytest.raises(ConfigError, match="--preset"):
        PipelineConfig(task="scienceqa", workdir=tmp_path, preset="huge").preset_values()
    record(tmp_path)
    other = PipelineConfig(task="hotpotqa", workdir=tmp_path)
    with pytest.raises(ConfigError, match="another --workdir"):
        RunRecord.open(tmp_path, other, other.preset_values())
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(ConfigError, match=r"run\.json: not valid JSON"):
        record(tmp_path)


def test_missing_data_is_named_before_anything_starts(tmp_path):
    config = PipelineConfig(task="scienceqa", workdir=tmp_path / "run", data_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"nowhere/scienceqa/seeds\.jsonl: not found"):
        run_pipeline(config)
    assert not (tmp_path / "run" / "run.json").exists()


def test_a_failing_stage_stops_the_run_with_its_name_and_a_resume_hint(tmp_path, tiny_model_dir, monkeypatch):
    from core.errors import ServeError
    from serving.launcher import FastChatStack
    from tests.support.builders import DATA

    def refuse(self):
        raise ServeError("port 8000 is taken")
    monkeypatch.setattr(FastChatStack, "__enter__", refuse)
    config = PipelineConfig(task="scienceqa", workdir=tmp_path / "run", data_dir=DATA, base=str(tiny_model_dir))
    with pytest.raises(StageError, match=r"stage serve failed: port 8000 is taken\. .*run the same command again"):
        run_pipeline(config)
    (stage,) = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]
    assert stage["name"] == "serve" and stage["status"] == "failed" and "port 8000" in stage["error"]


def test_the_weak_model_aids_are_recorded_with_the_run(tmp_path):
    record(tmp_path, scored_arguments=True, answer_at_limit=True)
    settings = json.loads((tmp_path / "run.json").read_text())["settings"]
    assert settings["scored_arguments"] is True and settings["answer_at_limit"] is True
    assert PipelineConfig(task="hotpotqa", workdir=tmp_path).preset_values().scored_arguments is False


def test_a_stage_resumed_in_a_later_sitting_counts_the_time_of_both(tmp_path):
    rec = record(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with rec.running("synthesize"):
            raise KeyboardInterrupt
    entry = rec.stage("synthesize")
    entry["seconds"] = 100.0  # what the first sitting had spent when Ctrl-C came
    rec.save()
    rec = record(tmp_path)
    with rec.running("synthesize"):
        pass
    (stage,) = json.loads((tmp_path / "run.json").read_text())["stages"]
    assert stage["status"] == "done" and stage["sittings"] == 2 and 100.0 <= stage["seconds"] < 110.0
    assert "running_since" not in stage
    from evaluation.report_markdown import render_report
    from evaluation.run_loading import load_run
    assert "time of 2 sittings" in render_report([load_run(tmp_path)], {})


def test_a_killed_sitting_counts_until_the_last_file_it_wrote(tmp_path):
    import os
    import time
    rec = record(tmp_path)
    entry = rec.stage("synthesize")
    since = time.time() - 1000
    entry.update(status="running", running_since=since)  # what a SIGKILL during the stage leaves in run.json
    rec.save()
    rows = tmp_path / "trajectories.jsonl"
    rows.write_text("{}\n")
    os.utime(rows, (since + 60, since + 60))  # its last row was written 60 s into the stage
    (tmp_path / "console.log").write_text("the next sitting's output\n")  # written now, by this process: not counted
    record(tmp_path)
    (stage,) = json.loads((tmp_path / "run.json").read_text())["stages"]
    assert stage["status"] == "interrupted" and stage["seconds"] == pytest.approx(60.0, abs=0.2)
    rec = record(tmp_path)
    with rec.running("synthesize"):
        pass
    (stage,) = json.loads((tmp_path / "run.json").read_text())["stages"]
    assert stage["sittings"] == 2 and 60.0 <= stage["seconds"] < 70.0


def test_a_stage_done_earlier_and_entered_again_keeps_its_time(tmp_path):
    rec = record(tmp_path)
    with rec.running("eval-autoact") as counts:
        counts["n"] = 50
    entry = rec.stage("eval-autoact")
    entry["seconds"] = 738.0  # what the evaluation took in its own sitting
    rec.save()
    rec = record(tmp_path)
    with rec.running("eval-autoact") as counts:  # the next sitting finds every row answered
        counts["n"] = 50
    (stage,) = json.loads((tmp_path / "run.json").read_text())["stages"]
    assert stage["status"] == "done" and stage["sittings"] == 1 and 738.0 <= stage["seconds"] < 748.0
