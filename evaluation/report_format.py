"""How the run report shows values, shared by its Markdown, plots and terminal lines: metric order
and titles, percentages, durations, the order of groups, evaluation labels and the resume hint.

Scale of the scores: `Task.summarize` stores every metric as a mean in percent (0 to 100,
rounded to two decimals; e.g. `"em": 50.0` for one right answer out of two), so the numbers are
shown as they are, with one decimal. Nothing is rescaled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from evaluation.run_loading import Evaluation, Run
from tasks.base import Task

RESUME_HINT = ("run the same `autoact pipeline` command again to resume the run: "
               "finished stages are kept and the pipeline continues from the failed one")

#: How a metric of `Task.metrics` is titled in tables and plots.
METRIC_TITLES = {"em": "EM", "f1": "F1", "correct": "Acc"}
#: Groups with a natural order that alphabetical order would break (HotpotQA difficulty levels).
GROUP_ORDER = ("easy", "medium", "hard")


def metric_order(task: Task) -> list[str]:
    """The task's metrics, main (reward) metric first: F1 then EM for HotpotQA, accuracy for ScienceQA."""
    return [task.reward_metric] + [m for m in task.metrics if m != task.reward_metric]


def metric_title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric)


def percent(value: Any) -> str:
    """A summary value (already in percent) with one decimal, or an em dash when absent."""
    if value is None:
        return "—"
    return f"{float(value):.1f}"


def duration(seconds: Any) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min; an em dash when unknown."""
    if seconds is None:
        return "—"
    s = float(seconds)
    if round(s, 1) < 60:
        return f"{s:.1f} s"
    if round(s) < 3600:
        minutes, secs = divmod(round(s), 60)
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(round(s / 60), 60)
    return f"{hours} h {minutes:02d} min"


def _group_key(name: str) -> tuple:
    rank = GROUP_ORDER.index(name) if name in GROUP_ORDER else len(GROUP_ORDER)
    natural = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p)
    return rank, natural


def sorted_groups(evaluations: Sequence[Evaluation]) -> list[str]:
    """Every group that appears in any of the summaries, in a readable order."""
    names = {str(g) for e in evaluations if e.summary for g in (e.summary.get("groups") or {})}
    return sorted(names, key=_group_key)


def labelled_evaluations(runs: Sequence[Run]) -> list[tuple[str, Evaluation]]:
    """(label, evaluation) for every evaluation of the runs; the label names the run when there are several."""
    return [(f"{r.title} / {e.label}" if len(runs) > 1 else e.label, e) for r in runs for e in r.evaluations]


def design_label(summary: Mapping[str, Any] | None) -> str | None:
    """`name: description` of the design an `autoact eval` summary records (graph.designs), None if none."""
    settings = (summary or {}).get("settings") or {}
    name = settings.get("baseline") or settings.get("agent")
    if not name:
        return None
    from graph.designs import (
        DESIGNS,  # the registry (and LangGraph) only for summaries that name a design
    )

    entry = DESIGNS.get(str(name))
    label = f"{name}: {entry.description}" if entry else str(name)
    if settings.get("baseline_train"):
        label += f"; answers counted in {settings['baseline_train']}"
    return label


def cell(value: Any) -> str:
    """Text safe inside one Markdown table cell."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines
