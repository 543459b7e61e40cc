"""`autoact report`: one readable Markdown report (with its PNG plots) for one or more pipeline runs.

`write_report` puts `report.md`, `scores.png`, `stage_times.png`, `behaviour.png` (and, for a run
with a learning curve, `learning_curve.png`) side by side, with the episode browser `view.html`
(`evaluation.viewer`)
(in the first run directory unless told otherwise) and returns the path of `report.md`;
`terminal_summary` gives the lines `autoact report` prints.

This module composes the pieces: `evaluation.run_loading` (run directories, run.json, summaries,
the liveness check), `evaluation.report_format` (how values are shown), `evaluation.report_markdown`
(the text of report.md), `evaluation.report_plots` (the figures) and `evaluation.report_terminal`
(the terminal summary).
"""

from __future__ import annotations

from pathlib import Path

from evaluation.report_markdown import render_report
from evaluation.report_plots import (
    plot_behaviour,
    plot_learning_curve,
    plot_scores,
    plot_stage_times,
)
from evaluation.run_loading import load_runs
from evaluation.viewer import VIEW_NAME, write_viewer

REPORT_NAME = "report.md"
SCORES_PNG = "scores.png"
STAGE_TIMES_PNG = "stage_times.png"
BEHAVIOUR_PNG = "behaviour.png"
CURVE_PNG = "learning_curve.png"


def write_report(run_dirs: list[Path], out: Path | None = None) -> Path:
    """Write report.md and its plots for the runs in `run_dirs`; return the path of report.md.

    `out` is the report file (an existing directory means `DIR/report.md`); by default
    `report.md` in the first run directory. The PNG files are written beside it.
    """
    runs = load_runs(run_dirs)
    out = Path(out) if out is not None else runs[0].directory / REPORT_NAME
    if out.is_dir():
        out = out / REPORT_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    plots = {
        "Scores": plot_scores(runs, out.parent / SCORES_PNG),
        "Time per stage": plot_stage_times(runs, out.parent / STAGE_TIMES_PNG),
        "Behaviour": plot_behaviour(runs, out.parent / BEHAVIOUR_PNG),
    }
    if curve := plot_learning_curve(runs, out.parent / CURVE_PNG):  # only runs made with --curve have one
        plots["Learning curve"] = curve
    out.write_text(render_report(runs, plots, viewer=VIEW_NAME), encoding="utf-8")
    write_viewer(run_dirs, out.parent / VIEW_NAME)  # after report.md, which the page shows
    return out
