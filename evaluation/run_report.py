"""`autoact report`: one readable Markdown report (with two PNG plots) for one or more pipeline runs.

A run directory holds `run.json` (written by `autoact pipeline`): the task, preset, model,
settings, versions, start and end times, every stage with its status, time and counts, and
`evaluations`, a map from a label ("AutoAct", "Meta-Agent zero-shot", ...) to a directory,
relative to the run, with the `summary.json` that `evaluation.runner.evaluate` wrote.

Scale of the scores: `Task.summarize` stores every metric as a mean in percent (0 to 100,
rounded to two decimals; e.g. `"em": 50.0` for one right answer out of two), so the numbers are
shown as they are, with one decimal. Nothing is rescaled.

`write_report` puts `report.md`, `scores.png` and `stage_times.png` side by side (in the first
run directory unless told otherwise) and returns the path of `report.md`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import AutoactError, DataError
from core.jsonl import read_json
from tasks import get_task
from tasks.base import Task

REPORT_NAME = "report.md"
SCORES_PNG = "scores.png"
STAGE_TIMES_PNG = "stage_times.png"
BEHAVIOUR_PNG = "behaviour.png"
RESUME_HINT = ("run the same `autoact pipeline` command again to resume the run: "
               "finished stages are kept and the pipeline continues from the failed one")

#: How a metric of `Task.metrics` is titled in tables and plots.
METRIC_TITLES = {"em": "EM", "f1": "F1", "correct": "Acc"}
#: Groups with a natural order that alphabetical order would break (HotpotQA difficulty levels).
GROUP_ORDER = ("easy", "medium", "hard")

# Reference numbers from the AutoAct paper (Qiao et al., 2024, arXiv 2401.05268), keyed by task.
# Each entry: {"source": "Table N, arXiv 2401.05268vK", "metric": title of the metric,
#              "columns": [group names..., "overall"],
#              "rows": [{"model": "Llama-2-13B-chat", "method": "AutoAct", "values": [...]}, ...]}
# Only numbers read in the paper's results table belong here. It is empty: when this module was
# written the table could not be read from any source at hand (only the first part of the paper's
# HTML page was available), and numbers were not to be filled in from memory. The report says so.
PAPER_REFERENCE: dict[str, dict[str, Any]] = {}


# --------------------------------------------------------------------------- loading


@dataclass
class Evaluation:
    """One evaluation of a run: its label, where its summary lives, and the summary if there is one."""

    label: str
    path: Path
    summary: dict[str, Any] | None = None


@dataclass
class Run:
    """A parsed run directory."""

    directory: Path
    data: dict[str, Any]
    task: Task
    evaluations: list[Evaluation] = field(default_factory=list)
    title: str = ""  # the name shown in tables (the run's name, made unique among the compared runs)

    @property
    def name(self) -> str:
        return str(self.data.get("name") or self.directory.name)

    @property
    def stages(self) -> list[dict[str, Any]]:
        return self.data["stages"]

    def process_gone(self) -> bool:
        """True when the invocation that last wrote run.json ran on this host and its process has ended."""
        last = (self.data.get("history") or [{}])[-1]
        if not last.get("pid") or last.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(last["pid"]), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return True
        except PermissionError:  # it exists, owned by someone else
            pass
        return False


def load_run(directory: Path | str) -> Run:
    """Read `DIR/run.json` and the evaluation summaries it points to.

    A missing or malformed `run.json` (or `summary.json`) raises DataError naming the file; an
    evaluation whose directory or `summary.json` does not exist is kept with `summary=None`.
    """
    directory = Path(directory)
    if directory.name == "run.json" and directory.is_file():
        directory = directory.parent
    path = directory / "run.json"
    if not path.is_file():
        collected = _collect_evaluations(directory)
        if collected is None:
            raise DataError(f"{path}: not found; give the directory of a pipeline run (it holds run.json), "
                            "an `autoact eval --out` directory, or a directory of them")
        data = collected
        path = directory
    else:
        data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(data).__name__}")
    if not isinstance(data.get("task"), str):
        raise DataError(f"{path}: 'task' is missing or not a string")
    try:
        task = get_task(data["task"])
    except AutoactError as err:
        raise DataError(f"{path}: {err}") from err
    stages = data.setdefault("stages", [])
    if not isinstance(stages, list) or not all(isinstance(s, dict) and "name" in s for s in stages):
        raise DataError(f"{path}: 'stages' must be a list of objects that each have a 'name'")
    for key in ("settings", "versions", "evaluations"):
        if not isinstance(data.setdefault(key, {}) or {}, dict):
            raise DataError(f"{path}: '{key}' must be a JSON object")
        data[key] = data[key] or {}

    run = Run(directory, data, task)
    for label, rel in data["evaluations"].items():
        eval_dir = directory / str(rel)
        summary_path = eval_dir / "summary.json"
        summary = None
        if summary_path.is_file():
            summary = read_json(summary_path)
            if not isinstance(summary, dict) or "n" not in summary:
                raise DataError(f"{summary_path}: not an evaluation summary (expected an object with 'n')")
        run.evaluations.append(Evaluation(str(label), eval_dir, summary))
    # An evaluation stage that did not finish (failed, running) has no entry in `evaluations` yet:
    # list it too, as not run.
    known = {e.path.resolve() for e in run.evaluations}
    for stage in stages:
        stage_name = str(stage["name"])
        if (stage_name.startswith("eval-") and stage.get("status") not in ("done", "skipped")
                and (directory / "eval" / stage_name[5:]).resolve() not in known):
            label = f"{stage_name} (stage {stage.get('status') or 'not finished'})"
            run.evaluations.append(Evaluation(label, directory / "eval" / stage_name[5:]))
    return run


def _collect_evaluations(directory: Path) -> dict[str, Any] | None:
    """A run record for evaluations made outside a pipeline: `autoact eval --out DIR` (DIR holds
    `summary.json`), or a directory of such directories (one row each, named by its directory).
    None when there is no summary; a DataError when the summaries disagree on the task."""
    if (directory / "summary.json").is_file():
        found = {directory.name: directory}
    elif directory.is_dir():
        found = {d.name: d for d in sorted(directory.iterdir()) if (d / "summary.json").is_file()}
    else:
        found = {}
    if not found:
        return None
    tasks = {}
    for name, d in found.items():
        summary = read_json(d / "summary.json")
        if not isinstance(summary, dict) or not isinstance(summary.get("task"), str):
            raise DataError(f"{d / 'summary.json'}: not an evaluation summary (no 'task')")
        tasks[name] = summary["task"]
    if len(set(tasks.values())) > 1:
        raise DataError(f"{directory}: its evaluations are of different tasks ({tasks}); report them separately")
    return {"name": directory.name, "task": next(iter(tasks.values())), "collection": True, "stages": [],
            "evaluations": {name: str(d.relative_to(directory)) if d != directory else "."
                            for name, d in found.items()}}


def load_runs(directories: Sequence[Path | str]) -> list[Run]:
    """Load every run; runs that share a name are told apart by their directory."""
    if not directories:
        raise DataError("no run directory given")
    runs = [load_run(d) for d in directories]
    names = [r.name for r in runs]
    for run in runs:
        run.title = run.name if names.count(run.name) == 1 else f"{run.name} ({run.directory})"
    return runs


# --------------------------------------------------------------------------- formatting helpers


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


def _cell(value: Any) -> str:
    """Text safe inside one Markdown table cell."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _scalar(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _counts(counts: Any) -> str:
    if not counts:
        return ""
    if not isinstance(counts, dict):
        return _scalar(counts)
    return ", ".join(f"{k}={_scalar(v)}" for k, v in counts.items())


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# --------------------------------------------------------------------------- report sections


