"""Benchmark: LoRA training speed (tokens/s) of `autoact train` on the embedded model.

Trains a few optimizer steps per setting on role pairs (a differentiated dataset's
file, or synthetic pairs of a given prompt length) and prints tokens/s, seconds per
step and the peak resident memory of the process, with the machine and settings.

    .venv/bin/python benchmarks/lora_training_speed.py [--data DIR/plan.jsonl] [--steps 6]
        [--settings "bs=1;bs=4;bs=4,gc"] [--prompt-words 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from serving.model_store import resolve_model
from training.lora import TrainConfig, train_adapter


def synthetic_pairs(path: Path, n: int, words: int) -> Path:
    """`n` plan-like pairs whose prompts hold about `words` words."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            context = " ".join(f"word{(i * 7 + k) % 97}" for k in range(words))
            f.write(json.dumps({"prompt": f"Question: {context}?\nThought 1:",
                                "completion": f" I should look up item {i} first.\n"}) + "\n")
    return path


def parse_setting(text: str) -> dict:
    """`bs=4,gc,r=16` → batch size 4, gradient checkpointing, LoRA rank 16."""
    out: dict = {"batch_size": 1, "gradient_checkpointing": False, "lora_r": 8}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, _, value = part.partition("=")
        if key == "gc":
            out["gradient_checkpointing"] = True
        elif key == "bs":
            out["batch_size"] = int(value)
        elif key == "r":
            out["lora_r"] = int(value)
        else:
            raise SystemExit(f"unknown setting {part!r} (use bs=N, gc, r=N)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="pairs JSONL (default: synthetic pairs)")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per setting")
    parser.add_argument("--settings", default="bs=1;bs=4;bs=4,gc", help="';'-separated settings")
    parser.add_argument("--prompt-words", type=int, default=300, help="synthetic prompt length")
    parser.add_argument("--base", default="default")
    args = parser.parse_args()
    base = resolve_model(args.base).path
    table = Table(title=f"LoRA training speed ({args.steps} steps per setting, fp32, q_proj+v_proj)")
    for col in ("setting", "pairs/step", "tokens/step", "s/step", "tokens/s", "peak RSS MiB"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="autoact-bench-") as tmp:
        data = args.data or synthetic_pairs(Path(tmp) / "pairs.jsonl", 64, args.prompt_words)
        for i, text in enumerate(args.settings.split(";")):
            setting = parse_setting(text)
            config = TrainConfig(max_steps=args.steps, save_steps=10_000, warmup_ratio=0.0, **setting)
            report = train_adapter(data, Path(tmp) / f"run{i}", base, config, progress=False)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            table.add_row(text, str(setting["batch_size"]), f"{report.tokens / report.steps:.0f}",
                          f"{report.train_seconds / report.steps:.2f}", f"{report.tokens_per_second:.0f}",
                          f"{rss:.0f}")
    console = Console(width=150)  # tables are read in logs, not only terminals
    console.print(table)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
                  f"base: {base.name}; data: {args.data or f'synthetic, {args.prompt_words}-word prompts'}")


if __name__ == "__main__":
    main()
