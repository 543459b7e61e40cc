"""Prompt stopping on Ctrl-C (core/interrupt.py): the stop flag, interruptible sleep and daemon pools."""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import Future

import pytest

from core import interrupt
from core.interrupt import (
    RESUME,
    Interrupted,
    WorkerPool,
    finish_in_flight,
    map_threads,
)


@pytest.fixture(autouse=True)
def _clear_stop():
    """The stop flag is process-wide: every test starts and ends without one."""
    interrupt.reset()
    yield
    interrupt.reset()


def test_interrupted_is_a_keyboard_interrupt():
    assert issubclass(Interrupted, KeyboardInterrupt)


def test_check_passes_until_stop_then_raises_interrupted_with_the_resume_message():
    interrupt.check()
    assert not interrupt.stopping()
    interrupt.stop()
    assert interrupt.stopping()
    with pytest.raises(Interrupted) as info:
        interrupt.check()
    assert str(info.value) == RESUME
    assert "run the same command again to resume" in RESUME


def test_reset_forgets_an_earlier_stop():
    interrupt.stop()
    interrupt.reset()
    assert not interrupt.stopping()
    interrupt.check()


def test_sleep_waits_its_time_when_not_stopped():
    start = time.monotonic()
    interrupt.sleep(0.05)
    assert time.monotonic() - start >= 0.04


def test_sleep_raises_at_once_when_already_stopped():
    interrupt.stop()
    start = time.monotonic()
    with pytest.raises(Interrupted):
        interrupt.sleep(30)
    assert time.monotonic() - start < 1


def test_sleep_returns_early_with_interrupted_when_stopped_meanwhile():
    timer = threading.Timer(0.05, interrupt.stop)
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            interrupt.sleep(30)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 2


def test_sleep_of_nothing_returns_immediately():
    start = time.monotonic()
    interrupt.sleep(0)
    interrupt.sleep(-1)
    assert time.monotonic() - start < 0.5


def test_sleep_of_nothing_still_sees_a_stop():
    """A retry whose deadline has come (a zero wait) must not miss the user's Ctrl-C."""
    interrupt.stop()
    with pytest.raises(Interrupted):
        interrupt.sleep(0)


def test_pool_runs_tasks_on_named_daemon_threads_and_returns_results():
    with WorkerPool(2, "unit") as pool:
        futures = [pool.submit(lambda x: (x * x, threading.current_thread().name,
                                          threading.current_thread().daemon), n) for n in range(5)]
        results = [f.result(timeout=5) for f in futures]
    assert [r[0] for r in results] == [0, 1, 4, 9, 16]
    assert {r[1] for r in results} <= {"unit-0", "unit-1"}
    assert all(r[2] for r in results)


def test_pool_with_no_workers_still_has_one():
    with WorkerPool(0, "zero") as pool:
        assert pool.submit(threading.current_thread).result(timeout=5).name == "zero-0"


def test_pool_tasks_run_in_a_copy_of_the_submitters_context():
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    token = var.set("submitter")
    try:
        with WorkerPool(1) as pool:
            def task():
                seen = var.get()
                var.set("changed in task")
                return seen
            assert pool.submit(task).result(timeout=5) == "submitter"
        assert var.get() == "submitter"  # the task's change stays in its copy
    finally:
        var.reset(token)


def test_pool_hands_exceptions_including_interrupts_to_the_future():
    with WorkerPool(1) as pool:
        def fail():
            raise ValueError("bad")

        def interrupted():
            raise Interrupted("stopped")
        bad, stopped = pool.submit(fail), pool.submit(interrupted)
        with pytest.raises(ValueError, match="bad"):
            bad.result(timeout=5)
        with pytest.raises(Interrupted, match="stopped"):
            stopped.result(timeout=5)
        assert pool.submit(lambda: "still working").result(timeout=5) == "still working"


def test_submit_after_shutdown_is_refused():
    pool = WorkerPool(1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)


def _blocked_pool():
    """A one-thread pool whose thread is busy until the returned event is set, and its running future."""
    gate, started = threading.Event(), threading.Event()
    pool = WorkerPool(1)

    def busy():
        started.set()
        gate.wait(5)
        return "first"
    running = pool.submit(busy)
    assert started.wait(5)
    return pool, gate, running


