"""The resumable results file of an evaluation (evaluation/results.py)."""

from __future__ import annotations

import json
import os

import pytest

from core.errors import ConfigError, DataError
from evaluation.results import ResultsFile, keep_latest


def _write(path, *rows, tail: bytes = b""):
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + tail)


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_missing_file_has_no_rows(tmp_path):
    results = ResultsFile(tmp_path / "results.jsonl")
    assert results.rows == [] and results.done == set()


def test_one_row_per_id_answered_rows_are_final(tmp_path):
    """An answered row wins over earlier and later errored lines; otherwise the latest line wins."""
    path = tmp_path / "results.jsonl"
    _write(path,
           {"id": "a", "error": "timeout"}, {"id": "a", "prediction": "Paris"}, {"id": "a", "error": "late"},
           {"id": "b", "error": "first"}, {"id": "b", "error": "second"},
           {"id": 3, "prediction": "x"}, {"id": "3", "prediction": "y"})
    results = ResultsFile(path)
    by_id = {str(r["id"]): r for r in results.rows}
    assert len(results.rows) == 3
    assert by_id["a"] == {"id": "a", "prediction": "Paris"}
    assert by_id["b"] == {"id": "b", "error": "second"}
    assert by_id["3"]["prediction"] == "x"  # ids compare as strings: 3 and "3" are one id
    assert results.done == {"a", "3"}


def test_pending_is_never_tried_or_errored_in_the_given_order(tmp_path):
    path = tmp_path / "results.jsonl"
    _write(path, {"id": "q1", "prediction": "ok"}, {"id": "q2", "error": "boom"}, {"id": 4, "prediction": ""})
    wanted = [{"id": "q3"}, {"id": "q1"}, {"id": "q2"}, {"id": "4"}, {"id": 5}]
    assert ResultsFile(path).pending(wanted) == [{"id": "q3"}, {"id": "q2"}, {"id": 5}]


def test_a_row_without_an_id_is_a_data_error_naming_file_and_line(tmp_path):
    path = tmp_path / "results.jsonl"
    _write(path, {"id": "a"}, {"prediction": "no id"})
    with pytest.raises(DataError, match=rf"{path.name}:2: a results row needs an 'id'"):
        _ = ResultsFile(path).rows
    _write(path, ["not", "an", "object"])
    with pytest.raises(DataError, match=rf"{path.name}:1: a results row needs an 'id'"):
        _ = ResultsFile(path).rows


def test_append_needs_the_with_block(tmp_path):
    path = tmp_path / "results.jsonl"
    results = ResultsFile(path)
    with pytest.raises(RuntimeError, match=r"with ResultsFile\(path\) as results"):
        results.append({"id": "a"})
    with results:
        assert results.append({"id": "a", "prediction": "x"})
    with pytest.raises(RuntimeError):
        results.append({"id": "b"})  # not after the block either
    assert _lines(path) == [{"id": "a", "prediction": "x"}]


def test_append_writes_one_line_and_refuses_an_answered_id(tmp_path):
    path = tmp_path / "out" / "results.jsonl"  # the directory is made on entry
    with ResultsFile(path) as results:
        assert results.append({"id": "q1", "prediction": "Zürich"}) is True
        assert results.append({"id": "q1", "prediction": "other"}) is False
        assert results.done == {"q1"}
    assert path.read_text(encoding="utf-8") == '{"id": "q1", "prediction": "Zürich"}\n'  # not ASCII-escaped


def test_errored_rows_are_retried_with_previous_errors_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsFile(path) as results:
        assert results.append({"id": 7, "error": "endpoint down", "seconds": 1.5})
        assert results.pending([{"id": 7}]) == [{"id": 7}]
        assert results.append({"id": 7, "error": "still down"})
        assert results.append({"id": 7, "prediction": "42", "seconds": 2.0})
        assert results.pending([{"id": 7}]) == []
        assert results.append({"id": 7, "prediction": "again"}) is False
    last = _lines(path)[-1]
    assert len(_lines(path)) == 3
    assert last["prediction"] == "42"
    assert last["previous_errors"] == [{"error": "endpoint down", "seconds": 1.5},
                                       {"error": "still down", "seconds": None}]
    assert ResultsFile(path).rows == [last]  # a fresh reader sees the same row


