"""Shared helpers of the serving tests: random LoRA adapters, prompts, request mixes, output comparison."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx

from serving.launcher import FastChatStack

PROMPTS = ["Question: Who wrote Hamlet?\nThought 1:", "Action 1: Retrieve[", "The capital of France is",
           "Reflect[", "Observation 2: Paris is a city.\nThought 3:", "1, 2, 3,"]
ADAPTERS = ("plan", "tool")


def make_adapter(base_dir: Path, out: Path, seed: int) -> Path:
    """An untrained LoRA adapter with random (non-zero) B matrices: it visibly changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=64, init_lora_weights=False,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"])
    get_peft_model(model, config).save_pretrained(out)
    return out


def complete(stack: FastChatStack, model: str, prompt: str, direct: bool = False, max_tokens: int = 12) -> str:
    """Greedy text for `prompt`: through the OpenAI API, or (`direct`) streamed from the worker itself.

    FastChat's API server cannot stream (pydantic 2 broke it), but its worker streams, and that is
    the path where requests for different adapters could interleave token by token.
    """
    with httpx.Client(timeout=120, trust_env=False) as client:
        if not direct:
            response = client.post(f"{stack.base_url}/completions", json={
                "model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0})
            response.raise_for_status()
            return response.json()["choices"][0]["text"]
        body = {"model": model, "prompt": prompt, "temperature": 0.0, "max_new_tokens": max_tokens, "echo": False}
        last = b""
        with client.stream("POST", f"{stack.worker_url}/worker_generate_stream", json=body) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                last += chunk
        return json.loads([c for c in last.split(b"\0") if c.strip()][-1])["text"]


def same_output(ours: dict, theirs: dict) -> bool:
    if (ours["text"], ours["usage"], ours["finish_reason"]) != (theirs["text"], theirs["usage"], theirs["finish_reason"]):
        return False
    if theirs.get("logprobs") is None:
        return ours.get("logprobs") is None
    a, b = ours["logprobs"], theirs["logprobs"]
    return (a["tokens"] == b["tokens"] and a["text_offset"] == b["text_offset"]
            and len(a["token_logprobs"]) == len(b["token_logprobs"])
            and all((x is None and y is None) or abs(x - y) < 1e-4 for x, y in zip(a["token_logprobs"], b["token_logprobs"])))


def mixed_requests(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"model": rng.choice(["tiny", *ADAPTERS]), "prompt": rng.choice(PROMPTS) + f" {i}", "temperature": 0.0,
             "max_new_tokens": rng.choice([1, 4, 9, 24]), "echo": rng.random() < 0.3,
             "logprobs": 1 if rng.random() < 0.5 else None, "stop": rng.choice([None, "\n", [".", "e"]])}
            for i in range(n)]
