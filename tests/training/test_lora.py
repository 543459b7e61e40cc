"""LoRA training of the role adapters (training/lora.py, training/sft_data.py) on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ConfigError, DataError
from training.lora import (
    DEEPSPEED_CONFIGS,
    TrainConfig,
    cpu_bf16_supported,
    last_checkpoint,
    train_adapter,
)
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
    assert args["precision"] == ("bf16" if cpu_bf16_supported() else "fp32")  # auto
    assert args["attention"] == report.attention == "autoact_chunked_causal"  # auto on a CPU
    assert report.model.config._attn_implementation == "sdpa"  # handed back for any batch layout
    assert args["threads"] >= 1 and args["tokens_per_second"] > 0 and "peft" in args["versions"]
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


def test_loss_on_scored_positions_equals_the_models_own_loss(tiny_model_dir, tmp_path, tokenizer):
    """The trainer's loss (output layer only where the next token is scored) is the model's loss, gradients too."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, TrainingArguments

    from training.lora import _trainer_class
    torch.manual_seed(0)
    lora = LoraConfig(task_type="CAUSAL_LM", r=4, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora)
    for name, param in model.named_parameters():  # B = 0 would give zero gradients on A
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    batch = PairCollator(tokenizer.pad_token_id)(
        [encode_pair(tokenizer, p["prompt"], p["completion"], 512) for p in PAIRS])
    assert batch["attention_mask"].eq(0).any()  # the batch has padding
    trainer = _trainer_class()(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                                   report_to=[]))

    def loss_and_grads(compute):
        model.zero_grad()
        loss = compute()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    ref, ref_grads = loss_and_grads(lambda: model(**batch).loss)
    ours, our_grads = loss_and_grads(lambda: trainer.compute_loss(model, dict(batch)))
    assert torch.allclose(ours, ref, rtol=1e-5), (ours, ref)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(our_grads, ref_grads))
    # with gradient accumulation the Trainer hands over the token count of all the micro-batches
    n = batch["labels"].ne(-100).sum()
    summed = trainer.compute_loss(model, dict(batch), num_items_in_batch=2 * n)
    assert torch.allclose(summed * 2 * n, ref * batch["labels"][:, 1:].ne(-100).sum(), rtol=1e-5)


def test_bf16_and_fp32_training_follow_the_same_loss_curve(tiny_model_dir, tmp_path):
    """bf16 autocast (weights and optimizer in fp32) trains like fp32: both learn, and their loss curves
    differ by less than the run-to-run noise (fp32 with another seed: another LoRA init and data order)."""
    import torch
    from transformers import TrainerCallback

    class MatmulDtypes(TrainerCallback):
        """The dtypes the MLP's products come out in while training."""

        def __init__(self):
            self.seen = set()

        def on_train_begin(self, args, state, control, model=None, **kw):
            for name, module in model.named_modules():
                if name.endswith("mlp.down_proj"):
                    module.register_forward_hook(lambda m, i, out: self.seen.add(out.dtype))

    data = write_pairs(tmp_path / "plan.jsonl", repeat=2)
    curves = {}
    for precision, seed in (("fp32", 0), ("bf16", 0), ("fp32", 1)):  # fp32 after bf16: nothing carries over
        config = TrainConfig(max_steps=12, lr=5e-2, lora_dropout=0.0, batch_size=4, precision=precision, seed=seed,
                             save_steps=1000)
        out = tmp_path / f"{precision}-{seed}"
        dtypes = MatmulDtypes()
        report = train_adapter(data, out, tiny_model_dir, config, progress=False, return_model=True,
                               callbacks=[dtypes])
        assert dtypes.seen == {torch.bfloat16 if precision == "bf16" else torch.float32}
        assert report.precision == precision
        assert json.loads((out / "training_args.json").read_text())["precision"] == precision
        assert all(p.dtype == torch.float32 for p in report.model.parameters())  # master weights stay fp32
        log = (out / "train_log.jsonl").read_text().splitlines()
        curves[precision, seed] = [json.loads(line)["loss"] for line in log]
    fp32, bf16, other_seed = curves["fp32", 0], curves["bf16", 0], curves["fp32", 1]
    assert fp32 != bf16  # bf16 really ran (its rounding shows in the losses)
    for curve in (fp32, bf16):
        assert curve[-1] < curve[0] - 0.1, curve  # both learn (the tiny random model starts near ln 49152)

    def gap(a, b):
        return sum(abs(x - y) for x, y in zip(a, b)) / len(a)
    assert gap(fp32, bf16) < gap(fp32, other_seed) / 2, (fp32, bf16, other_seed)
    assert abs(fp32[-1] - bf16[-1]) < 0.02, (fp32, bf16)


