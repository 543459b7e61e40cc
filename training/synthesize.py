"""Trajectory synthesis: the Meta-Agent (one model behind every role) solves generated questions
with the runtime graph itself; one row per question, resumable like `eval`.

Next to `trajectories.jsonl` it writes `trajectories.meta.json`: the task, model, tools,
prompts version and limits that produced the rows, so differentiation can rebuild the
exact prompts and a dataset can be traced to its run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from core.errors import DataError
from core.jsonl import read_json
from evaluation.runner import EvalOptions, evaluate
from graph.protocol import GraphAgent
from prompts.builder import prompts_version
from tasks.base import Task


def meta_path(trajectories: Path) -> Path:
    return trajectories.with_name(trajectories.stem + ".meta.json")


def read_meta(trajectories: Path) -> dict[str, Any]:
    """The synthesis record beside a trajectories file ({} when there is none); DataError naming it if malformed."""
    path = meta_path(trajectories)
    if not path.exists():
        return {}
    meta = read_json(path, "synthesis record")
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object (the synthesis record), got {type(meta).__name__}")
    return meta


def synthesize(agent: GraphAgent, task: Task, questions: Sequence[dict[str, Any]], out: Path,
               concurrency: int = 1, progress: bool = True, run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every question through `agent` (the runtime graph), appending rows to `out`; returns the summary."""
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "task": task.name, "tools": [s.to_json() for s in agent.tools], "prompts_version": prompts_version(),
        "limits": agent.context.limits.__dict__, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), **(run_info or {}),
    }
    path = meta_path(out)
    if path.exists():  # a resumed run keeps its first record and notes the restart
        meta = {**read_meta(out), "resumed": meta["started"]}
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    options = EvalOptions(out.parent, concurrency=concurrency, progress=progress, results_file=out.name,
                          summary_file=out.stem + ".summary.json", label="synthesize")
    return evaluate(agent, task, questions, options)
