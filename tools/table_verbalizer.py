"""TableVerbalizer[table]: a CSV, Markdown or JSON table as one sentence per row.

Action arguments are one line, so rows may also be separated by `;` (CSV or Markdown), by a
literal `\\n`, or, for Markdown, follow the `|---|---|` line on the same line. With an empty
argument (or just "table") the task row's `table` field is used, when it has one.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from tools.base import ToolContext, ToolSpec

TABLE_VERBALIZER_SPEC = ToolSpec(
    name="TableVerbalizer",
    description="Turns a table (CSV, Markdown or JSON) into plain sentences, one per row.",
    usage="TableVerbalizer[table], e.g. TableVerbalizer[city,country; Paris,France; Rome,Italy]",
)

Table = tuple[list[str], list[list[str]]]

_SEPARATOR_CELL = re.compile(r"^:?-{1,}:?$")
_HEADER_KEYS = ("columns", "header", "headers")
_ROW_KEYS = ("rows", "data")
_PLACEHOLDERS = {"", "table", "the table"}


class TableError(ValueError):
    """The text could not be read as a table."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return " ".join(value.split())
    return json.dumps(value, ensure_ascii=False)


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", "").strip().lstrip("$€£").rstrip("%"))
    except ValueError:
        return False
    return True


def looks_like_header(cells: list[str]) -> bool:
    """A first row is a header when its cells are all filled, distinct and not numbers."""
    keys = [c.casefold() for c in cells]
    return bool(cells) and all(cells) and len(set(keys)) == len(keys) and \
        not any(_is_number(c) for c in cells)


def _with_header(rows: list[list[str]]) -> Table:
    if rows and looks_like_header(rows[0]):
        return rows[0], rows[1:]
    width = max((len(r) for r in rows), default=0)
    return [f"column {i}" for i in range(1, width + 1)], rows


def _from_json(data: Any) -> Table:
    if isinstance(data, dict):
        header_key = next((k for k in _HEADER_KEYS if k in data), None)
        row_key = next((k for k in _ROW_KEYS if k in data), None)
        if header_key and row_key and isinstance(data[header_key], list):
            header = [_text(c) for c in data[header_key]]
            return header, [_json_row(r, header) for r in _as_list(data[row_key])]
        if row_key and not header_key:
            return _from_json(data[row_key])
        if data and all(isinstance(v, list) for v in data.values()):  # column-oriented
            header = [str(k) for k in data]
            length = max(len(v) for v in data.values())
            return header, [[_text(col[i]) if i < len(col) else "" for col in data.values()]
                            for i in range(length)]
        return _from_json([data])
    rows = _as_list(data)
    if rows and all(isinstance(r, dict) for r in rows):
        header: list[str] = []
        for row in rows:
            header += [str(k) for k in row if str(k) not in header]
        return header, [_json_row(r, header) for r in rows]
    if all(isinstance(r, list) for r in rows):
        return _with_header([[_text(c) for c in r] for r in rows])
    raise TableError("JSON tables are a list of objects, a list of lists, "
                     "or an object with columns and rows")


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TableError(f"expected a list of rows, got {type(value).__name__}")
    return value


def _json_row(row: Any, header: list[str]) -> list[str]:
    if isinstance(row, dict):
        return [_text(row.get(name)) for name in header]
    if isinstance(row, list):
        return [_text(c) for c in row]
    raise TableError(f"a row must be an object or a list, got {type(row).__name__}")


def _markdown_cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") else line
    return [c.strip() for c in line.split("|")]


def _one_line_markdown(line: str) -> Table | None:
    """`| a | b | |---|---| | 1 | 2 |` → header and rows, using the separator to count columns."""
    tokens = [t.strip() for t in line.split("|") if t.strip()]
    start = next((i for i, t in enumerate(tokens) if _SEPARATOR_CELL.match(t)), None)
    if start is None:
        return None
    end = start
    while end < len(tokens) and _SEPARATOR_CELL.match(tokens[end]):
        end += 1
    width = end - start
    header, body = tokens[:start], tokens[end:]
    if len(header) != width or len(body) % width:
        raise TableError(f"the Markdown table has {width} columns but its cells do not fill rows")
    return header, [body[i:i + width] for i in range(0, len(body), width)]


def _from_markdown(lines: list[str]) -> Table:
    if len(lines) == 1:
        table = _one_line_markdown(lines[0])
        if table is not None:
            return table
        lines = re.split(r"\|\s*\|", lines[0]) if "||" in lines[0].replace(" ", "") else lines
    rows = [_markdown_cells(line) for line in lines]
    for i, cells in enumerate(rows):
        if all(_SEPARATOR_CELL.match(c) for c in cells if c) and any(cells):
            if i == 1:
                return rows[0], rows[2:]
            return _with_header(rows[:i] + rows[i + 1:])
    return _with_header(rows)


def _from_csv(lines: list[str]) -> Table:
    first = lines[0]
    delimiter = "\t" if "\t" in first else ("," if "," in first or ";" not in first else ";")
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter, skipinitialspace=True)
    return _with_header([[c.strip() for c in row] for row in reader if any(c.strip() for c in row)])


def parse_table(data: Any) -> Table:
    """Header and rows of a table given as text (CSV, Markdown, JSON) or as parsed JSON."""
    if not isinstance(data, str):
        return _from_json(data)
    text = data.strip()
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    if not text:
        raise TableError("the table is empty")
    if text[0] in "[{":
        try:
            return _from_json(json.loads(text))
        except json.JSONDecodeError as err:
            raise TableError(f"invalid JSON ({err.msg} at character {err.pos})") from err
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and ";" in lines[0] and not _one_line_markdown_safe(lines[0]):
        lines = [part for part in lines[0].split(";") if part.strip()]
    header, rows = _from_markdown(lines) if "|" in text else _from_csv(lines)
    if len(header) <= 1 and not rows:
        raise TableError("no cells found; separate cells with commas or | and rows with new "
                         "lines or ;")
    return header, rows


def _one_line_markdown_safe(line: str) -> bool:
    return "|" in line and any(_SEPARATOR_CELL.match(t.strip()) for t in line.split("|"))


def verbalize(header: list[str], rows: list[list[str]], max_rows: int = 50) -> str:
    """`Row 1: a is x, b is y.` per row; empty cells are left out."""
    if not rows:
        return (f"The table has columns {', '.join(header)} but no rows." if header
                else "The table is empty.")
    sentences = []
    for number, row in enumerate(rows[:max_rows], 1):
        names = header + [f"column {i}" for i in range(len(header) + 1, len(row) + 1)]
        pairs = [f"{name} is {cell}" for name, cell in zip(names, row) if cell]
        sentences.append(f"Row {number}: {', '.join(pairs)}." if pairs
                         else f"Row {number} is empty.")
    if len(rows) > max_rows:
        sentences.append(f"… {len(rows) - max_rows} more rows.")
    return " ".join(sentences)


class TableVerbalizer:
    """Reads the table from the argument (or the row's `table`) and describes each row."""

    def __init__(self, spec: ToolSpec = TABLE_VERBALIZER_SPEC, max_rows: int = 50) -> None:
        self.spec = spec
        self.max_rows = max_rows

    def run(self, argument: str, ctx: ToolContext) -> str:
        source: Any = argument
        if argument.strip().casefold() in _PLACEHOLDERS and ctx.row.get("table"):
            source = ctx.row["table"]
        elif not argument.strip():
            return f"TableVerbalizer needs a table. {self.spec.usage}"
        try:
            header, rows = parse_table(source)
        except TableError as err:
            return f"Cannot read the table: {err}."
        return verbalize(header, rows, self.max_rows)
