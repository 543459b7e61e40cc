"""Benchmark: aggregate generation speed of the shared-weights worker for mixed adapter requests.

Serves the embedded model with role adapters (a trained `--group DIR`, or three
untrained LoRA adapters made here), sends the same mix of greedy requests spread
over the base model and every adapter at several concurrency levels, and prints
aggregate completion tokens/s and request latency p50/p95, plus the worker's RSS
next to a plain worker's.

    .venv/bin/python benchmarks/adapter_serving.py [--group runs/NAME/adapters] [--requests 16]
        [--concurrency 1,4,8] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from serving.adapters import group_adapters
from serving.launcher import FastChatStack, free_port
from serving.model_store import resolve_model

PROMPTS = ["Question: Which of these states is farthest north?\nThought 1:",
           "Question: Who wrote the novel?\nThought 1: I should look it up.\nAction 1: Retrieve[",
           "Question: Is the answer right?\nProposed answer: B. dolphin\nThought 1:",
           "Observation 1: Paris is the capital of France.\nThought 2:"]


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


def one(url: str, model: str, prompt: str, max_tokens: int) -> tuple[float, int]:
    start = time.perf_counter()
    with httpx.Client(timeout=600, trust_env=False) as client:
        response = client.post(f"{url}/completions", json={"model": model, "prompt": prompt,
                                                           "max_tokens": max_tokens, "temperature": 0.0})
    response.raise_for_status()
    return time.perf_counter() - start, int(response.json()["usage"]["completion_tokens"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--group", type=Path, default=None, help="trained adapters dir (default: untrained ones)")
    parser.add_argument("--requests", type=int, default=16, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    base = resolve_model("default")
    table = Table(title=f"mixed-adapter serving ({args.requests} greedy requests per level, "
                        f"max {args.max_tokens} new tokens)")
    for col in ("concurrency", "wall s", "completion tokens/s", "latency p50 s", "latency p95 s"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="autoact-bench-") as tmp:
        adapters = group_adapters(args.group) if args.group else untrained_adapters(base.path, Path(tmp))
        with FastChatStack(base, port=free_port(), adapters=adapters) as stack:
            names = stack.model_names
            jobs = [(names[i % len(names)], PROMPTS[i % len(PROMPTS)]) for i in range(args.requests)]
            one(stack.base_url, names[0], PROMPTS[0], 4)  # warm-up
            for level in (int(c) for c in args.concurrency.split(",")):
                start = time.perf_counter()
                with ThreadPoolExecutor(max_workers=level) as pool:
                    done = list(pool.map(lambda j: one(stack.base_url, j[0], j[1], args.max_tokens), jobs))
                wall = time.perf_counter() - start
                lat = [d[0] for d in done]
                table.add_row(str(level), f"{wall:.1f}", f"{sum(d[1] for d in done) / wall:.1f}",
                              f"{pct(lat, 0.5):.2f}", f"{pct(lat, 0.95):.2f}")
            group_rss = psutil.Process(stack.pids["worker"]).memory_info().rss / 2**20
        with FastChatStack(base, port=free_port()) as plain:
            one(plain.base_url, base.name, PROMPTS[0], args.max_tokens)
            plain_rss = psutil.Process(plain.pids["worker"]).memory_info().rss / 2**20
    console = Console(width=150)  # tables are read in logs, not only terminals
    console.print(table)
    console.print(f"worker RSS: {group_rss:.0f} MiB serving {', '.join(names)} on shared weights; "
                  f"{plain_rss:.0f} MiB for a plain worker serving {base.name} alone")
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
                  f"model: {base.name} (fp32, CPU), FastChat multi_model_worker, one request at a time")


if __name__ == "__main__":
    main()
