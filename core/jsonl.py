"""JSON and JSON Lines files: reading with FILE:LINE errors, and append-only files that survive a kill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from core.errors import DataError


def _decode(path: Path, lineno: int, raw: bytes) -> str:
    """One line as text; DataError naming FILE:LINE and the byte when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                        "save the file as UTF-8") from None


def iter_jsonl(path: Path, what: str = "data file") -> Iterator[tuple[int, Any]]:
    """`(line number, value)` for each non-blank line; DataError naming FILE:LINE on bad JSON or bytes."""
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode(path, lineno, raw)
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None


def read_json(path: Path, what: str = "JSON file") -> Any:
    """A whole JSON file; DataError naming FILE:LINE when it is missing, not UTF-8 or not valid JSON."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    text = "".join(_decode(path, n, raw) for n, raw in enumerate(data.splitlines(keepends=True), 1))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}); the {what} may have "
                        "been cut off: move it away to start over") from None


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
