"""GPU check: the batched engine and LoRA training on CUDA, in a few minutes, with nothing downloaded.

    .venv/bin/python benchmarks/gpu_check.py [--device cuda] [--size 1b|tiny] [--out DIR]

1. makes a randomly initialised Llama-architecture model on the spot (``1b``: about 1.0 B
   parameters, 20 layers of width 2048 with grouped-query attention; ``tiny``: 2 layers, for a
   smoke run on the CPU) with the embedded model's tokenizer, and three random LoRA adapters
   (plan, tool, reflect) on it;
2. checks that the batched engine on the device gives, for requests of mixed adapters sent
   all at once, the greedy text it gives them one at a time (in fp32, where batching changes
   no token of a random model's near-flat distributions);
3. measures generated tokens per second at concurrency 1, 16 and 64 (mixed adapters, in the
   device's native precision: bf16 where it has it);
4. trains a LoRA adapter for a few steps on the device (``autoact train``'s code) and states
   its tokens per second and peak memory.

Prints the machine and one table, and writes ``gpu_check.json`` to ``--out`` (default: a new
temporary folder). Random weights say nothing about quality: this checks devices and speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)  # run as a script: benchmarks/serving.py and training.py must not shadow packages

import argparse
import json
import platform
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from core.hardware import resolve_device

SIZES: dict[str, dict[str, int]] = {
    "1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 20, "num_attention_heads": 32,
           "num_key_value_heads": 8},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
}
ADAPTERS = ("plan", "tool", "reflect")
PROMPTS = ["Question: Which city is the capital of France?\nThought 1:", "Options: (A) rock (B) milk\nAnswer:",
           "Retrieve[Paris]\nObservation 1:", "The sun rises in the", "Action 2: Finish[", "def add(a, b):"]


def machine(device: str) -> str:
    import torch
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        return (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}; "
                f"torch {torch.__version__}, CUDA {torch.version.cuda}; {platform.platform()}")
    from benchmarks.training import machine as cpu_machine
    return cpu_machine()


def make_model(size: str, where: Path, seed: int = 0) -> tuple[Path, dict[str, Path], int]:
    """A random Llama with SmolLM2's tokenizer, and three random LoRA adapters; (model dir, adapters, parameters)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from serving.model_store import load_smollm2_tokenizer
    tokenizer = load_smollm2_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **SIZES[size])
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    base = where / f"random-llama-{size}"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    parameters = sum(p.numel() for p in model.parameters())
    lora = LoraConfig(r=8, lora_alpha=16, init_lora_weights=False, target_modules=["q_proj", "v_proj"])  # B random
    peft_model = None
    for i, name in enumerate(ADAPTERS):  # on the saved base itself: no second copy of a 1 B model
        torch.manual_seed(seed + 1 + i)
        if peft_model is None:
            peft_model = get_peft_model(model, lora, adapter_name=name)
        else:
            peft_model.add_adapter(name, lora)
    assert peft_model is not None
    peft_model.save_pretrained(where)  # one folder per adapter name
    adapters = {name: where / name for name in ADAPTERS}
    return base, adapters, parameters


def _requests(n: int, tokens: int, base_name: str) -> list[dict[str, Any]]:
    names = [base_name, *ADAPTERS]
    return [{"model": names[i % len(names)], "prompt": PROMPTS[i % len(PROMPTS)] + f" {i}", "temperature": 0.0,
             "max_new_tokens": tokens} for i in range(n)]