def test_shutdown_with_cancel_never_starts_queued_tasks_but_lets_the_running_one_finish():
    pool, gate, running = _blocked_pool()
    queued = pool.submit(lambda: "never")
    pool.shutdown(cancel=True)
    assert queued.cancelled()
    gate.set()
    assert running.result(timeout=5) == "first"


def test_shutdown_without_cancel_still_runs_queued_tasks():
    pool, gate, running = _blocked_pool()
    queued = pool.submit(lambda: "second")
    start = time.monotonic()
    pool.shutdown()
    assert time.monotonic() - start < 1  # does not wait
    gate.set()
    assert queued.result(timeout=5) == "second"
    assert running.result(timeout=5) == "first"


def test_leaving_the_with_block_on_an_exception_cancels_queued_tasks():
    pool, gate, running = _blocked_pool()
    with pytest.raises(KeyboardInterrupt), pool:
        queued = pool.submit(lambda: "never")
        raise KeyboardInterrupt
    assert queued.cancelled()
    gate.set()
    assert running.result(timeout=5) == "first"


def test_finish_in_flight_keeps_the_futures_done_within_the_grace_period():
    pool, gate, running = _blocked_pool()
    try:
        done: Future = Future()
        done.set_result("done")
        cancelled: Future = Future()
        cancelled.cancel()
        start = time.monotonic()
        kept = finish_in_flight([done, cancelled, running], grace=0.1)
        elapsed = time.monotonic() - start
        assert kept == [done]  # the running one is left behind once the grace is over
        assert 0.05 <= elapsed < 2
    finally:
        gate.set()
        pool.shutdown()
    assert finish_in_flight([running], grace=5) == [running]


def test_finish_in_flight_returns_at_once_when_all_are_done():
    futures = []
    for n in range(3):
        f: Future = Future()
        f.set_result(n)
        futures.append(f)
    start = time.monotonic()
    assert finish_in_flight(futures, grace=30) == futures
    assert time.monotonic() - start < 1


def test_map_threads_keeps_order_and_runs_every_item_at_once():
    """All items run together: a barrier for all of them is passed only if they are concurrent."""
    barrier = threading.Barrier(4, timeout=5)

    def one(x):
        barrier.wait()
        return x * 10
    assert map_threads(one, [3, 1, 4, 2]) == [30, 10, 40, 20]


def test_map_threads_of_nothing_is_empty_and_errors_propagate():
    assert map_threads(lambda x: x, []) == []

    def one(x):
        if x == 2:
            raise ValueError("two")
        return x
    with pytest.raises(ValueError, match="two"):
        map_threads(one, [1, 2, 3])


def test_a_pool_shut_down_with_cancel_stops_its_running_tasks_and_no_other_work():
    started = threading.Event()

    def busy() -> str:
        started.set()
        for _ in range(500):  # a round of model requests: each one checks first
            interrupt.check()
            time.sleep(0.01)
        return "ran to the end"

    pool, other = interrupt.WorkerPool(1, "abandoned"), interrupt.WorkerPool(1, "other")
    running, queued = pool.submit(busy), pool.submit(busy)
    assert started.wait(2)
    unrelated = other.submit(lambda: (time.sleep(0.2), interrupt.stopping())[1])
    pool.shutdown(cancel=True)
    with pytest.raises(interrupt.Interrupted):
        running.result(timeout=2)  # stopped at its next check, long before its 5 s
    assert queued.cancelled() and not interrupt.stopping()  # the process-wide flag is untouched
    assert unrelated.result(timeout=2) is False  # another pool's task sees no stop
    other.shutdown()


def test_a_nested_pools_tasks_see_the_outer_pools_cancel():
    outer = interrupt.WorkerPool(1, "outer")
    seen = {}

    def task() -> None:
        inner = interrupt.WorkerPool(1, "inner")
        seen["inner"] = inner.submit(lambda: (time.sleep(0.3), interrupt.stopping())[1])
        time.sleep(0.1)
        inner.shutdown()

    outer.submit(task).result(timeout=2)
    outer.shutdown(cancel=True)
    assert seen["inner"].result(timeout=2) is True