def results_header(task: Task, groups: Sequence[str]) -> list[str]:
    """Column titles after the row label: each group's metrics, then overall, then counts."""
    metrics = metric_order(task)
    cols = [f"{g} {metric_title(m)}" for g in groups for m in metrics]
    cols += [f"overall {metric_title(m)}" for m in metrics]
    return cols + ["n", "halted", "errors"]


def results_row(task: Task, groups: Sequence[str], evaluation: Evaluation) -> list[str]:
    """One evaluation's cells (matching `results_header`); 'not run' when it has no summary."""
    metrics = metric_order(task)
    width = (len(groups) + 1) * len(metrics) + 3
    summary = evaluation.summary
    if summary is None:
        return ["not run"] + ["—"] * (width - 1)
    by_group = summary.get("groups") or {}
    cells = [percent((by_group.get(g) or {}).get(m)) for g in groups for m in metrics]
    cells += [percent(summary.get(m)) for m in metrics]
    cells += [str(summary.get("n", "—")), str(summary.get("halted", "—")), str(summary.get("errors", "—"))]
    return cells


def _run_section(run: Run) -> list[str]:
    data = run.data
    if data.get("collection"):
        return [f"## Evaluations `{run.title}`", "",
                f"`autoact eval` outputs in `{run.directory}` ({run.task.name}): "
                + ", ".join(f"`{e.label}`" for e in run.evaluations) + ".", ""]
    started, finished = data.get("started_at"), data.get("finished_at")
    t0, t1 = _parse_time(started), _parse_time(finished)
    wall = duration((t1 - t0).total_seconds()) if t0 and t1 else "—"
    lines = [f"## Run `{run.title}`", ""]
    lines += _table(["", ""], [
        ("directory", f"`{run.directory}`"),
        ("task", run.task.name),
        ("preset", data.get("preset") or "—"),
        ("model", data.get("model") or "—"),
        ("started", started or "—"),
        ("finished", finished or "not finished"),
        ("wall time", wall),
    ])
    versions = data["versions"]
    if versions:
        lines += ["", "Versions: " + ", ".join(f"{k} {_scalar(v)}" for k, v in versions.items())]
    lines += ["", "### Settings", ""]
    settings = data["settings"]
    if settings:
        lines += _table(["setting", "value"], [(k, _scalar(v)) for k, v in settings.items()])
    else:
        lines.append("No settings recorded.")
    lines += ["", "### Stages", ""]
    if not run.stages:
        return lines + ["No stage has run yet.", ""]
    rows, failed = [], []
    for st in run.stages:
        status = str(st.get("status") or "unknown")
        error = st.get("error")
        note = st.get("note")
        if status == "failed":
            failed.append(st)
            status = "**FAILED**"
        elif status == "running" and run.process_gone():
            status, note = "stopped", "its process ended without recording an end (killed); rerun the pipeline to resume"
        detail = str(error).strip().splitlines()[0] if error else (note or "")
        if len(detail) > 160:
            detail = detail[:157] + "..."
        rows.append((st["name"], status, duration(st.get("seconds")), _counts(st.get("counts")), detail))
    known = [float(s["seconds"]) for s in run.stages if s.get("seconds") is not None]
    if known:
        rows.append(("**total**", "", duration(sum(known)), "", ""))
    lines += _table(["stage", "status", "time", "counts", "error / note"], rows, right=(2,))
    for st in failed:
        lines += ["", f"> **Stage `{st['name']}` failed.** To continue, {RESUME_HINT}.", ">",
                  "> ```text"]
        lines += [f"> {line}" for line in str(st.get("error") or "(no error message recorded)").splitlines()]
        lines.append("> ```")
    return lines + [""]


