"""Reading task data files (JSON Lines) with errors that name FILE:LINE."""

from __future__ import annotations

import json
from pathlib import Path

from autoact.errors import DataError
from tasks.base import Task


def read_rows(path: str | Path, task: Task) -> list[dict]:
    """All rows of a JSONL file, validated for `task`; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    rows: list[dict] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
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
