"""The append-only results file of an evaluation: resumable, never duplicated."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable

from autoact.errors import DataError
from autoact.jsonl import read_appendable


class ResultsFile:
    """`results.jsonl`, one row per finished question.

    Opening it reads the rows already there; a torn last line (a run killed
    mid-write) is cut off, so a rerun appends cleanly after the last whole row.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._load()
        self.done = {str(r["id"]) for r in self.rows}

    def _load(self) -> None:
        for lineno, row in read_appendable(self.path):
            if not isinstance(row, dict) or "id" not in row:
                raise DataError(f"{self.path}:{lineno}: a results row needs an 'id'")
            self.rows.append(row)

    def append(self, row: dict[str, Any]) -> bool:
        """Write one row durably; False (and nothing written) if its id is already there."""
        with self._lock:
            if str(row["id"]) in self.done:
                return False
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.done.add(str(row["id"]))
            self.rows.append(row)
            return True

    def pending(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if str(r["id"]) not in self.done]
