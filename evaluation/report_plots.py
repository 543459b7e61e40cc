"""The run report's figures, drawn with matplotlib's Agg canvas: scores per evaluation, time per
stage, behaviour (valid actions, evidence recall, finished) per evaluation, and the learning curve."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evaluation.report_format import (
    duration,
    labelled_evaluations,
    metric_title,
    percent,
    sorted_groups,
)
from evaluation.run_loading import Run


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # render with Agg, whatever pyplot's backend is
    return fig


def plot_scores(runs: Sequence[Run], path: Path) -> Path | None:
    """Grouped bars: each evaluation's main metric overall (and per group when there are several), with
    its 95% interval as an error bar and, for tasks with closed options, a dashed line at chance.

    One panel per task. Returns None, writing nothing, when no evaluation has a summary.
    """
    panels = []
    for task_name in dict.fromkeys(r.task.name for r in runs):
        task_runs = [r for r in runs if r.task.name == task_name]
        bars = [(f"{r.title} / {e.label}" if len(runs) > 1 else e.label, e.summary)
                for r in task_runs for e in r.evaluations if e.summary is not None]
        if bars:
            groups = sorted_groups([e for r in task_runs for e in r.evaluations])
            panels.append((task_runs[0].task, bars, (groups + ["overall"]) if len(groups) > 1 else ["overall"]))
    if not panels:
        return None
    width = max(6.0, max(len(cats) * (0.9 + 0.35 * len(bars)) for _, bars, cats in panels))
    fig = new_figure(width, 3.6 * len(panels) + 0.6)
    for i, (task, bars, categories) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        metric = task.reward_metric
        step = 0.8 / len(bars)
        for j, (label, summary) in enumerate(bars):
            parts = [summary if cat == "overall" else ((summary.get("groups") or {}).get(cat) or {})
                     for cat in categories]
            # a group this evaluation has no questions of gets no bar (NaN), not a misleading zero
            values = [part.get(metric) for part in parts]
            heights = [float("nan") if v is None else float(v) for v in values]
            xs = [k - 0.4 + step * (j + 0.5) for k in range(len(categories))]
            container = ax.bar(xs, heights, width=step * 0.95, label=label,
                               yerr=_error_bars(heights, [(part.get("intervals") or {}).get(metric) for part in parts]),
                               error_kw={"elinewidth": 0.8, "capsize": 2})
            ax.bar_label(container, labels=["" if v is None else percent(v) for v in values], fontsize=7, padding=1)
        _chance_lines(ax, bars, categories)
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories)
        ax.set_ylim(0, 105)
        ax.set_ylabel(f"{metric_title(metric)} (%)")
        ax.set_title(f"{task.name}: {metric_title(metric)} per evaluation")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _error_bars(heights: list[float], intervals: list) -> list[list[float]]:
    """matplotlib's (below, above) error lengths from stored 95% intervals (none where there is no interval)."""
    below, above = [], []
    for h, iv in zip(heights, intervals):
        ok = iv and len(iv) == 2 and None not in iv and h == h
        below.append(max(0.0, h - iv[0]) if ok else 0.0)
        above.append(max(0.0, iv[1] - h) if ok else 0.0)
    return [below, above]


def _chance_lines(ax, bars: list, categories: list[str]) -> None:
    """A dashed line at the chance level (uniform guess) of each category's questions, where the task has one."""
    labelled = False
    for k, cat in enumerate(categories):
        for _, summary in bars:
            part = summary if cat == "overall" else ((summary.get("groups") or {}).get(cat) or {})
            level = (part.get("chance") or {}).get("uniform")
            if level is not None:
                ax.hlines(level, k - 0.45, k + 0.45, colors="black", linestyles="dashed", linewidth=1,
                          label=None if labelled else "chance (uniform guess)")
                labelled = True
                break


