"""The append-only results file of an evaluation: resumable, one row per id, errored rows retried."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable

from core.errors import DataError
from core.jsonl import read_appendable
from core.locking import OutputLock


class ResultsFile:
    """`results.jsonl`: a line per finished attempt at a question; the last line of an id is its row.

    Its lines are read on first use; a torn last line (a run killed mid-write)
    is cut off, so a rerun appends cleanly after the last whole line.
    An id whose row ended in an error (an endpoint that failed, say) is pending
    again: its retry is appended with the earlier errors in `previous_errors`.
    An id with an answered row is never written again, and readers count it once
    whatever the file holds. Writing needs the lock (`with ResultsFile(...)`), which
    a second run on the same file is refused.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded: dict[str, dict[str, Any]] | None = None  # read on first use
        self._lock = threading.Lock()
        self._file_lock = OutputLock(path, "results file")
        self._writable = False

    @property
    def _latest(self) -> dict[str, dict[str, Any]]:
        if self._loaded is None:
            self._loaded = {}
            for lineno, row in read_appendable(self.path):
                if not isinstance(row, dict) or "id" not in row:
                    raise DataError(f"{self.path}:{lineno}: a results row needs an 'id'")
                keep_latest(self._loaded, row)
        return self._loaded

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per id: the answered one, else the latest attempt."""
        return list(self._latest.values())

    @property
    def done(self) -> set[str]:
        """Ids answered without an error (their rows are final)."""
        return {key for key, row in self._latest.items() if not row.get("error")}

    def __enter__(self) -> "ResultsFile":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file_lock.acquire()
        self._writable = True
        self._loaded = None  # read what is there now that no other run writes
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._writable = False
        self._file_lock.release()

    def append(self, row: dict[str, Any]) -> bool:
        """Write one row durably; False (and nothing written) if its id is already answered."""
        if not self._writable:
            raise RuntimeError("ResultsFile.append needs the file's lock: use `with ResultsFile(path) as results`")
        key = str(row["id"])
        with self._lock:
            before = self._latest.get(key)
            if before is not None and not before.get("error"):
                return False
            if before is not None:
                earlier = list(before.get("previous_errors") or [])
                row = {**row, "previous_errors": [*earlier, {"error": before["error"],
                                                             "seconds": before.get("seconds")}]}
            line = json.dumps(row, ensure_ascii=False) + "\n"
            # Counted before it is written: a Ctrl-C landing during the write must not let the caller
            # write the row a second time (a line it cuts short is repaired when the file is read again).
            self._latest[key] = row
            try:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(line)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError:
                if before is None:
                    self._latest.pop(key, None)
                else:
                    self._latest[key] = before
                raise
            return True

    def pending(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows not yet answered: never tried, or tried and failed."""
        done = self.done
        return [r for r in rows if str(r["id"]) not in done]


def keep_latest(rows: dict[str, dict[str, Any]], row: dict[str, Any]) -> None:
    """Fold one line of a results file into `rows` (by id): an answered row is final, else the latest wins."""
    key = str(row["id"])
    before = rows.get(key)
    if before is None or before.get("error"):
        rows[key] = row
