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

from core.errors import ConfigError, DataError
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


def sample_rows(questions: Sequence[dict[str, Any]], samples: int) -> list[dict[str, Any]]:
    """The rows to solve: each question once (its own id), or `samples` times as `ID#k` with `question_id`."""
    if samples < 1:
        raise ConfigError(f"samples must be at least 1, got {samples}")
    if samples == 1:
        return list(questions)
    return [{**q, "id": f"{q['id']}#{k}", "question_id": q["id"], "sample": k} for q in questions for k in range(samples)]


def is_kept(row: dict[str, Any]) -> bool:
    """A trajectory the filter keeps: reward 1, finished without an error or a halt."""
    return not row.get("error") and not row.get("halted") and float(row.get("reward") or 0.0) >= 1.0


def synthesize(agent: GraphAgent, task: Task, questions: Sequence[dict[str, Any]], out: Path,
               concurrency: int = 1, progress: bool = True, run_info: dict[str, Any] | None = None,
               samples: int = 1) -> dict[str, Any]:
    """Run every question `samples` times through `agent` (the runtime graph), appending rows to `out`.

    Returns the summary. With `samples > 1` (and a sampling temperature in the agent's model) each
    question gets several attempts, rows `ID#0` … `ID#k`; differentiation keeps the right ones and
    drops repeats. The progress bar counts the rows kept so far.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = sample_rows(questions, samples)
    meta = {
        "task": task.name, "tools": [s.to_json() for s in agent.tools], "prompts_version": prompts_version(),
        "limits": agent.context.limits.__dict__, "samples": samples,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), **(run_info or {}),
    }
    path = meta_path(out)
    if path.exists():  # a resumed run keeps its first record and notes the restart
        before = read_meta(out)
        if int(before.get("samples", 1)) != samples:
            raise ConfigError(f"{path}: these trajectories were synthesized with {before.get('samples', 1)} "
                              f"sample(s) per question, not {samples}; use the same --samples or another --out")
        meta = {**before, "resumed": meta["started"]}
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    options = EvalOptions(out.parent, concurrency=concurrency, progress=progress, results_file=out.name,
                          summary_file=out.stem + ".summary.json", label="synthesize", kept=is_kept)
    return evaluate(agent, task, rows, options)
