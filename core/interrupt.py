"""Stopping promptly on the first Ctrl-C, keeping what is finished.

Long jobs (evaluation, synthesis, self-instruct) run their work on daemon threads of a
`WorkerPool`. When the main thread gets the KeyboardInterrupt, `stop()` sets one
process-wide flag: nothing queued is started, and work in flight raises `Interrupted` at
its next model request (`check`) or wait (`sleep`), so it is abandoned whole and redone by
the next run. A request already on the wire is not waited for past a short grace
period: daemon threads do not hold the process at exit.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, wait
from contextvars import ContextVar, copy_context
from typing import Any, Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: seconds the first Ctrl-C waits for work in flight to finish before leaving it
GRACE_SECONDS = 5.0
#: what an interrupt says when the job that was stopped has nothing more precise to say
RESUME = "interrupted; what was finished is kept: run the same command again to resume"

_STOP = threading.Event()
#: the stop events of the pools whose task this context runs (a pool shut down with `cancel` sets its own)
_POOL_STOPS: ContextVar[tuple[threading.Event, ...]] = ContextVar("autoact_pool_stops", default=())


class Interrupted(KeyboardInterrupt):
    """Work stopped because the user interrupted it; the message says what was kept."""


def stop() -> None:
    """Ask every worker to stop at its next check."""
    _STOP.set()


def reset() -> None:
    """A new job starts: forget an earlier interrupt."""
    _STOP.clear()


def stopping() -> bool:
    """Whether a stop was asked for: of the whole process, or of the pool whose task is running here."""
    return _STOP.is_set() or any(event.is_set() for event in _POOL_STOPS.get())


def check() -> None:
    """Raise Interrupted once a stop was asked for (the process's, or this task's pool's)."""
    if stopping():
        raise Interrupted(RESUME)


def sleep(seconds: float) -> None:
    """Wait, but raise Interrupted as soon as a stop is asked for."""
    if stopping() or (seconds > 0 and _STOP.wait(seconds)) or stopping():  # a zero wait still sees a stop
        raise Interrupted(RESUME)


class WorkerPool:
    """A small thread pool whose threads are daemons (an abandoned request never holds the exit).

    Each task runs in a copy of the submitter's context (context variables travel with it).
    `shutdown(cancel=True)` also abandons the tasks already running: they raise Interrupted at
    their next model request (`check`), so work nobody will read stops loading the server.
    """

    def __init__(self, workers: int, name: str = "autoact") -> None:
        self._stop = threading.Event()
        self._tasks: list[tuple[Future, Callable[[], Any]]] = []
        self._ready = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> "Future[T]":
        future: Future[T] = Future()
        context = copy_context()
        context.run(_POOL_STOPS.set, (*_POOL_STOPS.get(), self._stop))  # a nested pool's tasks see this one's too
        with self._ready:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            self._tasks.append((future, lambda: context.run(fn, *args)))
            self._ready.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._tasks and not self._closed:
                    self._ready.wait()
                if not self._tasks:
                    return
                future, call = self._tasks.pop(0)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as err:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(err)
            else:
                future.set_result(result)

    def shutdown(self, cancel: bool = False) -> None:
        """No more tasks; with `cancel`, the queued ones never start and the running ones stop at their next
        `check`. Does not wait."""
        with self._ready:
            self._closed = True
            if cancel:
                self._stop.set()
                for future, _ in self._tasks:
                    future.cancel()
                self._tasks.clear()
            self._ready.notify_all()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        self.shutdown(cancel=kind is not None)


def finish_in_flight(futures: Iterable[Future], grace: float = GRACE_SECONDS) -> list[Future]:
    """After a stop: wait up to `grace` seconds for running futures; the ones done by then."""
    pending = [f for f in futures if not f.cancelled()]
    done, _ = wait(pending, timeout=grace)
    return [f for f in pending if f in done and not f.cancelled()]


def map_threads(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`[fn(x) for x in items]`, one daemon thread each, at once (requests a server may batch)."""
    with WorkerPool(len(items), "autoact-score") as pool:
        futures = [pool.submit(fn, item) for item in items]
        return [future.result() for future in futures]
