"""The evaluation loop: answer every question of a data file, score, write rows as they finish.

Resumable: rows already answered in `results.jsonl` are skipped and rows that
ended in an error are tried again, so a killed run loses at most the questions
in flight. Episodes may run concurrently; each row is written whole under a
lock, and one run at a time holds the file.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from agents.llm import TOKEN_USAGE
from core import interrupt
from core.errors import ConfigError
from evaluation.diagnostics import episode_diagnostics, summarize_diagnostics
from evaluation.results import ResultsFile
from evaluation.trace import Tracer, trace_event
from evaluation.yardsticks import add_yardsticks
from graph.protocol import Agent
from tasks.base import Task, group_rows

SAMPLE_FIELDS = ("question_id", "sample")  # a row that is one of several attempts at a question says which


@dataclass
class EvalOptions:
    out_dir: Path
    limit: int | None = None
    concurrency: int = 1
    progress: bool = True
    results_file: str = "results.jsonl"
    summary_file: str = "summary.json"
    label: str = "eval"  # progress-bar label
    settings: dict[str, Any] | None = None  # how the agent was set up, copied into the summary
    kept: Callable[[dict[str, Any]], bool] | None = None  # rows to count on the progress bar ("kept" so far)


def run_episode(agent: Agent, task: Task, row: dict[str, Any],
                tracer: Tracer | None = None, episode: str | None = None) -> dict[str, Any]:
    """Answer one row; never raises: a failure is recorded in the row's `error`."""
    start = time.perf_counter()
    question, inputs = task.question_text(row), task.inputs(row)
    usage: dict[str, dict[str, int]] = {}
    steps = 0

    def on_update(node: str, update: dict[str, Any]) -> None:
        nonlocal steps
        steps += len(update.get("steps") or [])
        if tracer is not None and (event := trace_event(node, update, steps + (node in ("plan", "tool")))):
            tracer.emit(event, episode)

    usage_token = TOKEN_USAGE.set(usage)
    try:
        result = agent.run(question, inputs, on_update)
    finally:
        TOKEN_USAGE.reset(usage_token)
    has_gold = "answer" in row
    scores = task.score(result.answer, row) if has_gold else {}
    transcript = result.steps
    return {
        "id": row["id"], **{k: row[k] for k in SAMPLE_FIELDS if k in row},
        "question": question, "gold": task.gold(row) if has_gold else None,
        "prediction": result.answer, **scores, "reward": scores.get(task.reward_metric), "group": task.group(row),
        "steps": len(transcript), "halted": result.halted, "halt_reason": result.halt_reason, "error": result.error,
        "seconds": round(time.perf_counter() - start, 2),
        "diagnostics": episode_diagnostics(task, row, transcript, [t.name for t in agent.tools]), "tokens": usage,
        "transcript": transcript,
    }


def evaluate(agent: Agent, task: Task, rows: Sequence[dict[str, Any]], options: EvalOptions,
             tracer: Tracer | None = None,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Evaluate `rows` (the first `limit`), appending to `out_dir/results.jsonl`; returns the summary.

    Rows answered before are skipped; rows that ended in an error are tried again. The first
    Ctrl-C stops admitting rows, keeps every finished one, and raises Interrupted saying how to
    resume; a second run on the same results file meanwhile is refused.
    """
    if options.limit is not None and options.limit < 1:
        raise ConfigError(f"limit must be at least 1 (or None for every row), got {options.limit}")
    if options.concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {options.concurrency}")
    interrupt.reset()
    wanted = list(rows[: options.limit] if options.limit else rows)
    with ResultsFile(options.out_dir / options.results_file) as results:
        todo = results.pending(wanted)
        bar = tqdm(total=len(wanted), initial=len(wanted) - len(todo), desc=f"{options.label} {task.name}",
                   unit="q", disable=not options.progress, dynamic_ncols=True)
        wanted_ids = {str(r["id"]) for r in wanted}
        kept = 0
        if options.kept:
            kept = sum(1 for r in results.rows if str(r["id"]) in wanted_ids and options.kept(r))
            bar.set_postfix(kept=kept)

        def record(result: dict[str, Any]) -> None:
            nonlocal kept
            if results.append(result) and options.kept and options.kept(result):
                kept += 1
                bar.set_postfix(kept=kept, refresh=False)
            bar.update(1)
            if on_row:
                on_row(result)

        futures: list[Future] = []
        try:
            if options.concurrency <= 1:
                for row in todo:
                    interrupt.check()
                    record(run_episode(agent, task, row, tracer))
            else:
                with interrupt.WorkerPool(options.concurrency, "eval") as pool:
                    futures = [pool.submit(run_episode, agent, task, row, tracer, row["id"]) for row in todo]
                    for future in as_completed(futures):
                        record(future.result())
        except KeyboardInterrupt:
            interrupt.stop()
            for future in interrupt.finish_in_flight(futures):
                if future.exception() is None:
                    record(future.result())
            kept = len(results.done & {str(r["id"]) for r in wanted})
            raise interrupt.Interrupted(
                f"interrupted: {kept} of {len(wanted)} rows are answered in {results.path} (rows in flight were "
                "abandoned); run the same command again to resume") from None
        finally:
            bar.close()
        return summarize_results(task, results, wanted, options)


def summarize_results(task: Task, results: ResultsFile, wanted: Sequence[dict[str, Any]],
                      options: EvalOptions) -> dict[str, Any]:
    """The summary of the rows of `wanted` in `results` (one per id), written to the summary file."""
    wanted_ids = {str(r["id"]) for r in wanted}
    done = [r for r in results.rows if str(r["id"]) in wanted_ids]
    summary = add_yardsticks(task.summarize(done), task, done, wanted)
    summary["diagnostics"] = {**summarize_diagnostics(done),
                              "groups": {g: summarize_diagnostics(items) for g, items in group_rows(done).items()}}
    if options.settings:
        summary["settings"] = options.settings
    (options.out_dir / options.summary_file).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
