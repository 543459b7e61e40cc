"""Handing freed heap memory back to the system.

Owns glibc's ``malloc_trim`` hook (:data:`_MALLOC_TRIM`, None where the C library lacks it)
and :class:`MemoryReleaseMixin`, the engine's policy for when to call it.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable


def _libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, which returns free heap memory to the system (None elsewhere)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


_MALLOC_TRIM = _libc_malloc_trim()


class MemoryReleaseMixin:
    """When the engine trims the heap.

    Mixed into :class:`serving.batched_engine.BatchedEngine`, whose attributes it reads.
    """

    stats: dict[str, float]
    on_cpu: bool
    release_every_s: float
    _released_at: float
    _released_at_work: float

    def _release_memory(self, quiet: bool) -> None:
        """Hand freed heap memory back to the system after work: when the engine has gone quiet,
        and every ``release_every_s`` while it stays busy.

        Prompts and caches are large, short-lived tensors, and glibc keeps much of what they free.
        Measured with 24-prompt waves of 200–1,500 words: after four waves the worker held 2,991 MiB,
        and ``malloc_trim`` brought it down to 1,622 MiB, prefix cache included. One trim takes about
        0.1 s, so a busy engine trims only now and then.
        """
        now, work = time.monotonic(), self.stats["steps"] + self.stats["prefills"]
        if (_MALLOC_TRIM is None or not self.on_cpu  # a GPU's memory is torch's caching allocator's
                or work == self._released_at_work  # nothing ran since the last release
                or (not quiet and now - self._released_at < self.release_every_s)):
            return
        start = time.perf_counter()
        _MALLOC_TRIM(0)
        self.stats["release_s"] += time.perf_counter() - start
        self.stats["releases"] += 1
        self._released_at, self._released_at_work = now, work
