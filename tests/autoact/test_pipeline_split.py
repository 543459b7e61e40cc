"""The pipeline keeps evaluation data out of training: self-instruct reads the corpus part and avoids the
evaluated questions; the overlap lands in run.json."""

from __future__ import annotations

import json

import pytest

from autoact import pipeline
from autoact.presets import PipelineConfig
from autoact.run_record import RunRecord, StageError
from core.errors import ConfigError
from tasks import get_task
from tests.support.builders import DATA
from training.overlap import split_rows
from training.self_instruct import SelfInstructReport


def hotpot_row(i: int, title: str) -> dict:
    return {"id": f"r{i}", "question": f"Where is the {title} found today?", "answer": "here", "type": "bridge",
            "level": "easy", "context": [[title, [f"{title} is a thing."]]], "supporting_facts": [[title, 0]]}


ROWS = [hotpot_row(i, t) for i, t in enumerate(["Comet", "Glacier", "Violin", "Temple"])]


def test_self_instruct_reads_the_corpus_part_and_holds_out_the_evaluated_questions(tmp_path, monkeypatch):
    seen = {}

    def fake_self_instruct(model, task_name, seeds, out, config, corpus_rows=None, progress=True, avoid=(),
                           held_out=()):
        seen.update(corpus=corpus_rows, held_out=list(held_out), grounded=config.grounded)
        out.write_text(json.dumps({"id": "si-1", "question": "Which river runs by the Temple?", "answer": "Fred",
                                   "context": [["Temple", ["Temple is a thing."]]]}) + "\n")
        return SelfInstructReport(task=task_name, out_path=str(out), accepted=1, total=1)

    monkeypatch.setattr("training.self_instruct.run_self_instruct", fake_self_instruct)
    config = PipelineConfig(task="hotpotqa", workdir=tmp_path, progress=False)
    preset = config.preset_values()
    record = RunRecord.open(tmp_path, config, preset)
    split = split_rows(ROWS)
    paths = {"questions": tmp_path / "questions.jsonl"}
    pipeline._stage_self_instruct(record, config, preset, get_task("hotpotqa"), "http://x/v1", paths, "m", split)
    assert [r["id"] for r in seen["corpus"]] == ["r2", "r3"] and seen["grounded"]
    assert seen["held_out"] == [ROWS[0]["question"], ROWS[1]["question"]]
    stage = record.stage("self-instruct")
    assert stage["status"] == "done" and stage["counts"]["questions"] == 1 and stage["counts"]["rejected_by"] == {}

    run = pipeline._Run(config, get_task("hotpotqa"), preset, record, base=None, split=split)  # type: ignore[arg-type]
    run.record_overlap()
    overlap = json.loads((tmp_path / "run.json").read_text())["overlap"]
    assert overlap == {"corpus": "split", "evaluated_rows": 2, "training_rows": 3, "evaluated_pages": 2,
                       "pages_shared": 0, "gold_pages_shared": 0, "questions_shared": 0}


def test_asked_for_overlap_reads_the_evaluated_rows_and_holds_nothing_out(tmp_path, monkeypatch):
    seen = {}

    def fake_self_instruct(model, task_name, seeds, out, config, corpus_rows=None, progress=True, avoid=(),
                           held_out=()):
        seen.update(corpus=corpus_rows, held_out=list(held_out))
        out.write_text("")
        return SelfInstructReport(task=task_name, out_path=str(out))

    monkeypatch.setattr("training.self_instruct.run_self_instruct", fake_self_instruct)
    config = PipelineConfig(task="hotpotqa", workdir=tmp_path, progress=False, train_on_eval=True)
    preset = config.preset_values()
    record = RunRecord.open(tmp_path, config, preset)
    split = split_rows(ROWS, train_on_eval=True)
    pipeline._stage_self_instruct(record, config, preset, get_task("hotpotqa"), "http://x/v1",
                                  {"questions": tmp_path / "questions.jsonl"}, "m", split)
    assert seen["corpus"] == ROWS and seen["held_out"] == []
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["train_on_eval"] is True


def test_corpus_questions_are_the_corpus_parts_real_rows_and_never_an_evaluated_one(tmp_path, monkeypatch):
    def no_self_instruct(*args, **kwargs):  # pragma: no cover - must not run
        raise AssertionError("--questions corpus must not self-instruct")

    monkeypatch.setattr("training.self_instruct.run_self_instruct", no_self_instruct)
    asked = tmp_path / "earlier.jsonl"
    asked.write_text(json.dumps(ROWS[2]) + "\n")  # an earlier round asked r2
    config = PipelineConfig(task="hotpotqa", workdir=tmp_path, progress=False, questions="corpus",
                            avoid_questions=[asked])
    preset = config.preset_values()
    record = RunRecord.open(tmp_path, config, preset)
    split = split_rows(ROWS)
    paths = {"questions": tmp_path / "questions.jsonl"}
    pipeline._stage_self_instruct(record, config, preset, get_task("hotpotqa"), "http://x/v1", paths, "m", split)
    written = [json.loads(line) for line in paths["questions"].read_text().splitlines()]
    assert written == [ROWS[3]]  # r0, r1 are evaluated; r2 was asked before; pages and answer come along
    stage = record.stage("self-instruct")
    assert stage["counts"] == {"source": "corpus (split)", "questions": 1, "corpus_rows": 2}
    assert json.loads((tmp_path / "run.json").read_text())["settings"]["questions"] == "corpus"
    paths["questions"].write_text(json.dumps(ROWS[3]) + "\n" + json.dumps({**ROWS[3], "id": "kept"}) + "\n")
    pipeline._stage_self_instruct(record, config, preset, get_task("hotpotqa"), "http://x/v1", paths, "m", split)
    assert len(paths["questions"].read_text().splitlines()) == 2  # a second sitting keeps the file it finds
    assert record.stage("self-instruct")["counts"]["questions"] == 1
    config.avoid_questions = [paths["questions"], asked]
    (tmp_path / "r2").mkdir()
    fresh = {"questions": tmp_path / "r2" / "questions.jsonl"}
    record2 = RunRecord.open(tmp_path / "r2", config, preset)
    with pytest.raises(StageError, match="none of the corpus's 2 rows is left"):
        pipeline._stage_self_instruct(record2, config, preset, get_task("hotpotqa"), "http://x/v1", fresh, "m",
                                      split)


def test_corpus_questions_split_a_scienceqa_file_too(tmp_path):
    """ScienceQA self-instructs from its seeds and evaluates the whole file; its corpus questions are the
    file's last half, and the first half is evaluated."""
    run = pipeline._open_run(PipelineConfig(task="scienceqa", workdir=tmp_path / "c", questions="corpus",
                                            data_dir=DATA), None)
    whole = pipeline._open_run(PipelineConfig(task="scienceqa", workdir=tmp_path / "w", data_dir=DATA), None)
    assert whole.split.corpus_rows == [] and len(run.split.eval_rows) == len(run.split.corpus_rows) == 60
    assert run.split.eval_rows + run.split.corpus_rows == whole.split.eval_rows
    with pytest.raises(ConfigError, match="--questions 'real'"):
        pipeline._open_run(PipelineConfig(task="scienceqa", workdir=tmp_path, questions="real", data_dir=DATA), None)
