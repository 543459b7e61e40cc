"""Benchmark: how fast `autoact eval` stops on Ctrl-C, and what a hung server costs a row.

Serves the embedded model (FastChat stack, batched worker) behind a counting loopback proxy
(`tests/hostile_endpoint.py`), then for each checkout given (default: this one):

- starts `autoact eval --task hotpotqa --concurrency C` on ROWS questions, sends SIGINT as soon as
  the first row is written, and measures the seconds to exit, the requests the server got after
  the signal, and the rows kept;
- runs one question against a proxy that never answers, with `--timeout T`, and measures when the
  row's error is recorded.

Comparing checkouts (`--checkout ../old --checkout .`) runs the same script against each, in turn.

    .venv/bin/python benchmarks/interrupt_latency.py [--checkout DIR ...] [--rows 32] [--concurrency 4]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)  # run as a script: benchmarks/serving.py and training.py must not shadow packages

import argparse
import json
import signal
import subprocess
import tempfile
import time

from rich.console import Console
from rich.table import Table

from benchmarks.training import machine  # noqa: E402
from serving.launcher import FastChatStack, free_port
from serving.model_store import resolve_model
from tests.support.builders import ROWS
from tests.support.hostile_endpoint import HostileEndpoint


def eval_command(data: Path, out: Path, url: str, *more: str) -> list[str]:
    return [sys.executable, "-m", "autoact", "eval", "--task", "hotpotqa", "--data", str(data), "--out", str(out),
            "--base-url", url, "--no-progress", *more]


def line_count(path: Path) -> int:
    return path.read_text(encoding="utf-8").count("\n") if path.is_file() else 0


def ctrl_c(checkout: Path, data: Path, out: Path, url: str, server: HostileEndpoint, concurrency: int,
           patience: float) -> tuple[str, ...]:
    """(seconds to exit, requests after SIGINT, rows at SIGINT → kept, exit status) for one checkout."""
    proc = subprocess.Popen(eval_command(data, out, url, "--concurrency", str(concurrency), "--max-steps", "6"),
                            cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = out / "results.jsonl"
    while line_count(results) < 1 and proc.poll() is None:
        time.sleep(0.05)
    rows_then, sent, start = line_count(results), server.counts["completions"], time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=patience)
        seconds = f"{time.monotonic() - start:.1f}"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        seconds = f"> {patience:g} (killed)"
    return seconds, str(server.counts["completions"] - sent), f"{rows_then} → {line_count(results)}", str(proc.returncode)


def hung(checkout: Path, data: Path, out: Path, timeout: float) -> tuple[str, str]:
    """(seconds until the row's error is recorded, the error) against a server that never answers."""
    with HostileEndpoint() as server:
        server.always("completions", "hang")
        start = time.monotonic()
        subprocess.run(eval_command(data, out, server.base_url, "--timeout", f"{timeout:g}", "--limit", "1"),
                       cwd=checkout, capture_output=True, text=True)
        seconds = time.monotonic() - start
    row = json.loads((out / "results.jsonl").read_text(encoding="utf-8").splitlines()[0])
    return f"{seconds:.1f}", str(row.get("error"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", default=None, help="a checkout to run (repeat to compare)")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=3.0, help="--timeout of the hung-server run")
    parser.add_argument("--patience", type=float, default=300.0, help="seconds to wait for an exit after SIGINT")
    args = parser.parse_args()
    checkouts = [Path(c).resolve() for c in (args.checkout or [str(ROOT)])]
    tmp = Path(tempfile.mkdtemp(prefix="interrupt-latency-"))
    data = tmp / "questions.jsonl"
    data.write_text("".join(json.dumps({**ROWS[i % 2], "id": f"q{i}"}) + "\n" for i in range(args.rows)))
    table = Table(title="Ctrl-C on eval, and a hung server")
    for col in ("checkout", "exit after SIGINT, s", "requests after SIGINT", "rows at SIGINT → kept", "exit",
                f"hung server: row error after, s (--timeout {args.timeout:g})"):
        table.add_column(col)
    errors = []
    with FastChatStack(resolve_model("default"), port=free_port(), log_dir=tmp / "logs") as stack:
        for i, checkout in enumerate(checkouts):
            with HostileEndpoint(upstream=stack.base_url) as proxy:
                stopped = ctrl_c(checkout, data, tmp / f"eval-{i}", proxy.base_url, proxy, args.concurrency,
                                 args.patience)
            seconds, error = hung(checkout, data, tmp / f"hung-{i}", args.timeout)
            table.add_row(checkout.name, *stopped, seconds)
            errors.append(f"{checkout.name}: {error}")
    console = Console(width=160)
    console.print(f"machine: {machine()}; model: embedded SmolLM2 (batched worker); {args.rows} questions, "
                  f"--concurrency {args.concurrency}, --max-steps 6")
    console.print(table)
    for line in errors:
        console.print(f"hung server, the row's error in {line}", highlight=False)


if __name__ == "__main__":
    main()