def plot_stage_times(runs: Sequence[Run], path: Path) -> Path | None:
    """Horizontal bars of each stage's seconds, the runs side by side; None when no stage has a time."""
    stages = list(dict.fromkeys(str(s["name"]) for r in runs for s in r.stages if s.get("seconds") is not None))
    if not stages:
        return None
    fig = new_figure(8.0, 1.2 + 0.3 * len(stages) * max(1, len(runs)))
    ax = fig.add_subplot(1, 1, 1)
    step = 0.8 / len(runs)
    any_failed = False
    for j, run in enumerate(runs):
        by_name = {str(s["name"]): s for s in run.stages}
        ys, widths, failed = [], [], []
        for k, name in enumerate(stages):
            st = by_name.get(name)
            if st is None or st.get("seconds") is None:
                continue
            ys.append(k - 0.4 + step * (j + 0.5))
            widths.append(float(st["seconds"]))
            failed.append(st.get("status") == "failed")
        bars = ax.barh(ys, widths, height=step * 0.9, label=run.title)
        ax.bar_label(bars, labels=[duration(w) for w in widths], fontsize=7, padding=2)
        for bar, is_failed in zip(bars, failed):
            if is_failed:
                any_failed = True
                bar.set_hatch("//")
                bar.set_edgecolor("red")
    ax.set_yticks(range(len(stages)))
    ax.set_yticklabels(stages)
    ax.invert_yaxis()  # pipeline order from the top
    ax.set_xlabel("seconds")
    ax.margins(x=0.15)  # room for the labels
    ax.set_title("Time per stage" + (" (hatched red: failed)" if any_failed else ""))
    ax.grid(axis="x", alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path



def plot_behaviour(runs: Sequence[Run], path: Path) -> Path | None:
    """Bars of valid-action rate and evidence recall per evaluation; None when no summary has diagnostics."""
    bars = [(label, ev.summary["diagnostics"]) for label, ev in labelled_evaluations(runs)
            if isinstance((ev.summary or {}).get("diagnostics"), dict)]
    if not bars:
        return None
    measures = [("valid_action_rate", "valid actions"), ("evidence_recall", "evidence recall"),
                ("finish_rate", "finished")]
    fig = new_figure(max(6.0, 1.2 * len(measures) * (0.8 + 0.3 * len(bars))), 3.8)
    ax = fig.add_subplot(1, 1, 1)
    step = 0.8 / len(bars)
    for j, (label, diag) in enumerate(bars):
        values = [diag.get(key) for key, _ in measures]
        xs = [k - 0.4 + step * (j + 0.5) for k in range(len(measures))]
        container = ax.bar(xs, [float("nan") if v is None else float(v) for v in values], width=step * 0.95,
                           label=label)
        ax.bar_label(container, labels=["" if v is None else percent(v) for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(measures)))
    ax.set_xticklabels([title for _, title in measures])
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("Behaviour per evaluation")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_learning_curve(runs: Sequence[Run], path: Path) -> Path | None:
    """Score (with its 95% interval) against kept trajectories, one line per run with a `curve` in run.json
    (autoact.curve: zero-shot at 0, groups trained on the first k kept, AutoAct on all); a dashed line at
    chance where the task has one. None when no run has a curve."""
    lines = []
    for run in runs:
        by_label = {e.label: e for e in run.evaluations if e.summary is not None}
        points = [(int(p["kept"]), by_label[str(p["evaluation"])].summary) for p in run.data.get("curve") or []
                  if str(p.get("evaluation")) in by_label]
        if points:
            lines.append((run, points))
    if not lines:
        return None
    fig = new_figure(6.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for run, points in lines:
        metric = run.task.reward_metric
        xs = [k for k, _ in points]
        ys = [float("nan") if s.get(metric) is None else float(s[metric]) for _, s in points]
        errors = _error_bars(ys, [(s.get("intervals") or {}).get(metric) for _, s in points])
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=f"{run.title} ({run.task.name})")
        for x, y in zip(xs, ys):
            ax.annotate(percent(y), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        chance = (points[0][1].get("chance") or {}).get("uniform")
        if chance is not None:
            ax.axhline(chance, color="black", linestyle="dashed", linewidth=1, label="chance (uniform guess)")
    ax.set_xlabel("kept trajectories trained on")
    ax.set_ylabel(f"{metric_title(lines[0][0].task.reward_metric)} (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Learning curve: one synthesized pool, nested subsets")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
