"""Benchmark: LoRA training speed (tokens/s) of `autoact train` on the embedded model, fp32 vs bf16.

Trains a few optimizer steps per setting, each in a fresh process (so peak memory
is the setting's own), on pairs cut to exactly `--seq-len` tokens (synthetic
plan-like pairs: a long prompt, a short completion) or on a role file of a
differentiated dataset (`--data`, lengths as they are), through `train_adapter`
with the settings `autoact train` uses. The first step (one-time set-up) is not
timed. Prints tokens/s, seconds per step, padding share and peak RSS per setting,
with the machine and settings.

    .venv/bin/python benchmarks/training.py [--steps 4] [--seq-len 512]
        [--settings "p=fp32,bs=1;p=fp32,bs=4;p=bf16,bs=1;p=bf16,bs=4"] [--data DIR/plan.jsonl]

A setting is comma-separated: p=fp32|bf16 (precision), bs=N (batch size), ga=N
(gradient accumulation), gc (gradient checkpointing), r=N (LoRA rank), drop=X (LoRA
dropout), nogroup (batches not length-grouped), attn=NAME (attention: auto, chunked, sdpa, eager).
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
import resource
import subprocess
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.table import Table

DEFAULT_SETTINGS = "p=fp32,bs=1;p=fp32,bs=4;p=bf16,bs=1;p=bf16,bs=4"


def synthetic_pairs(path: Path, n: int, words: int) -> Path:
    """`n` plan-like pairs whose prompts hold about `words` words (cut to --seq-len when encoded)."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            context = " ".join(f"word{(i * 7 + k) % 97}" for k in range(words))
            f.write(json.dumps({"prompt": f"Question: {context}?\nThought 1:",
                                "completion": f" I should look up item {i} first.\n"}) + "\n")
    return path


def parse_setting(text: str) -> dict[str, Any]:
    """`p=bf16,bs=4,gc` → TrainConfig fields: bf16, batch size 4, gradient checkpointing."""
    out: dict[str, Any] = {"precision": "fp32", "batch_size": 1}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, _, value = part.partition("=")
        if key == "gc":
            out["gradient_checkpointing"] = True
        elif key == "nogroup":
            out["group_by_length"] = False
        elif key == "p" and value in ("fp32", "bf16", "auto"):
            out["precision"] = value
        elif key in ("bs", "ga", "r") and value.isdigit():
            out[{"bs": "batch_size", "ga": "grad_accum", "r": "lora_r"}[key]] = int(value)
        elif key == "drop":
            out["lora_dropout"] = float(value)
        elif key == "attn" and value:
            out["attention"] = value
        else:
            raise SystemExit(f"unknown setting {part!r} "
                             "(use p=fp32|bf16, bs=N, ga=N, gc, r=N, drop=X, nogroup, attn=NAME)")
    return out


def _step_clock() -> Any:
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):  # type: ignore[misc]
        """Time and tokens trained on (padding apart) at the end of every optimizer step."""

        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

    return StepClock()