def _results_section(runs: Sequence[Run]) -> list[str]:
    lines = ["## Results", "",
             ("Scores in percent (one decimal) from each evaluation's `summary.json`. For HotpotQA: F1 and "
              "exact match (EM) per difficulty level and overall; for ScienceQA: accuracy (Acc) per grade band "
              "and overall, over the questions answered. *n* is the number of questions, *halted* the episodes "
              "stopped by a step or context limit, *errors* the questions whose run failed (an endpoint "
              "error, say): they are not scored as wrong answers, and a rerun retries them."), ""]
    several = len(runs) > 1
    for task_name in dict.fromkeys(r.task.name for r in runs):
        task_runs = [r for r in runs if r.task.name == task_name]
        task = task_runs[0].task
        evaluations = [e for r in task_runs for e in r.evaluations]
        if len({r.task.name for r in runs}) > 1:
            lines += [f"### {task_name}", ""]
        if not evaluations:
            lines += ["No evaluation is recorded for " + ", ".join(f"`{r.title}`" for r in task_runs) + ".", ""]
            continue
        groups = sorted_groups(evaluations)
        rows = []
        for run in task_runs:
            for ev in run.evaluations:
                label = f"{run.title} / {ev.label}" if several else ev.label
                rows.append([label, *results_row(task, groups, ev)])
        header = ["evaluation", *results_header(task, groups)]
        lines += _table(header, rows, right=tuple(range(1, len(header))))
        lines.append("")
        lines += _error_notes(task, [(f"{r.title} / {e.label}" if several else e.label, e)
                                     for r in task_runs for e in r.evaluations])
    return lines


def _error_notes(task: Task, evaluations: Sequence[tuple[str, Evaluation]]) -> list[str]:
    """A line per evaluation with errored rows: the scores above leave them out; here they count as wrong."""
    notes = []
    for label, ev in evaluations:
        summary = ev.summary or {}
        if summary.get("errors") and isinstance(summary.get("all_rows"), dict):
            scores = ", ".join(f"{metric_title(m)} {percent(summary['all_rows'].get(m))}" for m in metric_order(task))
            notes.append(f"- {label}: {summary['errors']} of {summary.get('n')} questions ended in an error and "
                         f"are not scored above; over all {summary.get('n')} questions, errors counted as wrong: "
                         f"{scores}. Rerunning the evaluation retries them.")
    return [*notes, ""] if notes else []


BEHAVIOUR_COLUMNS = (("valid_action_rate", "valid actions"), ("finish_rate", "finished"),
                     ("reflect_right_rate", "Reflect right"), ("reflect_wrong_rate", "Reflect wrong"),
                     ("reflection_accuracy", "reflection correct"), ("evidence_recall", "evidence recall"),
                     ("evidence_all_rate", "all evidence"), ("steps_per_episode", "steps/episode"))


def _labelled_evaluations(runs: Sequence[Run]) -> list[tuple[str, Evaluation]]:
    return [(f"{r.title} / {e.label}" if len(runs) > 1 else e.label, e) for r in runs for e in r.evaluations]


