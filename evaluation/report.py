"""A summary table for the terminal."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def summary_table(summary: dict[str, Any], metrics: tuple[str, ...], title: str | None = None) -> Table:
    """Rows: each group, then overall; columns: n and each metric (percent)."""
    table = Table(title=title or f"{summary['task']} results")
    table.add_column("group")
    table.add_column("n", justify="right")
    for m in metrics:
        table.add_column(m.upper() if len(m) <= 3 else m, justify="right")
    for name, values in summary.get("groups", {}).items():
        table.add_row(name, str(values["n"]), *(f"{values[m]:.2f}" for m in metrics))
    table.add_row("overall", str(summary["n"]), *(f"{summary[m]:.2f}" for m in metrics), style="bold")
    return table
