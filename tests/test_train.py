"""LoRA training of the role adapters (training/lora.py, training/sft_data.py) on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoact.errors import ConfigError, DataError
from training.lora import DEEPSPEED_CONFIGS, TrainConfig, last_checkpoint, train_adapter
from training.sft_data import IGNORE_INDEX, PairCollator, encode_pair, load_pairs

PAIRS = [
    {"prompt": "Question: Who wrote Hamlet?\nThought 1:", "completion": " I should look up Hamlet.\n"},
    {"prompt": "Question: Who wrote Hamlet?\nThought 1: I should look up Hamlet.\nAction 1:",
     "completion": " Retrieve"},
    {"prompt": "Question: Where is Paris?\nThought 1: Find Paris.\nAction 1: Retrieve[", "completion": "Paris]"},
    {"prompt": "Question: Is 2+2=4?\nProposed answer: yes\nAction 1: Reflect[", "completion": "right]"},
]


ALL_PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def write_pairs(path: Path, pairs=PAIRS, repeat: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs * repeat), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_encode_pair_scores_only_the_completion(tokenizer):
    prompt, completion = PAIRS[2]["prompt"], PAIRS[2]["completion"]
    enc = encode_pair(tokenizer, prompt, completion, max_length=512)
    prompt_ids = tokenizer(prompt).input_ids
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids
    assert enc["input_ids"] == prompt_ids + completion_ids
    assert enc["labels"] == [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    assert enc["attention_mask"] == [1] * len(enc["input_ids"]) and enc["truncated"] is False
    assert tokenizer.decode([t for t in enc["labels"] if t != IGNORE_INDEX]) == completion


def test_long_pairs_lose_the_start_of_the_prompt_not_the_completion(tokenizer):
    prompt, completion = "word " * 300 + "Action 1:", " Retrieve"
    enc = encode_pair(tokenizer, prompt, completion, max_length=20)
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids
    assert len(enc["input_ids"]) == 20 and enc["truncated"] is True
    assert enc["input_ids"][-len(completion_ids):] == completion_ids
    assert enc["labels"][-len(completion_ids):] == completion_ids
    assert enc["labels"][:-len(completion_ids)] == [IGNORE_INDEX] * (20 - len(completion_ids))


def test_collator_pads_ids_labels_and_mask():
    batch = PairCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "attention_mask": [1, 1, 1]},
        {"input_ids": [8], "labels": [8], "attention_mask": [1]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_bad_training_files_name_file_and_line(tmp_path):
    bad = tmp_path / "plan.jsonl"
    bad.write_text(json.dumps(PAIRS[0]) + "\n" + json.dumps({"prompt": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"plan\.jsonl:2: .*'completion'"):
        load_pairs(bad)
    with pytest.raises(DataError, match="not found"):
        load_pairs(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="no training pairs"):
        load_pairs(tmp_path / "empty.jsonl")


def _sequence_loss(model, tokenizer, pairs) -> float:
    import torch
    model.eval()
    total = 0.0
    with torch.no_grad():
        for p in pairs:
            enc = encode_pair(tokenizer, p["prompt"], p["completion"], 512)
            out = model(input_ids=torch.tensor([enc["input_ids"]]), labels=torch.tensor([enc["labels"]]))
            total += float(out.loss)
    return total / len(pairs)


def test_training_reduces_the_loss_and_writes_its_records(tiny_model_dir, tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM
    data = write_pairs(tmp_path / "data" / "plan.jsonl", repeat=2)
    (tmp_path / "data" / "stats.json").write_text(json.dumps({"kept": 3, "source": {"model": "m"}}))
    before = _sequence_loss(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, PAIRS)
    config = TrainConfig(epochs=10, lr=5e-2, lora_r=8, lora_dropout=0.0, batch_size=4, save_steps=1000)
    report = train_adapter(data, tmp_path / "plan", tiny_model_dir, config, progress=False, return_model=True)
    after = _sequence_loss(report.model, tokenizer, PAIRS)
    # the random tiny model's logits are nearly flat (loss ≈ ln 49152 ≈ 10.8) and LoRA on q/v moves them
    # slowly; a drop of 0.1 nats is many times the run-to-run noise (0: the run is seeded)
    assert after < before - 0.1, (before, after)
    out = tmp_path / "plan"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, report.steps + 1)) and report.steps == 20
    assert log[-1]["loss"] < log[0]["loss"]
    lrs = [r["lr"] for r in log]
    assert lrs[0] < max(lrs) and lrs[-1] < max(lrs) / 10  # warm-up, then cosine decay
    args = json.loads((out / "training_args.json").read_text())
    assert args["pairs"] == 8 and args["settings"]["lora_r"] == 8 and args["data_stats"]["kept"] == 3
    assert args["precision"] == "fp32" and args["tokens_per_second"] > 0 and "peft" in args["versions"]
    assert (out / "adapter_config.json").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "checkpoints").exists()
    again = train_adapter(data, out, tiny_model_dir, config, progress=False)
    assert again.skipped and again.steps == 20


def test_saved_adapter_reloads_with_identical_logits(tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    data = write_pairs(tmp_path / "tool.jsonl")
    config = TrainConfig(epochs=3, lr=5e-2, lora_dropout=0.1, target_modules=ALL_PROJ)
    report = train_adapter(data, tmp_path / "tool", tiny_model_dir, config, progress=False, return_model=True)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    report.model.eval()
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "tool")
    loaded.eval()
    with torch.no_grad():
        trained, reloaded = report.model(input_ids=ids).logits, loaded(input_ids=ids).logits
        with loaded.disable_adapter():
            base = loaded(input_ids=ids).logits
    assert torch.equal(trained, reloaded)
    assert not torch.allclose(base, reloaded)  # the adapter changes something


class _Crash(Exception):
    pass


def _crash_at(step: int):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step:
                raise _Crash(f"killed at step {step}")
    return Crash()


def test_interrupted_training_resumes_from_its_last_checkpoint(tiny_model_dir, tmp_path):
    data = write_pairs(tmp_path / "reflect.jsonl", repeat=2)
    out = tmp_path / "reflect"
    config = TrainConfig(epochs=4, lr=1e-2, batch_size=2, save_steps=3, seed=1)  # 4 steps per epoch
    with pytest.raises(_Crash):
        train_adapter(data, out, tiny_model_dir, config, progress=False, callbacks=[_crash_at(5)])
    assert last_checkpoint(out / "checkpoints").name == "checkpoint-3"
    with pytest.raises(ConfigError, match="--resume"):
        train_adapter(data, out, tiny_model_dir, config, progress=False)
    report = train_adapter(data, out, tiny_model_dir, config, progress=False, resume=True)
    assert report.steps == 16
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 17))  # steps 4 and 5 were redone, not duplicated
    assert json.loads((out / "training_args.json").read_text())["resumed_from_step"] == 3

    # the resumed run ends where an uninterrupted one ends
    whole = train_adapter(data, tmp_path / "whole", tiny_model_dir, config, progress=False)
    whole_log = [json.loads(line) for line in (tmp_path / "whole" / "train_log.jsonl").read_text().splitlines()]
    assert whole.steps == 16 and whole_log[-1]["loss"] == pytest.approx(log[-1]["loss"], rel=1e-4)


def test_bad_settings_are_refused(tiny_model_dir, tmp_path):
    data = write_pairs(tmp_path / "plan.jsonl")
    with pytest.raises(ConfigError, match="target-modules"):
        train_adapter(data, tmp_path / "a", tiny_model_dir, TrainConfig(target_modules=("nope_proj",)),
                      progress=False)
    with pytest.raises(ConfigError, match="lora_r"):
        train_adapter(data, tmp_path / "b", tiny_model_dir, TrainConfig(lora_r=0), progress=False)
    with pytest.raises(ConfigError, match="config.json"):
        train_adapter(data, tmp_path / "c", tmp_path, TrainConfig(), progress=False)


@pytest.mark.parametrize("name", ["zero2.json", "zero3.json"])
def test_shipped_deepspeed_configs_leave_the_schedule_to_the_trainer(name):
    config = json.loads((DEEPSPEED_CONFIGS / name).read_text())
    assert config["zero_optimization"]["stage"] == int(name[4])
    assert config["optimizer"]["params"]["lr"] == "auto"
    sched = config["scheduler"]
    assert sched["type"] == "WarmupCosineLR"
    assert sched["params"]["total_num_steps"] == "auto" and sched["params"]["warmup_num_steps"] == "auto"
    assert config["train_micro_batch_size_per_gpu"] == "auto"


def test_deepspeed_zero2_trains_a_few_steps_on_the_cpu_accelerator(tiny_model_dir, tmp_path):
    """The shipped ZeRO-2 config through `autoact train --deepspeed` (one process, DeepSpeed's CPU accelerator).

    `torch_adam` keeps DeepSpeed from compiling its fused Adam op here; the first run on a
    machine still compiles DeepSpeed's shared-memory communication op (about a minute).
    """
    import os
    import subprocess
    import sys
    config = json.loads((DEEPSPEED_CONFIGS / "zero2.json").read_text())
    config["optimizer"]["params"]["torch_adam"] = True
    ds_config = tmp_path / "zero2-cpu.json"
    ds_config.write_text(json.dumps(config))
    data = write_pairs(tmp_path / "plan.jsonl", repeat=2)
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(__import__("serving.launcher", fromlist=["free_port"]).free_port())}
    proc = subprocess.run(
        [sys.executable, "-m", "autoact", "train", "--data", str(data), "--out", str(tmp_path / "ds"),
         "--base", str(tiny_model_dir), "--max-steps", "3", "--batch-size", "2", "--deepspeed", str(ds_config),
         "--no-progress"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DeepSpeed" in proc.stdout + proc.stderr
    args = json.loads((tmp_path / "ds" / "training_args.json").read_text())
    assert args["settings"]["deepspeed"] == str(ds_config) and args["steps"] == 3
    log = [json.loads(line) for line in (tmp_path / "ds" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and log[1]["lr"] > 0  # DeepSpeed's scheduler warmed up
    assert (tmp_path / "ds" / "adapter_model.safetensors").stat().st_size > 0


def test_training_can_continue_from_an_earlier_adapter(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file
    data = write_pairs(tmp_path / "plan.jsonl")
    first = TrainConfig(epochs=2, lr=5e-2, lora_r=4, lora_dropout=0.0, target_modules=("q_proj",))
    train_adapter(data, tmp_path / "first", tiny_model_dir, first, progress=False)
    # a fresh LoRA starts with B = 0; continuing starts from the first adapter's trained B
    frozen = TrainConfig(max_steps=1, lr=1e-12, lora_r=8, lora_dropout=0.0, init_adapter=str(tmp_path / "first"))
    train_adapter(data, tmp_path / "second", tiny_model_dir, frozen, progress=False)
    a = load_file(tmp_path / "first" / "adapter_model.safetensors")
    b = load_file(tmp_path / "second" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and any("lora_B" in k and a[k].any() for k in a)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # rank 4 and q_proj carried over