def test_length_grouped_batches_cut_padding(tiny_model_dir, tmp_path):
    short = [{"prompt": "Question: a?\nThought 1:", "completion": " look.\n"}]
    long = [{"prompt": "Question: " + "word " * 60 + "?\nThought 1:", "completion": " look.\n"}]
    data = write_pairs(tmp_path / "plan.jsonl", pairs=short + long, repeat=4)  # 4 short and 4 long, interleaved
    shares = {}
    for grouped in (True, False):
        config = TrainConfig(epochs=1, batch_size=4, group_by_length=grouped, lora_dropout=0.0, save_steps=1000)
        report = train_adapter(data, tmp_path / str(grouped), tiny_model_dir, config, progress=False)
        shares[grouped] = report.padding_share
        args = json.loads((tmp_path / str(grouped) / "training_args.json").read_text())
        assert args["padding_share"] == report.padding_share and args["settings"]["group_by_length"] is grouped
    assert shares[True] == 0.0  # the long four in one batch, the short four in the other
    assert shares[False] > 0.2, shares


def test_precision_choice_and_threads(monkeypatch):
    import os

    import torch

    from training import lora
    if torch.cuda.is_available():
        pytest.skip("CPU choices")
    assert lora._precision("fp32", None) == {"bf16": False, "use_cpu": True}
    assert lora._precision("bf16", None)["bf16"] is True  # asked for: autocast even where bf16 is emulated
    assert lora._precision("auto", None)["bf16"] is cpu_bf16_supported()
    assert lora._precision("auto", str(DEEPSPEED_CONFIGS / "zero2.json"))["bf16"] is False  # DeepSpeed casts
    monkeypatch.setattr(lora, "cpu_bf16_supported", lambda: False)
    assert lora._precision("auto", None)["bf16"] is False
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp16").check()

    assert 1 <= lora.cpu_threads() <= (os.cpu_count() or 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert lora._set_threads() == 1  # the user's setting stands
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert lora._set_threads() == lora.cpu_threads()
    finally:
        torch.set_num_threads(before)


def test_train_cli_options_reach_the_config():
    from autoact.cli import build_parser
    from autoact.cli_training import _train_config
    base = ["train", "--data", "d.jsonl", "--out", "o"]
    config = _train_config(build_parser().parse_args(base))
    assert config.precision == "auto" and config.group_by_length is True and config.attention == "auto"
    config = _train_config(build_parser().parse_args([*base, "--precision", "fp32", "--no-length-grouping",
                                                      "--attention", "eager"]))
    assert config.precision == "fp32" and config.group_by_length is False and config.attention == "eager"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--precision", "fp16"])


def test_an_unknown_attention_is_a_config_error(tiny_model_dir, tmp_path):
    data = write_pairs(tmp_path / "plan.jsonl")
    with pytest.raises(ConfigError, match="--attention no_such_kernel"):
        train_adapter(data, tmp_path / "out", tiny_model_dir, TrainConfig(max_steps=1, attention="no_such_kernel"),
                      progress=False)


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("launcher", ["torchrun", "deepspeed"])
def test_two_processes_train_the_adapter_one_process_trains(launcher, tiny_model_dir, tmp_path):
    """`autoact train` under `torchrun --nproc_per_node 2` and under `deepspeed --num_gpus 2` with ZeRO-2
    (gloo on the CPU): each process takes half of each batch, so with the same global batch the first
    epoch's losses are one process's, the adapter has the same format and weights within noise, and
    one process alone writes and reports."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    from serving.launcher import free_port
    data = write_pairs(tmp_path / "plan.jsonl",
                       [{"prompt": f"Question {i}: who wrote it?\nThought 1:", "completion": f" Look up item {i}.\n"}
                        for i in range(16)])
    common = ["train", "--data", str(data), "--base", str(tiny_model_dir), "--max-steps", "6", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    extra: list[str] = []
    if launcher == "deepspeed":
        config = json.loads((DEEPSPEED_CONFIGS / "zero2.json").read_text())
        config["optimizer"]["params"]["torch_adam"] = True  # no fused Adam op to compile here
        (tmp_path / "zero2.json").write_text(json.dumps(config))
        extra = ["--deepspeed", str(tmp_path / "zero2.json")]
        run = [str(Path(sys.executable).with_name("deepspeed")), "--num_gpus", "2", "--master_port", str(free_port()),
               "--module", "autoact"]
    else:
        run = [str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2", "--master_port",
               str(free_port()), "-m", "autoact"]
    one = subprocess.run([sys.executable, "-m", "autoact", *common, "--out", str(tmp_path / "one"), "--batch-size", "4",
                          *extra], env={**env, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
                                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())},
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    two = subprocess.run([*run, *common, "--out", str(tmp_path / "two"), "--batch-size", "2", *extra],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    assert two.stdout.count("LoRA adapters on") == 1 and two.stdout.count("training plan on") == 1
    alone, together = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(alone) == len(together) == 6
    assert together[:4] == pytest.approx(alone[:4], abs=1e-3)  # epoch 1: the same 4 examples per step
    assert together == pytest.approx(alone, abs=0.05)  # epoch 2 shuffles differently across processes
    a, b = (load_file(tmp_path / d / "adapter_model.safetensors") for d in ("one", "two"))
    assert sorted(a) == sorted(b) and max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-2
    args = json.loads((tmp_path / "two" / "training_args.json").read_text())
    assert args["steps"] == 6 and not (tmp_path / "two" / "checkpoints").exists()