def check_engine(base: Path, adapters: dict[str, Path], device: str, rows: dict[str, Any]) -> None:
    """Concurrent equals serial (fp32), then tokens/s at concurrency 1/16/64 (native precision)."""
    import torch

    from serving.batched_engine import BatchedEngine, run_all
    with BatchedEngine(base, adapters, base_name="base", dtype="float32", device=device, max_batch_size=64) as eng:
        requests = _requests(16, 16, "base")
        serial = [eng.generate_one(r, timeout=600)["text"] for r in requests]
        together = [out["text"] for out in run_all(eng, requests)]
    rows["equal"] = sum(a == b for a, b in zip(serial, together))
    rows["equal_of"] = len(requests)
    del eng
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    with BatchedEngine(base, adapters, base_name="base", dtype="auto", device=device, max_batch_size=64) as eng:
        rows["engine_dtype"] = str(eng.dtype).replace("torch.", "")
        run_all(eng, _requests(4, 8, "base"))  # warm-up: kernels, allocator
        speeds = {}
        for concurrency in (1, 16, 64):
            requests = _requests(concurrency, 64, "base")
            start = time.perf_counter()
            outs = run_all(eng, requests)
            seconds = time.perf_counter() - start
            generated = sum(int(o.get("usage", {}).get("completion_tokens", 0)) for o in outs)
            speeds[concurrency] = {"tokens": generated, "seconds": round(seconds, 2),
                                   "tokens_per_s": round(generated / seconds, 1)}
        rows["serving"] = speeds
        if device.startswith("cuda"):
            rows["serving_peak_gib"] = round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**30, 2)


def check_training(base: Path, where: Path, device: str, rows: dict[str, Any], steps: int) -> None:
    """A few LoRA steps with `autoact train`'s code; tokens/s and peak memory."""
    import torch

    from training.lora import TrainConfig, train_adapter
    pairs = where / "pairs.jsonl"
    text = " ".join(["The plan agent thinks, then names a tool."] * 40)
    pairs.write_text("".join(json.dumps({"prompt": f"Question {i}: {text}\nThought 1:",
                                         "completion": f" Retrieve item {i}.\n"}) + "\n" for i in range(64)))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))
    report = train_adapter(pairs, where / "trained", base, TrainConfig(max_steps=steps, batch_size=8, max_length=512),
                           progress=False)
    rows["training"] = {"steps": report.steps, "tokens": report.tokens, "seconds": round(report.train_seconds, 2),
                        "tokens_per_s": round(report.tokens_per_second, 1), "precision": report.precision}
    if device.startswith("cuda"):
        rows["training"]["peak_gib"] = round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**30, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (with --size tiny: a smoke run)")
    parser.add_argument("--size", choices=list(SIZES), default="1b")
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="where gpu_check.json goes (default: a new temp dir)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    console = Console()
    where = machine(device)
    console.print(f"machine: {where}")
    started = time.perf_counter()
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {"device": device, "size": args.size, "machine": where}
    with tempfile.TemporaryDirectory(prefix="gpu-check-models-") as tmp:
        t0 = time.perf_counter()
        base, adapters, rows["parameters"] = make_model(args.size, Path(tmp))
        rows["make_model_s"] = round(time.perf_counter() - t0, 1)
        check_engine(base, adapters, device, rows)
        check_training(base, Path(tmp), device, rows, args.train_steps)
    rows["wall_s"] = round(time.perf_counter() - started, 1)
    (out / "gpu_check.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")

    size = rows["parameters"]
    size_text = f"{size / 1e9:.2f} B" if size >= 1e8 else f"{size / 1e6:.1f} M"
    table = Table(title=f"GPU check: random Llama, {size_text} parameters, on {device}")
    table.add_column("check")
    table.add_column("result", justify="right")
    table.add_row("concurrent = serial (fp32, greedy, mixed adapters)", f"{rows['equal']} of {rows['equal_of']}")
    for concurrency, speed in rows["serving"].items():
        table.add_row(f"serving, concurrency {concurrency} ({rows['engine_dtype']})",
                      f"{speed['tokens_per_s']:.0f} tokens/s ({speed['tokens']} in {speed['seconds']} s)")
    if "serving_peak_gib" in rows:
        table.add_row("serving, peak memory", f"{rows['serving_peak_gib']} GiB")
    train = rows["training"]
    table.add_row(f"LoRA training ({train['precision']}, batch 8 × 512)",
                  f"{train['tokens_per_s']:.0f} tokens/s ({train['steps']} steps, {train['seconds']} s)")
    if "peak_gib" in train:
        table.add_row("LoRA training, peak memory", f"{train['peak_gib']} GiB")
    table.add_row("wall time (model made in)", f"{rows['wall_s']} s ({rows['make_model_s']} s)")
    console.print(table)
    console.print(f"written: {out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