def _behaviour_section(runs: Sequence[Run]) -> list[str]:
    """What the agents did (evaluation/diagnostics.py): the numbers that move when final scores do not."""
    rows = []
    for label, ev in _labelled_evaluations(runs):
        diag = (ev.summary or {}).get("diagnostics")
        if not isinstance(diag, dict):
            continue
        cells = [percent(diag[k]) if diag.get(k) is not None and k != "steps_per_episode"
                 else ("—" if diag.get(k) is None else f"{diag[k]:.1f}") for k, _ in BEHAVIOUR_COLUMNS]
        rows.append([label, *cells])
    if not rows:
        return []
    header = ["evaluation", *(title for _, title in BEHAVIOUR_COLUMNS)]
    return ["## Behaviour", "",
            ("Percent of actions that named a tool of the task and ran (valid actions), of episodes that "
             "proposed an answer (finished), of reflections that said right / wrong and that judged the answer "
             "correctly, and (HotpotQA) the share of gold supporting pages retrieved (evidence recall) and of "
             "episodes that retrieved all of them."), "",
            *_table(header, rows, right=tuple(range(1, len(header)))), ""]


def plot_behaviour(runs: Sequence[Run], path: Path) -> Path | None:
    """Bars of valid-action rate and evidence recall per evaluation; None when no summary has diagnostics."""
    bars = [(label, ev.summary["diagnostics"]) for label, ev in _labelled_evaluations(runs)
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


def _reference_section(runs: Sequence[Run]) -> list[str]:
    lines = ["## Reference values from the AutoAct paper", "",
             ("This section is for **reference values reported in the AutoAct paper** (Qiao et al., 2024, "
              "arXiv 2401.05268), not results of the runs above. The paper's agents are built on much larger "
              "models (Llama-2 chat models of 7B, 13B and 70B parameters) than the small models these runs "
              "use, so its numbers show the scale reached there and are not directly comparable."), ""]
    for task_name in dict.fromkeys(r.task.name for r in runs):
        ref = PAPER_REFERENCE.get(task_name)
        if not ref or not ref.get("rows"):
            lines += [(f"- {task_name}: reference values were not available when this report module was "
                       "written (the paper's results table could not be read); see the paper's main results "
                       "table."), ""]
            continue
        lines += [f"### {task_name}: {ref['metric']} (source: {ref['source']})", ""]
        header = ["model", "method", *(f"{c} {ref['metric']}" for c in ref["columns"])]
        rows = [[r["model"], r["method"], *(percent(v) for v in r["values"])] for r in ref["rows"]]
        lines += _table(header, rows, right=tuple(range(2, len(header))))
        lines.append("")
    return lines


# --------------------------------------------------------------------------- plots


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # render with Agg, whatever pyplot's backend is
    return fig


def plot_scores(runs: Sequence[Run], path: Path) -> Path | None:
    """Grouped bars: each evaluation's main metric overall (and per group when there are several).

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
            # a group this evaluation has no questions of gets no bar (NaN), not a misleading zero
            values = [summary.get(metric) if cat == "overall"
                      else ((summary.get("groups") or {}).get(cat) or {}).get(metric) for cat in categories]
            heights = [float("nan") if v is None else float(v) for v in values]
            xs = [k - 0.4 + step * (j + 0.5) for k in range(len(categories))]
            container = ax.bar(xs, heights, width=step * 0.95, label=label)
            ax.bar_label(container, labels=["" if v is None else percent(v) for v in values], fontsize=7, padding=1)
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


# --------------------------------------------------------------------------- entry points


def render_report(runs: Sequence[Run], plots: dict[str, Path | None]) -> str:
    """The Markdown text; `plots` maps a title to a PNG path beside the report (None: not drawn)."""
    lines = ["# AutoAct run report", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} from "
             + ", ".join(f"`{r.directory}`" for r in runs) + ".", ""]
    if len(runs) > 1:
        lines += ["Runs compared: " + ", ".join(f"`{r.title}` ({r.task.name}, {r.data.get('preset') or '—'})"
                                                for r in runs) + ".", ""]
    for run in runs:
        lines += _run_section(run)
    lines += _results_section(runs)
    lines += _behaviour_section(runs)
    lines += _reference_section(runs)
    lines += ["## Plots", ""]
    for title, png in plots.items():
        if png is None:
            lines += [f"- {title}: nothing to plot.", ""]
        else:
            lines += [f"### {title}", "", f"![{title}]({png.name})", ""]
    return "\n".join(lines).rstrip() + "\n"


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
    out.write_text(render_report(runs, plots), encoding="utf-8")
    return out


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
                scores = "  ".join(f"{metric_title(m)} {percent(ev.summary.get(m))}" for m in metrics)
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
