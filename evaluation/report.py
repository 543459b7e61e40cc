"""A summary table for the terminal: each score with its 95% interval, and the chance level of the questions."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _title(metric: str) -> str:
    return metric.upper() if len(metric) <= 3 else metric


def summary_table(summary: dict[str, Any], metrics: tuple[str, ...], title: str | None = None) -> Table:
    """Rows: each group, then overall; columns: n, each metric (percent over answered rows) and its 95% interval.

    When rows ended in an error, an `errors` column and each metric over all rows (errors counted as
    wrong) are added. For tasks with closed options the caption gives the chance level of these questions.
    """
    errors = bool(summary.get("errors"))
    table = Table(title=title or f"{summary['task']} results")
    table.add_column("group")
    table.add_column("n", justify="right")
    if errors:
        table.add_column("errors", justify="right")
    for m in metrics:
        table.add_column(_title(m), justify="right")
        table.add_column(f"{_title(m)} 95% CI", justify="right")
    if errors:
        for m in metrics:
            table.add_column(f"{_title(m)} (all rows)", justify="right")

    def cells(values: dict[str, Any]) -> list[str]:
        out = [str(values["n"])]
        if errors:
            out.append(str(values.get("errors", 0)))
        for m in metrics:
            out += [_cell(values.get(m)), interval_text((values.get("intervals") or {}).get(m))]
        if errors:
            out += [_cell((values.get("all_rows") or values).get(m)) for m in metrics]
        return out

    for name, values in summary.get("groups", {}).items():
        table.add_row(str(name), *cells(values))
    table.add_row("overall", *cells(summary), style="bold")
    if chance := chance_text(summary):
        table.caption = chance
    return table


def interval_text(interval: Any) -> str:
    """`[lo, hi]` of a stored interval, "—" when there is none."""
    if not interval or len(interval) != 2 or any(v is None for v in interval):
        return "—"
    return f"[{interval[0]:.1f}, {interval[1]:.1f}]"


def chance_text(summary: dict[str, Any]) -> str | None:
    """The chance levels of a summary's questions in words, or None for tasks without closed options."""
    chance = summary.get("chance") or {}
    if chance.get("uniform") is None:
        return None
    text = f"chance on these {summary.get('answered', summary.get('n'))} questions: {chance['uniform']:.1f}% " \
           "(uniform guess among the options)"
    if chance.get("first_option") is not None:
        text += f", {chance['first_option']:.1f}% (always the first option)"
    return text


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
