"""JSON Lines files: reading with FILE:LINE errors, and append-only files that survive a kill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from autoact.errors import DataError


def iter_jsonl(path: Path, what: str = "data file") -> Iterator[tuple[int, Any]]:
    """`(line number, value)` for each non-blank line; DataError naming FILE:LINE on bad JSON."""
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None


def read_appendable(path: Path) -> list[tuple[int, Any]]:
    """The whole lines of an append-only JSONL file, repairing the end a kill may have left.

    A last line without its newline is a torn write: cut off when it does not parse,
    completed with a newline when it does. Bad JSON anywhere else is a DataError.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    rows: list[tuple[int, Any]] = []
    offset = 0
    for lineno, raw in enumerate(data.splitlines(keepends=True), 1):
        whole = raw.endswith(b"\n")
        try:
            value = json.loads(raw) if raw.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if whole:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e}); move the file away to start over") from None
            with path.open("r+b") as f:
                f.truncate(offset)
            return rows
        if value is not None:
            rows.append((lineno, value))
        offset += len(raw)
        if not whole:
            with path.open("ab") as f:
                f.write(b"\n")
    return rows
