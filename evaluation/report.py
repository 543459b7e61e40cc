"""A summary table for the terminal."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def summary_table(summary: dict[str, Any], metrics: tuple[str, ...], title: str | None = None) -> Table:
    """Rows: each group, then overall; columns: n and each metric (percent over answered rows).

    When rows ended in an error, an `errors` column and each metric over all rows (errors
    counted as wrong) are added.
    """
    errors = bool(summary.get("errors"))
    table = Table(title=title or f"{summary['task']} results")
    table.add_column("group")
    table.add_column("n", justify="right")
    if errors:
        table.add_column("errors", justify="right")
    for m in metrics:
        table.add_column(m.upper() if len(m) <= 3 else m, justify="right")
    if errors:
        for m in metrics:
            table.add_column(f"{m.upper() if len(m) <= 3 else m} (all rows)", justify="right")

    def cells(values: dict[str, Any]) -> list[str]:
        out = [str(values["n"])]
        if errors:
            out.append(str(values.get("errors", 0)))
        out += [_cell(values.get(m)) for m in metrics]
        if errors:
            out += [_cell((values.get("all_rows") or values).get(m)) for m in metrics]
        return out

    for name, values in summary.get("groups", {}).items():
        table.add_row(str(name), *cells(values))
    table.add_row("overall", *cells(summary), style="bold")
    return table


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
