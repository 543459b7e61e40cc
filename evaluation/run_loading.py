"""Reading pipeline runs: `run.json`, the evaluation summaries it points to, `autoact eval --out`
directories collected as one run, and whether the process that last wrote a run is still alive.

A run directory holds `run.json` (written by `autoact pipeline`): the task, preset, model,
settings, versions, start and end times, every stage with its status, time and counts, and
`evaluations`, a map from a label ("AutoAct", "Meta-Agent zero-shot", ...) to a directory,
relative to the run, with the `summary.json` that `evaluation.runner.evaluate` wrote.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import AutoactError, DataError
from core.jsonl import read_json
from tasks import get_task
from tasks.base import Task


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
