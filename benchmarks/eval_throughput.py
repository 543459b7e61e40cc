"""Benchmark: group-planning throughput at concurrency 1 vs K, per worker engine.

Runs the same questions through the group (the zero-shot Meta-Agent, or a trained
`--group DIR` served with its adapters) once per engine (FastChat's stock worker, our
batched worker) and concurrency level against the same server, and prints questions per
minute, generated tokens per second (the API's usage counts), each role's request latency
(p50/p95), and the speed-up over sequential stock serving, with the machine and settings.

    .venv/bin/python benchmarks/eval_throughput.py [--task scienceqa] [--n 8] [--concurrency 1,8]
        [--engines stock,batched] [--group runs/NAME/adapters] [--base-url URL]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)  # run as a script: benchmarks/serving.py and training.py must not shadow packages

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from contextlib import ExitStack
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from agents.base import AgentSettings
from agents.llm import EndpointConfig
from autoact.assembly import (
    build_group,
    build_task_toolbox,
    group_role_names,
    resolve_role_models,
)
from evaluation.runner import EvalOptions, evaluate
from graph.context import Limits
from serving.adapters import group_adapters
from serving.launcher import FastChatStack, free_port
from serving.model_store import resolve_model
from tasks import get_task, read_rows

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EVAL_FILES = {"hotpotqa": DATA / "hotpotqa" / "easy.jsonl", "scienceqa": DATA / "scienceqa" / "grade1-4.jsonl"}


class TimedModel:
    """Wraps a role's model: records each request's latency (tokens come from the API's usage counts)."""

    def __init__(self, model: Any, role: str, sink: list[tuple[str, float]], lock: threading.Lock) -> None:
        self._model, self._role, self._sink, self._lock = model, role, sink, lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _timed(self, fn: Any, *args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args, **kw)
        with self._lock:
            self._sink.append((self._role, time.perf_counter() - start))
        return out

    def generate(self, prompt: str, *, stop: Sequence[str], max_tokens: int) -> str:
        return self._timed(self._model.generate, prompt, stop=stop, max_tokens=max_tokens)

    def score(self, prompt: str, candidates: Sequence[str]) -> list[float]:
        return self._timed(self._model.score, prompt, candidates)


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_level(task: Any, rows: list[dict], roles: Any, url: str, args: argparse.Namespace,
              level: int) -> tuple[float, int, dict[str, list[float]]]:
    """Evaluate ``rows`` at one concurrency level: wall seconds, completion tokens, latency per role."""
    toolbox = build_task_toolbox(task, rows)
    group = build_group(task, toolbox, roles, EndpointConfig(base_url=url), AgentSettings(),
                        Limits(max_steps=args.max_steps), "roles" if args.group else "auto")
    calls: list[tuple[str, float]] = []
    lock = threading.Lock()
    ctx = group.context
    for role in ("plan", "tool", "reflect"):
        agent = getattr(ctx, role)
        if agent is not None:
            agent.model = TimedModel(agent.model, role, calls, lock)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        evaluate(group, task, rows, EvalOptions(Path(tmp), concurrency=level, progress=False))
        wall = time.perf_counter() - start
        results = [json.loads(line) for line in (Path(tmp) / "results.jsonl").read_text().splitlines() if line]
    tokens = sum(int(u.get("completion_tokens", 0)) for r in results for u in (r.get("tokens") or {}).values())
    lat = {r: [s for role, s in calls if role == r] for r in ("plan", "tool", "reflect")}
    return wall, tokens, lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=sorted(EVAL_FILES), default="scienceqa")
    parser.add_argument("--data", type=Path, default=None, help="evaluation file (default: the shared one)")
    parser.add_argument("--n", type=int, default=8, help="questions per concurrency level")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    parser.add_argument("--engines", default="stock,batched", help="worker engines to compare (with no --base-url)")
    parser.add_argument("--group", type=Path, default=None, help="a trained group (adapters dir) to serve and run")
    parser.add_argument("--base-url", default=None, help="use a running server instead of starting one")
    parser.add_argument("--max-steps", type=int, default=6)
    args = parser.parse_args()
    task = get_task(args.task)
    rows = read_rows(args.data or EVAL_FILES[args.task], task)[: args.n]
    base = resolve_model("default")
    table = Table(title=f"group planning throughput, {task.name}, {len(rows)} questions per level")
    for col in ("engine", "concurrency", "wall s", "questions/min", "gen. tokens/s", "plan p50/p95 s",
                "tool p50/p95 s", "reflect p50/p95 s", "× sequential stock"):
        table.add_column(col, justify="right")
    engines = ["external"] if args.base_url else args.engines.split(",")
    baseline: float | None = None
    for engine in engines:
        with ExitStack() as stack:
            url = args.base_url
            if url is None:
                adapters = group_adapters(args.group) if args.group else None
                url = stack.enter_context(FastChatStack(base, port=free_port(), adapters=adapters,
                                                        engine=engine)).base_url
            names = group_role_names(args.group) if args.group else {}
            roles = resolve_role_models(url, None, plan=names.get("plan"), tool=names.get("tool"),
                                        reflect=names.get("reflect"))
            for level in (int(c) for c in args.concurrency.split(",")):
                wall, tokens, lat = run_level(task, rows, roles, url, args, level)
                rate = 60 * len(rows) / wall
                if baseline is None and engine in ("stock", "external") and level == 1:
                    baseline = rate
                table.add_row(engine, str(level), f"{wall:.1f}", f"{rate:.2f}", f"{tokens / wall:.1f}",
                              *(f"{pct(lat[r], 0.5):.2f}/{pct(lat[r], 0.95):.2f}" for r in ("plan", "tool", "reflect")),
                              f"{rate / baseline:.1f}" if baseline else "-")
    console = Console(width=150)  # tables are read in logs, not only terminals
    console.print(table)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; model: {base.name} "
                  f"on CPU; stock = FastChat model_worker/multi_model_worker (fp32, one request at a time), batched = "
                  f"serving.batched_worker (dtype auto); roles: {roles}; max steps {args.max_steps}; one run per level")


if __name__ == "__main__":
    main()
