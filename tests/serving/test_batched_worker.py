"""The continuous-batching worker (serving/batched_engine.py, serving/batched_worker.py).

The engine is held to FastChat's own `generate_stream` request by request (same text, usage,
finish reason and logprobs), whatever the mix of adapters, arrival order, cancellations and
prefix reuse; the worker is held to FastChat's stock worker through the real controller and
OpenAI API server.
"""

from __future__ import annotations

import json
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from serving.batched_engine import BatchedEngine, run_all
from serving.engine_requests import EngineOverloaded
from serving.launcher import FastChatStack, free_port
from serving.model_store import resolve_model
from serving.prefix_cache import PrefixCache, _PrefixEntry
from tests.support.serving import (
    ADAPTERS,
    PROMPTS,
    complete,
    make_adapter,
    mixed_requests,
    same_output,
)


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batched-adapters")
    return {name: make_adapter(tiny_model_dir, root / name, seed) for seed, name in enumerate(ADAPTERS, 11)}


@pytest.fixture(scope="module")
def engine(tiny_model_dir, adapters):
    with BatchedEngine(tiny_model_dir, adapters, base_name="tiny", dtype="float32", max_batch_size=5) as eng:
        yield eng


@pytest.fixture(scope="module")
def reference(tiny_model_dir, adapters):
    """FastChat's stock generate_stream on the base model or one adapter: the final output."""
    from fastchat.serve.inference import generate_stream
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    models = {"tiny": AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()}
    for name, path in adapters.items():
        models[name] = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(path)).eval()

    def run(params: dict) -> dict:
        out: dict = {}
        for out in generate_stream(models[params["model"]], tokenizer, dict(params), "cpu", 2048, 2):
            pass
        return out
    return run








def test_mixed_concurrent_requests_match_fastchat_generate_stream(engine, reference):
    requests = mixed_requests(20, seed=1)
    outputs = run_all(engine, requests)  # all queued at once: batched across adapters, admitted as rows free up
    mismatched = [(r, o) for r, o in zip(requests, outputs) if not same_output(o, reference(r))]
    assert not mismatched, mismatched[:2]
    assert engine.stats["batched_rows"] > engine.stats["steps"]  # rows really shared decoding steps


def test_arrival_order_does_not_change_outputs(engine):
    requests = mixed_requests(12, seed=2)
    forward = run_all(engine, requests)
    backward = run_all(engine, list(reversed(requests)))[::-1]
    boxes = []
    for params in requests:  # each one joins a batch that is already decoding
        box: queue.Queue = queue.Queue()
        engine.submit(params, lambda out, box=box: box.put(out) if out.get("finish_reason") else None)
        boxes.append(box)
        time.sleep(0.01)
    staggered = [box.get(timeout=120) for box in boxes]

    def strip(outs: list[dict]) -> list[tuple]:
        return [(o["text"], o["usage"], o["finish_reason"]) for o in outs]

    assert strip(forward) == strip(backward) == strip(staggered)


def test_cancelled_request_leaves_other_rows_alone(engine):
    requests = mixed_requests(6, seed=3)
    alone = run_all(engine, requests)
    long = {"model": "plan", "prompt": PROMPTS[0], "temperature": 0.0, "max_new_tokens": 200, "stop_token_ids": [-1]}
    received: queue.Queue = queue.Queue()
    victim = engine.submit(long, received.put)
    received.get(timeout=60)  # it is decoding
    boxes = []
    for params in requests:
        box: queue.Queue = queue.Queue()
        engine.submit(params, lambda out, box=box: box.put(out) if out.get("finish_reason") else None)
        boxes.append(box)
    victim.cancel()
    together = [box.get(timeout=120) for box in boxes]
    assert [o["text"] for o in together] == [o["text"] for o in alone]
    time.sleep(0.5)
    assert victim not in engine._batch.rows and engine.queue_length == 0


