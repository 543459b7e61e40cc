"""Benchmark: the stock FastChat worker against our batched worker on mixed adapter traffic.

Serves the embedded model with three role adapters (a trained `--group DIR`, or untrained
LoRA adapters made here) once per engine, sends the same mix of greedy requests spread over
the base model and every adapter at each concurrency level, and prints aggregate completion
tokens/s, request latency p50/p95 and the worker's RSS per engine (for our worker also the
engine's prefill and decode seconds and rows per decoding step), with the machine.

    .venv/bin/python benchmarks/serving.py [--group runs/NAME/adapters] [--requests 32]
        [--concurrency 1,4,8,16,32] [--max-tokens 32] [--engines stock,batched]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)  # run as a script: benchmarks/serving.py and training.py must not shadow packages

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import httpx  # noqa: E402
import psutil  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.training import machine  # noqa: E402
from serving.adapters import group_adapters  # noqa: E402
from serving.launcher import FastChatStack, free_port  # noqa: E402
from serving.model_store import resolve_model  # noqa: E402

HEADER = ("You are one agent of a group that answers questions with tools. Read the question and the "
          "steps so far, then write the next part of the transcript. Be brief and specific.\n\n")
PROMPTS = [HEADER + "Question: Which of these states is farthest north?\nThought 1:",
           HEADER + "Question: Who wrote the novel?\nThought 1: I should look it up.\nAction 1: Retrieve[",
           HEADER + "Question: Is the answer right?\nProposed answer: B. dolphin\nThought 1:",
           HEADER + "Observation 1: Paris is the capital of France.\nThought 2:"]


def untrained_adapters(base_dir: Path, root: Path) -> dict[str, Path]:
    """Three LoRA adapters with random B matrices (so each one answers differently)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for seed, role in enumerate(("plan", "tool", "reflect"), 1):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(base_dir)
        config = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, init_lora_weights=False,
                            target_modules=["q_proj", "v_proj"])
        get_peft_model(model, config).save_pretrained(root / role)
        out[role] = root / role
    return out


def one(client: httpx.Client, url: str, model: str, prompt: str, max_tokens: int) -> tuple[float, int]:
    start = time.perf_counter()
    response = client.post(f"{url}/completions", json={"model": model, "prompt": prompt,
                                                       "max_tokens": max_tokens, "temperature": 0.0})
    response.raise_for_status()
    return time.perf_counter() - start, int(response.json()["usage"]["completion_tokens"])


def engine_stats(worker_url: str) -> dict[str, float]:
    """The batched worker's cumulative engine counters."""
    with httpx.Client(timeout=30, trust_env=False) as client:
        return client.post(f"{worker_url}/engine_stats").json()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--group", type=Path, default=None, help="trained adapters dir (default: untrained ones)")
    parser.add_argument("--requests", type=int, default=32, help="requests per level (at least 2 × concurrency)")
    parser.add_argument("--concurrency", default="1,4,8,16,32")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--engines", default="stock,batched")
    parser.add_argument("--dtype", default="auto", help="batched engine dtype (auto, bfloat16, float32)")
    args = parser.parse_args()
    base = resolve_model("default")
    levels = [int(c) for c in args.concurrency.split(",")]
    table = Table(title=f"mixed-adapter serving: greedy requests over base + 3 adapters, "
                        f"max {args.max_tokens} new tokens")
    for col in ("engine", "concurrency", "requests", "wall s", "completion tokens/s", "latency p50 s",
                "latency p95 s", "worker RSS MiB", "prefill / decode s", "rows/step"):
        table.add_column(col, justify="right")
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="autoact-bench-") as tmp:
        adapters = group_adapters(args.group) if args.group else untrained_adapters(base.path, Path(tmp))
        for engine in args.engines.split(","):
            with FastChatStack(base, port=free_port(), adapters=adapters, engine=engine, dtype=args.dtype,
                               max_batch_size=max(levels)) as stack:
                names = stack.model_names
                # one pooled client for all requests: the client's own work shares the cores with the server
                pool_size = httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
                with httpx.Client(timeout=900, trust_env=False, limits=pool_size) as client:
                    one(client, stack.base_url, names[0], PROMPTS[0], 4)  # warm-up
                    for level in levels:
                        n = max(args.requests, 2 * level)
                        jobs = [(names[i % len(names)], PROMPTS[i % len(PROMPTS)]) for i in range(n)]
                        before = engine_stats(stack.worker_url) if engine == "batched" else {}
                        start = time.perf_counter()
                        with ThreadPoolExecutor(max_workers=level) as pool:
                            done = list(pool.map(lambda j: one(client, stack.base_url, j[0], j[1], args.max_tokens), jobs))
                        wall = time.perf_counter() - start
                        lat = [d[0] for d in done]
                        rate = sum(d[1] for d in done) / wall
                        best[engine] = max(best.get(engine, 0.0), rate)
                        rss = psutil.Process(stack.pids["worker"]).memory_info().rss / 2**20
                        busy = ["—", "—"]
                        if engine == "batched":  # where the engine's time went, and how full its batches were
                            after = engine_stats(stack.worker_url)
                            d = {k: after[k] - before.get(k, 0) for k in ("prefill_s", "decode_s", "steps", "batched_rows")}
                            busy = [f"{d['prefill_s']:.1f} / {d['decode_s']:.1f}",
                                    f"{d['batched_rows'] / max(1, d['steps']):.1f}"]
                        table.add_row(engine, str(level), str(n), f"{wall:.1f}", f"{rate:.1f}", f"{pct(lat, 0.5):.2f}",
                                      f"{pct(lat, 0.95):.2f}", f"{rss:.0f}", *busy)
    console = Console(width=160)  # tables are read in logs, not only terminals
    console.print(table)
    if "stock" in best and "batched" in best:
        console.print(f"best aggregate: batched {best['batched']:.1f} tokens/s vs stock {best['stock']:.1f} "
                      f"tokens/s ({best['batched'] / best['stock']:.1f}×)")
    console.print(f"machine: {machine()}; model: {base.name}; stock = FastChat multi_model_worker (fp32, one "
                  f"request at a time); batched = serving.batched_worker (dtype {args.dtype}, batch ≤ {max(levels)})")


if __name__ == "__main__":
    main()
