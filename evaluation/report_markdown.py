"""The Markdown of the run report: each run's facts, settings and stages, the results and behaviour
tables, the AutoAct paper's reference values, and the list of plots (`render_report`)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from evaluation.report import chance_text, interval_text
from evaluation.report_comparisons import comparison_section
from evaluation.report_format import (
    RESUME_HINT,
    design_label,
    duration,
    labelled_evaluations,
    metric_order,
    metric_title,
    percent,
    sorted_groups,
    table,
)
from evaluation.run_loading import Evaluation, Run
from tasks.base import Task

# Reference numbers from the AutoAct paper (Qiao et al., 2024, arXiv 2401.05268), keyed by task.
# Each entry: {"source": "Table N, arXiv 2401.05268vK", "metric": title of the metric,
#              "columns": [group names..., "overall"],
#              "rows": [{"model": "Llama-2-13B-chat", "method": "AutoAct", "values": [...]}, ...]}
# Only numbers read in the paper's results table belong here. It is empty: when this module was
# written the table could not be read from any source at hand (only the first part of the paper's
# HTML page was available), and numbers were not to be filled in from memory. The report says so.
PAPER_REFERENCE: dict[str, dict[str, Any]] = {}


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
    cols += [f"overall {metric_title(m)} 95% CI" for m in metrics]
    return cols + ["n", "halted", "errors"]


def results_row(task: Task, groups: Sequence[str], evaluation: Evaluation) -> list[str]:
    """One evaluation's cells (matching `results_header`); 'not run' when it has no summary."""
    metrics = metric_order(task)
    width = (len(groups) + 2) * len(metrics) + 3
    summary = evaluation.summary
    if summary is None:
        return ["not run"] + ["—"] * (width - 1)
    by_group = summary.get("groups") or {}
    cells = [percent((by_group.get(g) or {}).get(m)) for g in groups for m in metrics]
    cells += [percent(summary.get(m)) for m in metrics]
    cells += [interval_text((summary.get("intervals") or {}).get(m)) for m in metrics]
    cells += [str(summary.get("n", "—")), str(summary.get("halted", "—")), str(summary.get("errors", "—"))]
    return cells


_CORPUS = {"split": "the other part of the evaluation file", "corpus file": "a separate corpus file",
           "evaluation rows (asked for)": "the evaluated rows themselves (asked for)",
           "none": "no task rows (the seeds only)"}


def _overlap_lines(data: Mapping[str, Any]) -> list[str]:
    """What training read that the evaluation asks (run.json's `overlap`), in one paragraph."""
    o = data.get("overlap")
    if not isinstance(o, dict):
        return []
    shared = o.get("pages_shared", 0) or o.get("questions_shared", 0)
    return ["", f"**Training data and evaluation{' overlap' if shared else ': no overlap'}.** Self-instruct and "
            f"synthesis read {_CORPUS.get(str(o.get('corpus')), o.get('corpus'))}; of their "
            f"{o.get('training_rows')} rows, {o.get('questions_shared')} questions repeat or nearly repeat one "
            f"of the {o.get('evaluated_rows')} evaluated questions, and they carry {o.get('pages_shared')} of the "
            f"{o.get('evaluated_pages')} pages the evaluated rows show ({o.get('gold_pages_shared')} of them "
            "gold supporting pages)."]