def test_prefix_reuse_gives_the_same_logprobs(engine, reference):
    prompt = "Question: which river is longer, the Nile or the Amazon? " * 4 + "\nAction: "
    hits = engine.prefix_cache.hits
    for model in ("tiny", "plan"):
        for candidate in ("Retrieve", "Lookup", "Finish[Nile]"):
            params = {"model": model, "prompt": prompt + candidate, "temperature": 0.0, "max_new_tokens": 1,
                      "echo": True, "logprobs": 1}
            assert same_output(engine.generate_one(params, timeout=60), reference(params)), (model, candidate)
    assert engine.prefix_cache.hits - hits == 4  # the 2nd and 3rd candidate of each model reused the prompt


def test_candidates_sent_together_prefill_their_shared_prompt_once(tiny_model_dir, adapters, reference):
    """Scoring sends one echo request per candidate at once: the first of each model computes the
    prompt, the others reuse its cache in a second forward, with unchanged outputs."""
    prompt = "Question: which river is longer, the Nile or the Amazon? Thought: compare them. " * 3 + "Action:"
    requests = [{"model": model, "prompt": prompt + f" {candidate}", "temperature": 0.0, "max_new_tokens": 1,
                 "echo": True, "logprobs": 1} for model in ("tiny", "tool") for candidate in ADAPTER_CANDIDATES]
    eng = BatchedEngine(tiny_model_dir, adapters, base_name="tiny", dtype="float32", max_batch_size=8)
    boxes: list[queue.Queue] = []
    for params in requests:  # all waiting before the engine looks: one admission sees them together
        box: queue.Queue = queue.Queue()
        eng.submit(params, lambda out, box=box: box.put(out) if out.get("finish_reason") else None)
        boxes.append(box)
    with eng:
        outputs = [box.get(timeout=120) for box in boxes]
    assert all(same_output(o, reference(r)) for o, r in zip(outputs, requests))
    per_model = len(ADAPTER_CANDIDATES) - 1
    assert eng.prefix_cache.hits == 2 * per_model  # every candidate but each model's first reused the prompt
    assert eng.stats["prefill_tokens"] < len(requests) * len(eng.tokenizer(prompt).input_ids) / 2


ADAPTER_CANDIDATES = ("Retrieve", "Lookup", "Search", "Finish")


def test_bf16_engine_stays_close_to_fp32(tiny_model_dir, adapters, reference):
    params = {"model": "plan", "prompt": PROMPTS[0], "temperature": 0.0, "max_new_tokens": 1, "echo": True,
              "logprobs": 1}
    with BatchedEngine(tiny_model_dir, adapters, base_name="tiny", dtype="bfloat16") as eng:
        assert next(eng.model.parameters()).dtype is __import__("torch").bfloat16
        ours = eng.generate_one(params, timeout=60)["logprobs"]["token_logprobs"][1:]
    theirs = reference(params)["logprobs"]["token_logprobs"][1:]
    assert ours == pytest.approx(theirs, abs=0.05)


def test_prefix_cache_is_per_adapter_and_bounded():
    import torch

    cache = PrefixCache(max_tokens=40, min_reuse=2)
    layer = [(torch.zeros(1, 1, 20, 2), torch.zeros(1, 1, 20, 2))]
    cache.store("a", _PrefixEntry(tuple(range(20)), layer, None))
    assert cache.lookup("b", list(range(30)), need_logprobs=False) == (None, 0)
    assert cache.lookup("a", list(range(30)), need_logprobs=True) == (None, 0)  # no logprobs stored
    entry, reuse = cache.lookup("a", [*range(10), 99], need_logprobs=False)
    assert entry is not None and reuse == 9  # one less than the shared 10: the last logits are recomputed
    cache.store("a", _PrefixEntry(tuple(range(100, 120)), layer, None))
    cache.store("a", _PrefixEntry(tuple(range(200, 220)), layer, None))  # 60 tokens > 40: the oldest goes
    assert len(cache) == 2 and cache.lookup("a", list(range(30)), need_logprobs=False) == (None, 0)


