"""Self-differentiation (AutoAct stage 5): one LoRA adapter per role on the base model.

`train_adapter` fine-tunes a LoRA adapter (peft) with the `transformers`
Trainer on a role's prompt/completion pairs (`sft_data`: loss on the
completion only, prompts tokenized as the serving worker tokenizes them). It
uses a cosine schedule with warm-up, optional gradient checkpointing, bf16 on
GPUs that support it and fp32 otherwise, and an optional DeepSpeed config
(`training/deepspeed/zero2.json`, `zero3.json`). It writes into `out_dir`:

- the adapter (`save_pretrained`) and the base model's tokenizer;
- `train_log.jsonl`: one row per optimizer step (loss, learning rate, epoch);
- `training_args.json`: every setting, the base model, the data and its
  stats, versions, time and tokens per second.

Checkpoints go to `out_dir/checkpoints` while training; `resume=True` picks up
the last one (and the log is cut back to it, so no step is logged twice).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from autoact.errors import ConfigError, DataError
from autoact.jsonl import read_appendable
from autoact.versions import package_versions
from training.sft_data import PairCollator, encode_pair, load_pairs

__all__ = ["DEEPSPEED_CONFIGS", "TrainConfig", "TrainReport", "last_checkpoint", "train_adapter"]

DEEPSPEED_CONFIGS = Path(__file__).with_name("deepspeed")
TRAIN_LOG = "train_log.jsonl"
TRAINING_ARGS = "training_args.json"


@dataclass
class TrainConfig:
    epochs: float = 5.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    lr: float = 1e-4
    max_length: int = 1024
    batch_size: int = 4
    grad_accum: int = 1
    warmup_ratio: float = 0.03  # warm-up steps = max(1, ratio × total steps)
    gradient_checkpointing: bool = False
    save_steps: int = 50
    max_steps: int = -1  # > 0 stops after that many optimizer steps (smoke runs, benchmarks)
    seed: int = 0
    deepspeed: str | None = None  # path of a DeepSpeed JSON config
    init_adapter: str | None = None  # continue from this adapter's weights instead of a fresh LoRA

    def check(self) -> None:
        for name in ("lora_r", "lora_alpha", "max_length", "batch_size", "grad_accum", "save_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train: {name} must be at least 1, got {getattr(self, name)}")
        if self.epochs <= 0 or self.lr <= 0:
            raise ConfigError("train: epochs and lr must be positive")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError("train: lora_dropout and warmup_ratio must lie in [0, 1)")
        if not self.target_modules:
            raise ConfigError("train: no target modules")
        if self.deepspeed is not None and not Path(self.deepspeed).is_file():
            raise ConfigError(f"--deepspeed {self.deepspeed}: no such file")


@dataclass
class TrainReport:
    out_dir: str
    pairs: int = 0
    truncated: int = 0
    steps: int = 0
    final_loss: float | None = None
    train_seconds: float = 0.0
    tokens: int = 0  # tokens seen in training (all epochs, padding excluded)
    skipped: bool = False  # the adapter was already complete
    model: Any = field(default=None, repr=False)  # the trained peft model (return_model=True)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.train_seconds if self.train_seconds > 0 else 0.0


def last_checkpoint(checkpoints: Path) -> Path | None:
    """The checkpoint with the highest step in `checkpoints` (None if there is none)."""
    found = [p for p in checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
             and (p / "trainer_state.json").is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _cut_log(log_path: Path, keep_through: int) -> None:
    """Drop log rows after step `keep_through` (they are redone when training resumes)."""
    if not log_path.exists():
        return
    rows = [row for _, row in read_appendable(log_path) if int(row.get("step", 0)) <= keep_through]
    tmp = log_path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(log_path)


def _log_callback(log_path: Path) -> Any:
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):  # type: ignore[misc]
        """Appends each logged training loss to `train_log.jsonl`."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if not logs or "loss" not in logs or not state.is_world_process_zero:
                return
            row = {"step": state.global_step, "epoch": round(float(state.epoch or 0), 4),
                   "loss": float(logs["loss"]), "lr": float(logs.get("learning_rate", 0.0))}
            if "grad_norm" in logs:
                row["grad_norm"] = float(logs["grad_norm"])
            with log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    return JsonlLog()


def _versions() -> dict[str, str]:
    return package_versions(("autoact", "torch", "transformers", "peft", "datasets", "accelerate", "deepspeed"))


def _data_stats(paths: Sequence[Path]) -> dict[str, Any]:
    """The differentiated data's `stats.json` (beside the data files), if there is one."""
    for path in paths:
        stats = path.parent / "stats.json"
        if stats.is_file():
            try:
                return json.loads(stats.read_text(encoding="utf-8"))
            except ValueError as err:
                raise DataError(f"{stats}: not valid JSON ({err})") from err
    return {}


def _precision() -> dict[str, bool]:
    import torch
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "use_cpu": not torch.cuda.is_available()}


