"""The run report in the terminal: overall scores per evaluation with their 95% intervals and chance level,
then each run's stage state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.report import interval_text
from evaluation.report_format import RESUME_HINT, metric_order, metric_title, percent
from evaluation.run_loading import load_runs


def terminal_summary(run_dirs: Sequence[Path | str]) -> list[Any]:
    """Rich renderables for the terminal: overall scores per evaluation, then each run's stage state."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    runs = load_runs(run_dirs)
    table = Table(title="evaluations (percent)")
    for col in ("run", "evaluation", "n", "scores"):
        table.add_column(col, justify="right" if col == "n" else "left")
    for run in runs:
        metrics = metric_order(run.task)
        for ev in run.evaluations:
            if ev.summary is None:
                table.add_row(run.title, ev.label, "", "not run")
            else:
                intervals = ev.summary.get("intervals") or {}
                scores = "  ".join(f"{metric_title(m)} {percent(ev.summary.get(m))}"
                                   + (f" {interval_text(intervals[m])}" if intervals.get(m) else "") for m in metrics)
                if chance := (ev.summary.get("chance") or {}).get("uniform"):
                    scores += f"  (chance {chance:.1f})"
                table.add_row(run.title, ev.label, str(ev.summary.get("n", "")), scores)
    out: list[Any] = [table]
    for run in runs:
        statuses = [str(s.get("status")) for s in run.stages]
        failed = [str(s["name"]) for s in run.stages if s.get("status") == "failed"]
        line = escape(f"{run.title}: {statuses.count('done')}/{len(statuses)} stages done")
        if failed:
            line += f", [red]{escape('failed: ' + ', '.join(failed))}[/] ({escape(RESUME_HINT)})"
        out.append(Text.from_markup(line))
    return out