def test_overfull_queue_and_unknown_model_are_refused(tiny_model_dir):
    eng = BatchedEngine(tiny_model_dir, base_name="tiny", dtype="float32", max_queue=2)  # not started: nothing drains
    params = {"model": "tiny", "prompt": "Hi", "max_new_tokens": 2}
    eng.submit(params, lambda out: None)
    eng.submit(params, lambda out: None)
    with pytest.raises(EngineOverloaded, match="overloaded: 2 requests queued or running"):
        eng.submit(params, lambda out: None)
    with pytest.raises(KeyError, match="'plan' is not served here"):
        eng.submit({**params, "model": "plan"}, lambda out: None)


def test_a_prompt_too_long_for_the_context_is_an_error(engine):
    out = engine.generate_one({"model": "tiny", "prompt": "Hi", "max_new_tokens": 5000}, timeout=30)
    assert out["error_code"] == 40303 and "no room for the prompt" in out["text"]


@pytest.fixture(scope="module")
def stacks(tiny_model_dir, adapters, tmp_path_factory):
    """The stock multi-adapter worker and ours, fp32, serving the same adapters."""
    base = resolve_model(str(tiny_model_dir))
    logs = tmp_path_factory.mktemp("engine-stacks")
    with FastChatStack(base, port=free_port(), log_dir=logs / "stock", adapters=adapters, engine="stock") as stock, \
            FastChatStack(base, port=free_port(), log_dir=logs / "batched", adapters=adapters, engine="batched",
                          dtype="float32", max_batch_size=4) as batched:
        yield stock, batched


@pytest.mark.integration
def test_batched_worker_answers_like_the_stock_worker_through_fastchat(stacks):
    stock, batched = stacks
    assert batched.model_names == stock.model_names
    names = batched.model_names
    requests = [(names[i % len(names)], PROMPTS[(i * 7) % len(PROMPTS)], i % 3 == 0) for i in range(24)]
    expected = [complete(stock, *r) for r in requests]
    with ThreadPoolExecutor(max_workers=12) as pool:  # streamed and unstreamed, all adapters at once
        together = list(pool.map(lambda r: complete(batched, *r), requests))
    assert together == expected
    with httpx.Client(timeout=30, trust_env=False) as client:
        stats = client.post(f"{batched.worker_url}/engine_stats").json()
        body = {"model": names[1], "prompt": "Hello there", "echo": True, "max_tokens": 1, "logprobs": 1,
                "temperature": 0.0}
        ours = client.post(f"{batched.base_url}/completions", json=body).json()["choices"][0]
        theirs = client.post(f"{stock.base_url}/completions", json=body).json()["choices"][0]
    assert stats["batched_rows"] > stats["steps"] and stats["dtype"] == "float32"
    assert ours["logprobs"]["tokens"] == theirs["logprobs"]["tokens"]
    assert ours["logprobs"]["token_logprobs"][1:] == pytest.approx(theirs["logprobs"]["token_logprobs"][1:], abs=1e-4)


@pytest.mark.integration
def test_worker_streams_and_names_an_unknown_model(stacks):
    _, batched = stacks
    body = {"model": "plan", "prompt": PROMPTS[2], "temperature": 0.0, "max_new_tokens": 8, "echo": False}
    with httpx.Client(timeout=60, trust_env=False) as client:
        with client.stream("POST", f"{batched.worker_url}/worker_generate_stream", json=body) as response:
            chunks = [json.loads(c) for c in response.read().split(b"\0") if c.strip()]
        final = client.post(f"{batched.worker_url}/worker_generate", json=body).json()
        unknown = client.post(f"{batched.worker_url}/worker_generate", json={**body, "model": "nope"}).json()
    assert len(chunks) >= 2 and chunks[-1]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["text"] == final["text"]
    assert unknown["error_code"] == 40301 and "'nope' is not served here" in unknown["text"]