def _run_section(run: Run) -> list[str]:
    data = run.data
    if data.get("collection"):
        return [f"## Evaluations `{run.title}`", "",
                f"`autoact eval` outputs in `{run.directory}` ({run.task.name}): "
                + ", ".join(f"`{e.label}`" + (f" ({d})" if (d := design_label(e.summary)) else "")
                            for e in run.evaluations) + ".", ""]
    started, finished = data.get("started_at"), data.get("finished_at")
    t0, t1 = _parse_time(started), _parse_time(finished)
    wall = duration((t1 - t0).total_seconds()) if t0 and t1 else "—"
    lines = [f"## Run `{run.title}`", ""]
    lines += table(["", ""], [
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
    lines += _overlap_lines(data)
    lines += ["", "### Settings", ""]
    settings = data["settings"]
    if settings:
        lines += table(["setting", "value"], [(k, _scalar(v)) for k, v in settings.items()])
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
        if int(st.get("sittings") or 1) > 1 and not error:
            note = f"{note}; " if note else ""
            note += f"time of {st['sittings']} sittings"
        detail = str(error).strip().splitlines()[0] if error else (note or "")
        if len(detail) > 160:
            detail = detail[:157] + "..."
        rows.append((st["name"], status, duration(st.get("seconds")), _counts(st.get("counts")), detail))
    known = [float(s["seconds"]) for s in run.stages if s.get("seconds") is not None]
    if known:
        rows.append(("**total**", "", duration(sum(known)), "", ""))
    lines += table(["stage", "status", "time", "counts", "error / note"], rows, right=(2,))
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
              "and overall, over the questions answered, with the 95% interval of each overall score (bootstrap "
              "over questions). *n* is the number of questions, *halted* the episodes "
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
        lines += table(header, rows, right=tuple(range(1, len(header))))
        lines.append("")
        lines += _chance_notes([(f"{r.title} / {e.label}" if several else e.label, e)
                                for r in task_runs for e in r.evaluations])
        lines += _error_notes(task, [(f"{r.title} / {e.label}" if several else e.label, e)
                                     for r in task_runs for e in r.evaluations])
    return lines


def _chance_notes(evaluations: Sequence[tuple[str, Evaluation]]) -> list[str]:
    """The chance level of the questions each evaluation answered (one line when they all agree)."""
    found = [(label, ev.summary) for label, ev in evaluations if ev.summary and ev.summary.get("chance")]
    if not found:
        return []
    texts = {label: chance_text(summary) for label, summary in found}
    if len(set(texts.values())) == 1:
        text = next(iter(texts.values())) or ""
        return [f"{text[:1].upper()}{text[1:]}.", ""]
    return [*(f"- {label}: {text}." for label, text in texts.items()), ""]


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
                     ("reflection_accuracy", "reflection correct"), ("wrong_caught_rate", "wrong caught"),
                     ("right_kept_rate", "right kept"), ("evidence_recall", "evidence recall"),
                     ("evidence_all_rate", "all evidence"), ("steps_per_episode", "steps/episode"))



def _behaviour_section(runs: Sequence[Run]) -> list[str]:
    """What the agents did (evaluation/diagnostics.py): the numbers that move when final scores do not."""
    rows = []
    for label, ev in labelled_evaluations(runs):
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
             "correctly, of wrong answers the reflect agent judged wrong (wrong caught) and of right answers it "
             "judged right (right kept), and (HotpotQA) the share of gold supporting pages retrieved (evidence "
             "recall) and of episodes that retrieved all of them."), "",
            *table(header, rows, right=tuple(range(1, len(header)))), "", *_reflect_tables(runs)]


def _reflect_tables(runs: Sequence[Run]) -> list[str]:
    """Each evaluation's reflect verdicts against the truth of the answers judged (a 2×2 table in one row)."""
    rows = []
    for label, ev in labelled_evaluations(runs):
        t = ((ev.summary or {}).get("diagnostics") or {}).get("reflect_table")
        if isinstance(t, dict) and any(sum(v.values()) for v in t.values()):
            auc = ((ev.summary or {}).get("diagnostics") or {}).get("verdict_auc")
            rows.append([label, *(str(t[a][v]) for a in ("right answers", "wrong answers")
                                  for v in ("said right", "said wrong")), "—" if auc is None else f"{auc:.2f}"])
    if not rows:
        return []
    header = ["evaluation", "right answer: said right", "right answer: said wrong", "wrong answer: said right",
              "wrong answer: said wrong", "margin AUC"]
    return ["### The reflect agent's verdicts", "",
            ("Counts of reflections on a right and on a wrong proposed answer. A reflect agent that always says "
             "right has a high agreement whenever most answers are right, and catches nothing. Margin AUC: the "
             "chance that a right answer's scored margin (log p(right) − log p(wrong)) is above a wrong "
             "answer's; 0.5 means no threshold could separate them."), "",
            *table(header, rows, right=(1, 2, 3, 4, 5)), ""]


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
        lines += table(header, rows, right=tuple(range(2, len(header))))
        lines.append("")
    return lines



def render_report(runs: Sequence[Run], plots: dict[str, Path | None], viewer: str | None = None) -> str:
    """The Markdown text; `plots` maps a title to a PNG path beside the report (None: not drawn);
    `viewer` names the episode browser's page beside it (`autoact view`), linked when given."""
    lines = ["# AutoAct run report", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} from "
             + ", ".join(f"`{r.directory}`" for r in runs) + ".", ""]
    if viewer:
        lines += [f"Every episode, step by step, and two evaluations side by side: [{viewer}]({viewer}) "
                  "(opens offline in a browser).", ""]
    if len(runs) > 1:
        lines += ["Runs compared: " + ", ".join(f"`{r.title}` ({r.task.name}, {r.data.get('preset') or '—'})"
                                                for r in runs) + ".", ""]
    for run in runs:
        lines += _run_section(run)
    lines += _results_section(runs)
    lines += comparison_section(runs)
    lines += _behaviour_section(runs)
    lines += _reference_section(runs)
    lines += ["## Plots", ""]
    for title, png in plots.items():
        if png is None:
            lines += [f"- {title}: nothing to plot.", ""]
        else:
            lines += [f"### {title}", "", f"![{title}]({png.name})", ""]
    return "\n".join(lines).rstrip() + "\n"
