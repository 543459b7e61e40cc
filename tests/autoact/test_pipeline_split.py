"""The pipeline keeps evaluation data out of training: self-instruct reads the corpus part and avoids the
evaluated questions; the overlap lands in run.json."""

from __future__ import annotations

import json

from autoact import pipeline
from autoact.presets import PipelineConfig
from autoact.run_record import RunRecord
from tasks import get_task
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