@pytest.mark.parametrize("prompt_lengths", [(3, 5, 9, 4), (200, 3, 150, 7)], ids=["rows-move-up", "columns-trimmed"])
def test_dropping_rows_keeps_every_kept_rows_cache(prompt_lengths):
    """A batch that loses rows keeps each remaining row's keys, values, mask and position, whether
    the rows move up in the same buffers or (with much padding left over) into narrower ones."""
    import torch

    from serving.kv_buffers import _Batch

    torch.manual_seed(0)
    caches = [[(torch.randn(1, 2, n, 4), torch.randn(1, 2, n, 4)) for _ in range(3)] for n in prompt_lengths]
    batch = _Batch()
    batch.add([(f"row{i}", layers, n) for i, (layers, n) in enumerate(zip(caches, prompt_lengths))])
    trimmed = prompt_lengths[0] == 200  # the longest row leaves 193 padding columns in front of the rest
    batch.keep([1, 3] if trimmed else [0, 2, 3])
    kept = [int(name[3:]) for name in batch.rows]
    assert kept == ([1, 3] if trimmed else [0, 2, 3]) and batch.layers[0].kbuf.shape[0] == len(kept)
    assert batch.length == (max(prompt_lengths[i] for i in kept) if trimmed else max(prompt_lengths))
    for b, i in enumerate(kept):
        n = prompt_lengths[i]
        assert batch.mask[b].sum() == n and batch.mask[b, batch.length - n:].all()
        assert int(batch.positions[b]) == n
        for layer, (k, v) in zip(batch.layers, caches[i]):
            assert torch.equal(layer.keys[b, :, batch.length - n:], k[0])
            assert torch.equal(layer.values[b, :, batch.length - n:], v[0])


def test_freed_memory_goes_back_to_the_system_after_work_only(tiny_model_dir):
    from serving import memory

    if memory._MALLOC_TRIM is None:
        pytest.skip("no malloc_trim in this C library")
    with BatchedEngine(tiny_model_dir, base_name="tiny", dtype="float32") as eng:
        time.sleep(1.2)
        assert eng.stats["releases"] == 0  # nothing ran yet
        run_all(eng, [{"model": "tiny", "prompt": "1, 2, 3,", "temperature": 0.0, "max_new_tokens": 4}])
        time.sleep(1.2)  # quiet for half a second: the engine trims once
        assert eng.stats["releases"] == 1
        time.sleep(1.2)
        assert eng.stats["releases"] == 1  # no work since


def test_auto_dtype_asks_the_device_and_the_heap_is_trimmed_on_the_cpu_only(monkeypatch):
    import torch

    import core.hardware as hardware
    from serving import memory
    from serving.batched_engine import resolve_dtype

    monkeypatch.setattr(hardware, "bf16_supported", lambda device: device.startswith("cuda"))
    assert resolve_dtype("auto", "cuda:0") == torch.bfloat16 and resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("float32", "cuda") == torch.float32
    trims: list[int] = []
    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: trims.append(pad) or 1)
    for on_cpu in (False, True):
        holder = memory.MemoryReleaseMixin()
        holder.stats, holder.on_cpu, holder.release_every_s = {"steps": 5, "prefills": 1, "releases": 0,
                                                               "release_s": 0.0}, on_cpu, 15.0
        holder._released_at, holder._released_at_work = 0.0, 0.0
        holder._release_memory(quiet=True)
        assert trims == ([0] if on_cpu else [])


def test_the_engine_runs_on_the_device_it_is_given(tiny_model_dir):
    with BatchedEngine(tiny_model_dir, dtype="float32", device="cpu") as eng:
        out = eng.generate_one({"model": eng.base_name, "prompt": "Hello", "max_new_tokens": 3, "temperature": 0.0},
                               timeout=60)
    assert eng.device == "cpu" and eng.on_cpu and next(eng.model.parameters()).device.type == "cpu"
    assert out["finish_reason"] in ("stop", "length")
