"""One writer per output: an advisory lock that a killed process never leaves held.

The lock is `flock` on a small file beside the output (`.NAME.lock`), which records who
holds it (pid, host, command, start time) for the message a second run gets. The kernel
drops the lock when its process ends however it ends, so a run killed with `kill -9`
leaves the file behind but not the lock: the next run takes it over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from core.errors import ConfigError


class OutputLock:
    """An exclusive lock on `target` (a file or a directory), taken at once or refused."""

    def __init__(self, target: Path, what: str = "output") -> None:
        self.target = Path(target)
        self.what = what
        name = ".autoact.lock" if self.target.is_dir() else f".{self.target.name}.lock"
        self.path = (self.target if self.target.is_dir() else self.target.parent) / name
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ConfigError(f"{self.target} is in use by another run{holder}: wait for it to finish, or "
                              f"write this {self.what} elsewhere") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": sys.argv[:8],
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _holder(fd: int) -> str:
    """` (pid 123 on host, since …)` from the lock file, or "" when it cannot be read."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f" (pid {info['pid']} on {info['host']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""
