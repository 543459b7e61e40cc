"""Reading task data files (JSON Lines) with errors that name FILE:LINE."""

from __future__ import annotations

from pathlib import Path

from core.errors import DataError
from core.jsonl import iter_jsonl
from tasks.base import Task


def read_rows(path: str | Path, task: Task) -> list[dict]:
    """All rows of a JSONL file, validated for `task`; blank lines are skipped."""
    path = Path(path)
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        problem = task.validate(row)
        if problem:
            raise DataError(f"{path}:{lineno}: {problem} (task {task.name})")
        row["id"] = str(row["id"])
        if row["id"] in seen:
            raise DataError(f"{path}:{lineno}: duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        seen[row["id"]] = lineno
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows
