"""Benchmark: what scoring a closed choice (echo + logprobs) costs over a plain request.

Starts the FastChat stack on the embedded model twice, with FastChat's own
prompt-logprob code and with autoact's patch (serving/worker_main.py), and times
one-token requests for prompts of several lengths. Prints a table.

    .venv/bin/python benchmarks/scoring_latency.py [--repeats 3] [--lengths 200,600,1200]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)  # run as a script: benchmarks/serving.py and training.py must not shadow packages

import argparse
import os
import platform
import statistics
import time

from rich.console import Console
from rich.table import Table

from agents.llm import EndpointConfig, EndpointModel
from serving.launcher import FastChatStack, free_port
from serving.model_store import resolve_model
from serving.worker_main import PATCH_ENV


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lengths", default="200,600,1200", help="prompt lengths in words (~tokens)")
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    model = resolve_model("default")
    table = Table(title="Scoring one candidate vs a plain 1-token request (median seconds)")
    for col in ("worker", "prompt words", "plain", "echo+logprobs", "overhead"):
        table.add_column(col, justify="right")
    for patched in (False, True):
        os.environ[PATCH_ENV] = "1" if patched else "0"
        with FastChatStack(model, port=free_port()) as stack:
            client = EndpointModel(EndpointConfig(base_url=stack.base_url, model=stack.model_name))
            for n in lengths:
                prompt = " ".join(["word"] * n) + "\nAction:"
                plain = median_seconds(lambda: client.generate(prompt, stop=[], max_tokens=1), args.repeats)
                scored = median_seconds(lambda: client.score(prompt, [" Retrieve"]), args.repeats)
                table.add_row("patched" if patched else "FastChat as is", str(n), f"{plain:.2f}", f"{scored:.2f}",
                              f"{scored - plain:+.2f}")
    console = Console()
    console.print(table)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
                  f"model: {model.name} (fp32, CPU); repeats: {args.repeats}")


if __name__ == "__main__":
    main()