def run_one(setting: dict[str, Any], data: Path, base: Path, steps: int, seq_len: int, out: Path) -> dict[str, Any]:
    """Train `steps` steps with `setting`; speed over the steps after the first."""
    from training.lora import TrainConfig, train_adapter
    config = TrainConfig(max_steps=steps, save_steps=10_000, warmup_ratio=0.0, max_length=seq_len, **setting)
    clock = _step_clock()
    report = train_adapter(data, out, base, config, progress=False, callbacks=[clock])
    (t0, tokens0), (t1, tokens1) = clock.marks[0], clock.marks[-1]
    timed, tokens, seconds = len(clock.marks) - 1, tokens1 - tokens0, t1 - t0
    return {"precision": report.precision, "steps": timed, "tokens_per_step": tokens / timed,
            "s_per_step": seconds / timed, "tokens_per_s": tokens / seconds,
            "padding": report.padding_share, "final_loss": report.final_loss, "attention": report.attention,
            "threads": json.loads((out / "training_args.json").read_text())["threads"],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def machine() -> str:
    from core.hardware import cpu_bf16_supported, cpu_threads
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine())
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    bf16 = ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "none"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{model}, {os.cpu_count()} logical CPUs ({cpu_threads()} available), {mem:.0f} GiB RAM; "
            f"bf16 flags: {bf16} (native bf16: {'yes' if cpu_bf16_supported() else 'no'}); "
            f"{platform.platform()}; load average at start {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="pairs JSONL (default: synthetic pairs)")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per setting (the first is not timed)")
    parser.add_argument("--seq-len", type=int, default=512, help="tokens per example (--max-length of train)")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="';'-separated settings (see above)")
    parser.add_argument("--base", default="default", help="base model: default (embedded SmolLM2) or a model dir")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one setting, in a fresh process
    args = parser.parse_args()
    if args.steps < 2:
        raise SystemExit("--steps must be at least 2 (the first step is not timed)")
    settings = [s.strip() for s in args.settings.split(";") if s.strip()]
    parsed = [parse_setting(s) for s in settings]  # refuse a bad setting before any training

    if args.child is not None:
        job = json.loads(args.child)
        print(json.dumps(run_one(job["setting"], Path(job["data"]), Path(job["base"]), args.steps, args.seq_len,
                                 Path(job["out"]))))
        return

    import torch
    import transformers

    from serving.model_store import resolve_model
    base = resolve_model(args.base).path
    console = Console(width=160)  # tables are read in logs, not only terminals
    console.print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="autoact-bench-") as tmp:
        most = max(s["batch_size"] * s.get("grad_accum", 1) for s in parsed) * args.steps
        data = args.data or synthetic_pairs(Path(tmp) / "pairs.jsonl", max(64, most), args.seq_len)
        for i, (text, setting) in enumerate(zip(settings, parsed)):
            job = {"setting": setting, "data": str(data), "base": str(base), "out": str(Path(tmp) / f"run{i}")}
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job), "--steps", str(args.steps),
                                   "--seq-len", str(args.seq_len), "--settings", text],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"setting {text!r} failed:\n{proc.stderr[-3000:]}")
            rows.append((text, json.loads(proc.stdout.strip().splitlines()[-1])))
            console.print(f"  {text}: {rows[-1][1]['tokens_per_s']:.0f} tokens/s", highlight=False)
    table = Table(title=f"LoRA training speed, sequence length {args.seq_len} "
                        f"({args.steps - 1} timed steps per setting after one untimed)")
    for col in ("setting", "precision", "attention", "batch", "tokens/step", "s/step", "tokens/s", "padding",
                "final loss", "peak RSS MiB"):
        table.add_column(col, justify="right")
    for text, row in rows:
        table.add_row(text, row["precision"], row["attention"].replace("autoact_chunked_causal", "chunked"),
                      str(parse_setting(text)["batch_size"]),
                      f"{row['tokens_per_step']:.0f}", f"{row['s_per_step']:.2f}", f"{row['tokens_per_s']:.0f}",
                      f"{row['padding']:.1%}", f"{row['final_loss']:.4f}", f"{row['peak_rss_mib']:.0f}")
    console.print(table)
    data_name = args.data or f"synthetic plan-like pairs cut to {args.seq_len} tokens"
    console.print(f"base: {base.name}; data: {data_name}; unless a setting says otherwise: LoRA r=8 on "
                  f"q_proj,v_proj, dropout 0.05 (packed-bit dropout on a CPU), lr 1e-4, length-grouped batches, "
                  f"no gradient checkpointing, attention auto; "
                  f"torch {torch.__version__}, transformers {transformers.__version__}, "
                  f"{rows[0][1]['threads'] if rows else '?'} torch threads; "
                  f"load average at the end {os.getloadavg()[0]:.2f} (other work on the cores slows every row)",
                  highlight=False)


if __name__ == "__main__":
    main()