def test_a_torn_last_line_is_cut_off_and_appends_continue_cleanly(tmp_path):
    path = tmp_path / "results.jsonl"
    _write(path, {"id": "q1", "prediction": "a"}, tail=b'{"id": "q2", "predic')
    with ResultsFile(path) as results:
        assert [r["id"] for r in results.rows] == ["q1"]
        assert results.append({"id": "q2", "prediction": "b"})
    assert _lines(path) == [{"id": "q1", "prediction": "a"}, {"id": "q2", "prediction": "b"}]


def test_entering_rereads_the_file(tmp_path):
    """Rows read before taking the lock are replaced by what the file holds once it is held."""
    path = tmp_path / "results.jsonl"
    results = ResultsFile(path)
    assert results.rows == []
    _write(path, {"id": "q1", "prediction": "written by an earlier run"})
    with results:
        assert results.done == {"q1"}
        assert results.append({"id": "q1", "prediction": "dup"}) is False


def test_a_second_writer_on_the_same_file_is_refused_while_the_first_holds_it(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsFile(path):
        assert (tmp_path / ".results.jsonl.lock").is_file()
        second = ResultsFile(path)
        with pytest.raises(ConfigError, match=rf"{path.name} is in use by another run.*results file elsewhere"):
            second.__enter__()
        assert ResultsFile(path).rows == []  # reading needs no lock
    with ResultsFile(path) as again:  # released after the block
        assert again.append({"id": "x"})


def test_keep_latest_folds_lines_by_id():
    rows: dict = {}
    keep_latest(rows, {"id": 1, "error": "e1"})
    assert rows == {"1": {"id": 1, "error": "e1"}}
    keep_latest(rows, {"id": "1", "error": "e2"})
    assert rows["1"] == {"id": "1", "error": "e2"}
    keep_latest(rows, {"id": 1, "prediction": "p"})
    keep_latest(rows, {"id": 1, "error": "after"})
    keep_latest(rows, {"id": 1, "prediction": "later answer"})
    assert rows == {"1": {"id": 1, "prediction": "p"}}
    keep_latest(rows, {"id": 2, "prediction": "q", "error": None})  # a null error is an answer
    assert rows["2"]["prediction"] == "q"


def test_ctrl_c_during_the_write_does_not_let_the_row_be_written_twice(tmp_path, monkeypatch):
    """The runner records a finished row again after a Ctrl-C; a Ctrl-C that landed inside the first
    write (here: during fsync) must not leave the row on disk but uncounted, or it is written twice."""
    path = tmp_path / "results.jsonl"
    real_fsync = os.fsync

    def interrupted_fsync(fd):
        real_fsync(fd)
        raise KeyboardInterrupt

    with ResultsFile(path) as results:
        monkeypatch.setattr(os, "fsync", interrupted_fsync)
        with pytest.raises(KeyboardInterrupt):
            results.append({"id": "q1", "prediction": "x", "error": None})
        monkeypatch.setattr(os, "fsync", real_fsync)
        assert results.append({"id": "q1", "prediction": "x", "error": None}) is False
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1


def test_a_failed_write_leaves_the_row_pending(tmp_path, monkeypatch):
    """A write that fails (disk full) does not count the row as answered: it is still to do."""
    path = tmp_path / "results.jsonl"

    def full(fd):
        raise OSError(28, "No space left on device")

    with ResultsFile(path) as results:
        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(OSError):
            results.append({"id": "q1", "prediction": "x", "error": None})
        assert results.pending([{"id": "q1"}]) == [{"id": "q1"}]
