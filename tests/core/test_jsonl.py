"""JSON and JSON Lines reading (core/jsonl.py): FILE:LINE errors and the repair of torn appends."""

from __future__ import annotations

import pytest

from core.errors import DataError
from core.jsonl import iter_jsonl, read_appendable, read_json

# --- iter_jsonl ---------------------------------------------------------------------------------

def test_iter_jsonl_yields_line_numbers_and_values_skipping_blank_lines(tmp_path):
    """Blank and whitespace-only lines are skipped but still counted in the line numbers."""
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"id": 1}\n\n   \t\n[2, 3]\r\n"text"\n')
    assert list(iter_jsonl(path)) == [(1, {"id": 1}), (4, [2, 3]), (5, "text")]


def test_iter_jsonl_reads_a_last_line_without_newline_and_non_ascii_text(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes('{"name": "Zürich"}\n{"name": "東京"}'.encode())
    assert list(iter_jsonl(path)) == [(1, {"name": "Zürich"}), (2, {"name": "東京"})]


def test_iter_jsonl_of_an_empty_file_yields_nothing(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert list(iter_jsonl(path)) == []


def test_iter_jsonl_missing_file_names_it_and_what_it_is(tmp_path):
    path = tmp_path / "absent.jsonl"
    with pytest.raises(DataError, match="absent.jsonl: no such training file"):
        list(iter_jsonl(path, what="training file"))
    with pytest.raises(DataError, match="no such data file"):
        list(iter_jsonl(tmp_path))  # a directory is not a file either


def test_iter_jsonl_bad_json_names_file_line_and_column_after_yielding_earlier_rows(tmp_path):
    """The reader is lazy: rows before the bad line arrive, then the error names FILE:LINE."""
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"id": 1}\n\n{"id": 2,}\n{"id": 3}\n')
    seen = []
    with pytest.raises(DataError) as info:
        for lineno, value in iter_jsonl(path):
            seen.append((lineno, value))
    assert seen == [(1, {"id": 1})]
    message = str(info.value)
    assert message.startswith(f"{path}:3: not valid JSON")
    assert "column 10" in message


def test_iter_jsonl_non_utf8_bytes_name_file_line_byte_and_column(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"ok": true}\n{"x": "\xff"}\n')
    with pytest.raises(DataError) as info:
        list(iter_jsonl(path))
    message = str(info.value)
    assert message.startswith(f"{path}:2: not UTF-8 text")
    assert "byte 0xff at column 8" in message
    assert "save the file as UTF-8" in message


# --- read_json ----------------------------------------------------------------------------------

def test_read_json_reads_a_whole_multiline_document(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "a": [1, 2],\n  "b": "é"\n}\n', encoding="utf-8")
    assert read_json(path) == {"a": [1, 2], "b": "é"}


@pytest.mark.parametrize("content, what, where, detail", [
    (None, "run record", ": cannot read the run record", "No such file or directory"),  # missing: path and what
    ('{\n  "a": 1,\n  "b": \n}\n', "settings file", ":4: not valid JSON",  # bad JSON: the line of the error
     "the settings file may have been cut off"),
], ids=["missing", "bad-json"])
def test_read_json_errors_name_the_file_and_what_it_is(tmp_path, content, what, where, detail):
    path = tmp_path / "file.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_json(path, what=what)
    message = str(info.value)
    assert message.startswith(f"{path}{where}") and detail in message


def test_read_json_cut_off_and_empty_files_are_data_errors(tmp_path):
    cut = tmp_path / "cut.json"
    cut.write_text('{"a": [1, 2', encoding="utf-8")
    with pytest.raises(DataError, match=r"cut\.json:1: not valid JSON"):
        read_json(cut)
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.json:1: not valid JSON"):
        read_json(empty)


def test_read_json_non_utf8_bytes_name_their_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{\n  "a": 1,\n  "b": "\xe9"\n}\n')
    with pytest.raises(DataError) as info:
        read_json(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: not UTF-8 text")
    assert "byte 0xe9" in message


# --- read_appendable ----------------------------------------------------------------------------

def test_read_appendable_missing_file_is_empty_and_not_created(tmp_path):
    path = tmp_path / "results.jsonl"
    assert read_appendable(path) == []
    assert not path.exists()


def test_read_appendable_returns_whole_lines_and_leaves_a_clean_file_alone(tmp_path):
    path = tmp_path / "results.jsonl"
    data = b'{"id": 1}\n\n{"id": 2}\n'
    path.write_bytes(data)
    assert read_appendable(path) == [(1, {"id": 1}), (3, {"id": 2})]
    assert path.read_bytes() == data


def test_read_appendable_cuts_off_a_torn_last_line_that_does_not_parse(tmp_path):
    """A kill mid-write leaves half a line: it is dropped so the next append starts on a fresh line."""
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": 2}\n{"id": 3, "ans')
    assert read_appendable(path) == [(1, {"id": 1}), (2, {"id": 2})]
    assert path.read_bytes() == b'{"id": 1}\n{"id": 2}\n'


def test_read_appendable_completes_a_last_line_that_parses_but_lacks_its_newline(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": 2}')
    assert read_appendable(path) == [(1, {"id": 1}), (2, {"id": 2})]
    assert path.read_bytes() == b'{"id": 1}\n{"id": 2}\n'
    # repairing is idempotent
    assert read_appendable(path) == [(1, {"id": 1}), (2, {"id": 2})]
    assert path.read_bytes() == b'{"id": 1}\n{"id": 2}\n'


def test_read_appendable_torn_non_utf8_tail_is_cut_off_too(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": "\xe2\x82')  # a multi-byte character cut in half
    assert read_appendable(path) == [(1, {"id": 1})]
    assert path.read_bytes() == b'{"id": 1}\n'


def test_read_appendable_bad_whole_line_is_a_data_error_and_the_file_is_untouched(tmp_path):
    path = tmp_path / "results.jsonl"
    data = b'{"id": 1}\n{broken}\n{"id": 3}\n'
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        read_appendable(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: not valid JSON")
    assert "move the file away to start over" in message
    assert path.read_bytes() == data


def test_read_appendable_non_utf8_whole_line_is_a_data_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": "\xff"}\n')
    with pytest.raises(DataError, match=r"results\.jsonl:2: not valid JSON"):
        read_appendable(path)
