"""The report's comparisons: each evaluation against a reference on the questions both answered.

The reference is the zero-shot Meta-Agent when a run has one, else the first evaluation of the
task. Per metric: the paired n, both scores, the difference with its 95% interval, the p-value
(McNemar's exact test for right/wrong scores, a paired bootstrap for F1) and the verdict in
words, which says "no difference detectable" whenever the difference is inside the noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.report_format import (
    labelled_evaluations,
    metric_order,
    metric_title,
    table,
)
from evaluation.results import ResultsFile
from evaluation.run_loading import Evaluation, Run
from evaluation.statistics import Comparison, compare

REFERENCE_LABEL = "Meta-Agent zero-shot"
ABLATION_REFERENCE = "AutoAct"


def answered_values(evaluation: Evaluation) -> dict[str, dict[str, float]]:
    """Per question id, the metric values of the rows this evaluation answered (no error)."""
    path = Path(evaluation.path) / "results.jsonl"
    if not path.is_file():
        return {}
    return {key: {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for key, row in ((str(r["id"]), r) for r in ResultsFile(path).rows) if not row.get("error")}


def comparisons(task: Any, evaluations: Sequence[tuple[str, Evaluation]],
                reference: str = REFERENCE_LABEL) -> list[tuple[str, str, Comparison]]:
    """(reference label, other label, comparison) for every other evaluation and metric.

    The reference is the evaluation whose label ends with `reference`, else the first one.
    """
    present = [(label, ev) for label, ev in evaluations if ev.summary is not None]
    if len(present) < 2:
        return []
    ref_label, ref = next(((lb, e) for lb, e in present if lb.endswith(reference)), present[0])
    ref_values = answered_values(ref)
    out = []
    for label, ev in present:
        if ev is ref:
            continue
        values = answered_values(ev)
        common = [key for key in ref_values if key in values]
        for metric in metric_order(task):
            out.append((ref_label, label, compare(metric, [ref_values[k].get(metric, 0.0) for k in common],
                                                  [values[k].get(metric, 0.0) for k in common])))
    return out


_HEADER = ["evaluation", "against", "metric", "n", "reference", "evaluation score", "difference", "95% CI", "p",
           "test", "verdict"]


def _comparison_rows(task: Any, evaluations: Sequence[tuple[str, Evaluation]], reference: str) -> list[list[str]]:
    return [[other, ref, metric_title(c.metric), str(c.n), _points(c.reference), _points(c.other),
             _signed(c.difference), _interval(c.interval), "—" if c.p is None else f"{c.p:.3g}", c.test, c.verdict()]
            for ref, other, c in comparisons(task, evaluations, reference)]


def comparison_section(runs: Sequence[Run]) -> list[str]:
    lines: list[str] = []
    for task_name in dict.fromkeys(r.task.name for r in runs):
        task_runs = [r for r in runs if r.task.name == task_name]
        rows = _comparison_rows(task_runs[0].task, labelled_evaluations(task_runs), REFERENCE_LABEL)
        if not rows:
            continue
        if not lines:
            lines += ["## Comparisons", "",
                      ("Each evaluation against the reference on the questions both answered (*n*): the "
                       "difference in points with its 95% interval (paired bootstrap over questions), and the "
                       "p-value of McNemar's exact test (right/wrong scores) or of the paired bootstrap (F1). "
                       "A difference whose interval holds zero, or with p ≥ 0.05, is reported as none."), ""]
        if len(runs) > 1 and len({r.task.name for r in runs}) > 1:
            lines += [f"### {task_name}", ""]
        lines += table(_HEADER, rows, right=(3, 4, 5, 6, 7, 8))
        lines.append("")
    return lines + ablation_section(runs)


def ablation_section(runs: Sequence[Run]) -> list[str]:
    """The paper's ablation table for each run made with `--ablations`: every variant against AutoAct."""
    lines: list[str] = []
    for run in runs:
        if not run.data.get("ablations"):
            continue
        rows = _comparison_rows(run.task, [(e.label, e) for e in run.evaluations], ABLATION_REFERENCE)
        if not rows or rows[0][1] != ABLATION_REFERENCE:
            continue
        lines += [f"## Ablations of `{run.title}` (the paper's Table 2)", "",
                  ("Each variant against AutoAct on the same questions: −reflection is AutoAct w/o reflect, "
                   "−fine-tuning the Meta-Agent zero-shot, −multi one adapter for all roles, −filtering adapters "
                   "trained on every trajectory right or wrong; then the baselines on the base model. A negative "
                   "difference is what the ablated part contributed, when the verdict says it is detectable."), "",
                  *table(_HEADER, rows, right=(3, 4, 5, 6, 7, 8)), ""]
    return lines


def _points(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def _interval(interval: tuple[float, float] | None) -> str:
    return "—" if interval is None else f"[{interval[0]:+.1f}, {interval[1]:+.1f}]"
