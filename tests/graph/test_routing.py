"""The group graph's conditional edges: which node follows plan, execute and reflect."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from graph.routing import after_execute, after_plan, after_reflect


def runtime(max_steps: int) -> SimpleNamespace:
    """Just what the routing reads from a langgraph Runtime: `.context.limits.max_steps`."""
    return SimpleNamespace(context=SimpleNamespace(limits=SimpleNamespace(max_steps=max_steps)))


def steps(n: int) -> list[dict[str, str]]:
    return [{"thought": f"t{i}", "action": "Search", "argument": "x", "observation": "o"} for i in range(n)]


@pytest.mark.parametrize("state, expected", [
    ({"pending": {"thought": "t", "action": "Search"}}, "tool"),
    ({}, "tool"),  # no pending step yet: still asks the tool agent
    ({"pending": {"action": "Search", "error": "cannot read the action"}}, "execute"),
    ({"pending": {"action": "Reflect"}}, "execute"),  # a misplaced Reflect is reported by execute
    ({"pending": {"action": "Search", "error": None}}, "tool"),  # an empty error is no error
    ({"halted": True, "pending": {"action": "Search"}}, "halt"),
    ({"halted": True, "pending": {"action": "Reflect", "error": "x"}}, "halt"),  # halting wins
])
def test_after_plan(state: dict, expected: str) -> None:
    """after_plan: halt when halted, execute on an error or a Reflect, the tool agent otherwise."""
    assert after_plan(state) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("state, max_steps, expected", [
    ({"phase": "plan", "steps": steps(1)}, 3, "plan"),
    ({"phase": "reflect", "steps": steps(1)}, 3, "reflect"),
    ({"phase": "plan", "steps": steps(3)}, 3, "halt"),  # the step budget is spent
    ({"phase": "reflect", "steps": steps(4)}, 3, "halt"),
    ({"phase": "done", "steps": steps(3)}, 3, "end"),  # finishing on the last step still ends
    ({"phase": "plan"}, 1, "plan"),  # no steps recorded yet
    ({"phase": "plan", "steps": None}, 1, "plan"),
    ({"phase": "plan", "steps": steps(2)}, 3, "plan"),  # one below the limit
])
def test_after_execute(state: dict, max_steps: int, expected: str) -> None:
    """after_execute: end when done, halt at max_steps, else reflect or plan by phase."""
    assert after_execute(state, runtime(max_steps)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("state, max_steps, expected", [
    ({"phase": "plan", "steps": steps(2)}, 5, "plan"),  # Reflect[wrong]: keep working
    ({"phase": "done", "steps": steps(2)}, 5, "end"),  # Reflect[right]
    ({"phase": "done", "steps": steps(5)}, 5, "end"),
    ({"phase": "plan", "steps": steps(5)}, 5, "halt"),
    ({"phase": "plan", "steps": steps(4)}, 5, "plan"),
])
def test_after_reflect(state: dict, max_steps: int, expected: str) -> None:
    """after_reflect: end when done, halt at max_steps, plan again otherwise."""
    assert after_reflect(state, runtime(max_steps)) == expected  # type: ignore[arg-type]
