"""Task data validation (FILE:LINE errors), grouping and scoring."""

import json

import pytest

from core.errors import DataError
from tasks import get_task, read_rows
from tests.support.builders import DATA


def write(tmp_path, lines):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_malformed_rows_name_file_and_line(tmp_path):
    task = get_task("hotpotqa")
    good = json.dumps({"id": "1", "question": "q", "answer": "a", "context": []})
    cases = [
        ([good, "{not json"], ":2: not valid JSON"),
        ([good, json.dumps({"id": "2", "question": "q"})], ":2: missing field 'answer'"),
        ([json.dumps({"id": "1", "question": 3, "answer": "a"})], ":1: field 'question' should be a string"),
        ([good, good], ":2: duplicate id '1' (first on line 1)"),
        ([json.dumps({"id": "1", "question": "q", "answer": "a", "context": [["t", "s"]]})], "context[0]"),
    ]
    for lines, message in cases:
        path = write(tmp_path, lines)
        with pytest.raises(DataError) as err:
            read_rows(path, task)
        assert str(path) in str(err.value) and message in str(err.value)


def test_scienceqa_answer_letter_must_match_choices(tmp_path):
    row = {"id": "1", "question": "q", "choices": ["a", "b"], "answer": "C"}
    with pytest.raises(DataError, match=r":1: field 'answer' should be an option letter A-B"):
        read_rows(write(tmp_path, [json.dumps(row)]), get_task("scienceqa"))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        read_rows(tmp_path / "nope.jsonl", get_task("hotpotqa"))


def test_scienceqa_scoring_groups_and_gold_hidden():
    task = get_task("scienceqa")
    row = {"id": "1", "question": "Capital?", "choices": ["Harrisburg", "Dover"], "answer": "B",
           "caption": "a map", "metadata": {"grade": 7}}
    assert task.score("B. Dover", row) == {"correct": 1.0} and task.score("A", row) == {"correct": 0.0}
    assert task.group(row) == "grade5-8" and task.gold(row) == "B. Dover"
    assert "answer" not in task.inputs(row) and task.answer_choices(row) == ["A. Harrisburg", "B. Dover"]


def test_summary_per_group():
    task = get_task("hotpotqa")
    rows = [{"id": 1, "em": 1.0, "f1": 1.0, "group": "easy"}, {"id": 2, "em": 0.0, "f1": 0.5, "group": "easy"},
            {"id": 3, "em": 0.0, "f1": 0.0, "group": "hard", "halted": True}]
    s = task.summarize(rows)
    assert s["n"] == 3 and s["em"] == pytest.approx(33.33) and s["f1"] == pytest.approx(50.0)
    assert s["groups"]["easy"] == {"n": 2, "answered": 2, "errors": 0, "em": 50.0, "f1": 75.0,
                                   "all_rows": {"em": 50.0, "f1": 75.0}} and s["halted"] == 1


@pytest.mark.skipif(not DATA.exists(), reason="shared data not present")
def test_shared_files_load():
    assert len(read_rows(DATA / "hotpotqa/easy.jsonl", get_task("hotpotqa"))) == 100
    assert len(read_rows(DATA / "scienceqa/grade1-4.jsonl", get_task("scienceqa"))) == 120
