"""What a summary carries besides its scores: a 95% interval for each, and the chance level of its questions.

`add_yardsticks` extends a task's summary (overall and per group) with `intervals` (the bootstrap
interval of each metric over the answered questions, `evaluation.statistics`) and, for tasks with
closed options, `chance`: the score of a uniform guess and of always answering the first option on
those very questions.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from evaluation.statistics import bootstrap_interval, mean_percent
from tasks.base import Task, group_rows


def _yardsticks(task: Task, results: Sequence[Mapping[str, Any]],
                rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    answered = [r for r in results if not r.get("error")]
    out: dict[str, Any] = {"intervals": {m: _listed(bootstrap_interval([float(r.get(m) or 0.0) for r in answered]))
                                         for m in task.metrics}}
    guesses = [task.chance(rows[str(r["id"])]) for r in answered if str(r["id"]) in rows]
    if guesses and all(guesses):
        out["chance"] = {kind: mean_percent([g[kind] for g in guesses]) for kind in guesses[0]}
    return out


def add_yardsticks(summary: dict[str, Any], task: Task, results: Sequence[Mapping[str, Any]],
                   task_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`summary` (from `task.summarize(results)`) with intervals and chance levels, overall and per group."""
    rows = {str(r["id"]): r for r in task_rows}
    summary.update(_yardsticks(task, results, rows))
    by_group = group_rows(results)
    for name, values in (summary.get("groups") or {}).items():
        values.update(_yardsticks(task, by_group.get(name, []), rows))
    return summary


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return list(interval) if interval is not None else None  # JSON's form, so a summary reads back equal