def train_adapter(data: Path | Sequence[Path], out_dir: Path, base_path: Path, config: TrainConfig | None = None,
                  *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                  callbacks: Sequence[Any] = (), return_model: bool = False) -> TrainReport:
    """Train one LoRA adapter on the pairs in `data` (one file, or several concatenated) into `out_dir`.

    An `out_dir` that already holds a finished adapter is left alone
    (`skipped`) unless `overwrite`; one with checkpoints but no finished
    adapter needs `resume` (continue) or `overwrite` (start again).
    """
    config = config or TrainConfig()
    config.check()
    paths = [Path(data)] if isinstance(data, (str, Path)) else [Path(p) for p in data]
    out_dir, base_path = Path(out_dir), Path(base_path)
    checkpoints = out_dir / "checkpoints"
    done = (out_dir / TRAINING_ARGS).is_file() and (out_dir / "adapter_config.json").is_file()
    if overwrite and out_dir.exists():
        shutil.rmtree(out_dir)
    elif done:
        saved = json.loads((out_dir / TRAINING_ARGS).read_text(encoding="utf-8"))
        return TrainReport(str(out_dir), pairs=saved.get("pairs", 0), steps=saved.get("steps", 0),
                           final_loss=saved.get("final_loss"), skipped=True)
    elif last_checkpoint(checkpoints) is not None and not resume:
        raise ConfigError(f"{out_dir} holds an unfinished training run ({checkpoints}): pass --resume to "
                          f"continue it or --overwrite to start again")
    if not (base_path / "config.json").is_file():
        raise ConfigError(f"base model {base_path}: no config.json (not a Hugging Face model directory)")

    pairs = [pair for path in paths for pair in load_pairs(path)]
    out_dir.mkdir(parents=True, exist_ok=True)

    import datasets
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = datasets.Dataset.from_list(pairs).map(
        lambda row: encode_pair(tokenizer, row["prompt"], row["completion"], config.max_length),
        remove_columns=["prompt", "completion"])
    truncated = int(sum(encoded["truncated"]))
    encoded = encoded.remove_columns(["truncated"])
    tokens_per_epoch = int(sum(len(ids) for ids in encoded["input_ids"]))

    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    lora = LoraConfig(task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.target_modules))
    try:
        if config.init_adapter:  # its own rank and modules carry over; the LoRA settings above do not apply
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True)
        else:
            model = get_peft_model(model, lora)
    except ValueError as err:
        raise ConfigError(f"--target-modules {','.join(config.target_modules)}: {err}") from err
    if config.gradient_checkpointing:
        model.enable_input_require_grads()

    steps_per_epoch = math.ceil(len(encoded) / (config.batch_size * config.grad_accum))
    total_steps = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
    warmup = max(1, round(config.warmup_ratio * total_steps))
    args = TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr, lr_scheduler_type="cosine", warmup_steps=warmup,
        logging_steps=1, save_strategy="steps", save_steps=config.save_steps, save_total_limit=2,
        report_to=[], seed=config.seed, gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        deepspeed=config.deepspeed, remove_unused_columns=False, disable_tqdm=not progress,
        dataloader_num_workers=0, save_only_model=False, **_precision())
    trainer = Trainer(model=model, args=args, train_dataset=encoded, data_collator=PairCollator(pad_id),
                      callbacks=[_log_callback(out_dir / TRAIN_LOG), *callbacks])
    start_from = last_checkpoint(checkpoints) if resume else None
    resumed_at = 0
    if start_from is not None:
        resumed_at = json.loads((start_from / "trainer_state.json").read_text())["global_step"]
    _cut_log(out_dir / TRAIN_LOG, resumed_at)

    result = trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
    seconds = float(result.metrics.get("train_runtime", 0.0))  # the training loop, not the set-up
    steps = int(result.global_step)
    if trainer.control.should_training_stop and steps < trainer.state.max_steps:
        raise ConfigError(f"training stopped early at step {steps} of {trainer.state.max_steps}; "
                          f"rerun with --resume to continue from {last_checkpoint(checkpoints)}")

    trainer.save_model(str(out_dir))  # gathers ZeRO-3 shards; writes the adapter on the main process only
    if not trainer.is_world_process_zero():
        return TrainReport(str(out_dir), pairs=len(pairs), steps=steps)
    tokenizer.save_pretrained(out_dir)
    log_rows = [row for _, row in read_appendable(out_dir / TRAIN_LOG)]
    trained_steps = steps - resumed_at
    seen = round(tokens_per_epoch * trained_steps / max(steps_per_epoch, 1)) if steps_per_epoch else 0
    report = TrainReport(str(out_dir), pairs=len(pairs), truncated=truncated, steps=steps,
                         final_loss=log_rows[-1]["loss"] if log_rows else None, train_seconds=seconds,
                         tokens=seen, model=model if return_model else None)
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
    (out_dir / TRAINING_ARGS).write_text(json.dumps({
        "base_model": str(base_path), "data": [str(p) for p in paths], "pairs": len(pairs),
        "truncated_prompts": truncated, "tokens_per_epoch": tokens_per_epoch, "steps": steps,
        "resumed_from_step": resumed_at, "warmup_steps": warmup, "final_loss": report.final_loss,
        "train_seconds": round(seconds, 2), "tokens_per_second": round(report.tokens_per_second, 1),
        "precision": "bf16" if args.bf16 else "fp32", "settings": settings, "versions": _versions(),
        "data_stats": _data_stats(paths),
    }, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(checkpoints, ignore_errors=True)
    return report
