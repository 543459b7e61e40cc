"""Self-differentiation (AutoAct stage 5): one LoRA adapter per role on the base model.

`train_adapter` fine-tunes a LoRA adapter (peft) with the `transformers`
Trainer on a role's prompt/completion pairs (`sft_data`: loss on the
completion only, prompts tokenized as the serving worker tokenizes them). It
uses a cosine schedule with warm-up, optional gradient checkpointing and an
optional DeepSpeed config (`training/deepspeed/zero2.json`, `zero3.json`).

Speed on a CPU (the project's usual trainer):

- precision `auto` trains in bf16 autocast where the hardware computes bf16
  natively (GPUs that support it; CPUs with AVX512-BF16 or AMX, Arm BF16) and
  in fp32 otherwise; the weights, LoRA's included, and the optimizer stay fp32
  (autocast runs the matrix products in bf16);
- the output layer runs only at the positions whose next token is scored (the
  completions), not over every prompt token: the loss is the same, and on the
  embedded model's 49k-word vocabulary that layer is a fifth of the work;
- batches are drawn length-grouped (examples of similar length together), so
  little padding is computed; padding never enters the loss (labels -100);
- attention `auto` on a CPU is `training.causal_attention` (block-causal
  products: about half the work of torch's CPU attention kernel, which took a
  third of a step), and LoRA dropout draws packed random bits
  (`training.lora_dropout`) instead of one Bernoulli sample per element;
- torch uses as many threads as the process has cores (its CPU affinity,
  capped by a cgroup CPU quota) unless OMP_NUM_THREADS says otherwise.

It writes into `out_dir`:

- the adapter (`save_pretrained`) and the base model's tokenizer;
- `train_log.jsonl`: one row per optimizer step (loss, learning rate, epoch);
- `training_args.json`: every setting, the base model, the data and its
  stats, versions, time and tokens per second, the precision and threads used
  and the share of the computed tokens that were padding.

Checkpoints go to `out_dir/checkpoints` while training; `resume=True` picks up
the last one (and the log is cut back to it, so no step is logged twice).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from core.errors import ConfigError, DataError
from core.hardware import cpu_bf16_supported, cpu_threads
from core.jsonl import read_appendable
from core.versions import package_versions
from training.sft_data import IGNORE_INDEX, PairCollator, encode_pair, load_pairs

__all__ = ["DEEPSPEED_CONFIGS", "PRECISIONS", "TrainConfig", "TrainReport",
           "last_checkpoint", "train_adapter"]

DEEPSPEED_CONFIGS = Path(__file__).with_name("deepspeed")
TRAIN_LOG = "train_log.jsonl"
TRAINING_ARGS = "training_args.json"
#: what an adapter directory holds once trained (besides `checkpoints/` while training)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", TRAINING_ARGS, TRAIN_LOG,
                 "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                 "added_tokens.json", "chat_template.jinja", "tokenizer.model")
PRECISIONS = ("auto", "bf16", "fp32")


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
    precision: str = "auto"  # auto (bf16 where the hardware has it), bf16 (autocast; weights stay fp32), fp32
    group_by_length: bool = True  # batches of examples of similar length (less padding)
    attention: str = "auto"  # auto (chunked on a CPU, transformers' default on a GPU), chunked, sdpa, eager, ...

    def check(self) -> None:
        for name in ("lora_r", "lora_alpha", "max_length", "batch_size", "grad_accum", "save_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train: {name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.epochs) and math.isfinite(self.lr)) or self.epochs <= 0 or self.lr <= 0:
            raise ConfigError(f"train: epochs and lr must be positive finite numbers, got {self.epochs} and {self.lr}")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError("train: lora_dropout and warmup_ratio must lie in [0, 1)")
        if not self.target_modules:
            raise ConfigError("train: no target modules")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train: precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not self.attention.strip():
            raise ConfigError("train: attention must name an implementation (auto, chunked, sdpa, eager, ...)")
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
    tokens: int = 0  # tokens trained on in this run (all epochs, padding excluded)
    skipped: bool = False  # the adapter was already complete
    precision: str = ""  # bf16 or fp32, as trained
    padding_share: float = 0.0  # share of the computed tokens that were padding
    attention: str = ""  # the attention implementation trained with
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


def world_rank() -> int:
    """This process's rank among the training processes (`$RANK`, set by torchrun and the deepspeed
    launcher; 0 when training alone)."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def _set_threads() -> int:
    """torch's intra-op threads: one per available core unless OMP_NUM_THREADS is set; returns the count."""
    import torch
    if not os.environ.get("OMP_NUM_THREADS", "").strip():
        torch.set_num_threads(cpu_threads())
    return torch.get_num_threads()


def _precision(choice: str, deepspeed: str | None) -> dict[str, bool]:
    """TrainingArguments for `choice` (auto, bf16, fp32): bf16 autocast on a GPU or CPU, or fp32."""
    import torch
    gpu = torch.cuda.is_available()
    if choice == "fp32":
        bf16 = False
    elif gpu:
        bf16 = torch.cuda.is_bf16_supported()
        if choice == "bf16" and not bf16:
            raise ConfigError("--precision bf16: this GPU does not support bf16 (use auto or fp32)")
    else:
        # DeepSpeed's bf16 casts the model to bf16 rather than autocasting: only when asked for
        bf16 = choice == "bf16" or (deepspeed is None and cpu_bf16_supported())
    return {"bf16": bf16, "use_cpu": not gpu}


def _attention(choice: str, use_cpu: bool) -> str:
    """The `attn_implementation` for `choice`: auto is the chunked causal attention on a CPU and
    transformers' default (SDPA) on a GPU; chunked is ours; any other name goes to transformers."""
    if choice == "chunked" or (choice == "auto" and use_cpu):
        from training import causal_attention
        return causal_attention.register()
    return "sdpa" if choice == "auto" else choice


@contextmanager
def _accelerate_precision(bf16: bool) -> Iterator[None]:
    """ACCELERATE_MIXED_PRECISION for one run.

    TrainingArguments writes bf16 into that variable and never clears it, and the
    Trainer's Accelerator reads it: a later fp32 run in the same process would
    autocast too. Set it for this run; put back what was there after.
    """
    key = "ACCELERATE_MIXED_PRECISION"
    before = os.environ.get(key)
    os.environ[key] = "bf16" if bf16 else "no"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _trainer_class() -> Any:
    import torch
    from transformers import Trainer

    class ScoredPositionsTrainer(Trainer):  # type: ignore[misc]
        """Trainer whose loss runs the output layer only where the next token is scored.

        The causal-LM loss of the model itself (`labels=`) computes logits for every
        position, prompt and padding included, and drops most of them; here the model
        gets `logits_to_keep` = the positions (shared by the batch's rows) whose next
        token has a label, and the loss is the same cross-entropy over the same tokens,
        normalised as the Trainer normalises the model's own loss.
        """

        computed = 0  # tokens run through the model, padding included (this process, this run)
        padding = 0

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            if "attention_mask" in inputs and model.training:
                self.computed += inputs["attention_mask"].numel()
                self.padding += int(inputs["attention_mask"].eq(0).sum())
            if "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs = dict(inputs)
            targets = inputs.pop("labels")[:, 1:]  # the token each position predicts
            scored = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
            outputs = model(**inputs, logits_to_keep=scored)
            logits = outputs.logits.float()
            if logits.shape[1] != scored.numel():  # a model that ignores logits_to_keep: every position
                logits = logits[:, scored]
            wanted = targets[:, scored]
            by_sum = self.model_accepts_loss_kwargs and num_items_in_batch is not None
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), wanted.reshape(-1),
                                                     ignore_index=IGNORE_INDEX, reduction="sum")
            if by_sum:  # summed over the accumulated micro-batches by the Trainer: divide by all of their tokens
                loss = loss / num_items_in_batch
                if self.args.average_tokens_across_devices:
                    loss = loss * (self.accelerator.num_processes if self.args.n_gpu <= 1 else self.args.n_gpu)
            else:
                loss = loss / (wanted != IGNORE_INDEX).sum().clamp(min=1)
            return (loss, outputs) if return_outputs else loss

    return ScoredPositionsTrainer


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
    first = world_rank() == 0  # across processes, the first one alone changes files before training
    if overwrite and out_dir.exists():
        if first:
            remove_adapter_files(out_dir, keep=paths)
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
    present_before = {p.name for p in out_dir.iterdir()}

    import datasets
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from training import causal_attention

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = datasets.Dataset.from_list(pairs).map(
        lambda row: encode_pair(tokenizer, row["prompt"], row["completion"], config.max_length),
        remove_columns=["prompt", "completion"])
    truncated = int(sum(encoded["truncated"]))
    encoded = encoded.remove_columns(["truncated"])
    lengths = [len(ids) for ids in encoded["input_ids"]]
    encoded = encoded.add_column("length", lengths)  # for length-grouped batches
    tokens_per_epoch = int(sum(lengths))
    precision = _precision(config.precision, config.deepspeed)
    threads = _set_threads() if precision["use_cpu"] else None

    torch.manual_seed(config.seed)
    attention = _attention(config.attention, precision["use_cpu"])
    try:
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32, attn_implementation=attention)
    except (ValueError, ImportError) as err:
        if config.attention in ("auto", "chunked"):
            raise
        raise ConfigError(f"--attention {config.attention}: {err}") from err
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
    if precision["use_cpu"]:
        from training.lora_dropout import use_bit_dropout
        use_bit_dropout(model)
    if config.gradient_checkpointing:
        model.enable_input_require_grads()

    steps_per_epoch = math.ceil(len(encoded) / (config.batch_size * config.grad_accum))
    total_steps = config.max_steps if config.max_steps > 0 else math.ceil(steps_per_epoch * config.epochs)
    warmup = max(1, round(config.warmup_ratio * total_steps))
    with _accelerate_precision(precision["bf16"]):
        args = TrainingArguments(
            output_dir=str(checkpoints), num_train_epochs=config.epochs, max_steps=config.max_steps,
            per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
            learning_rate=config.lr, lr_scheduler_type="cosine", warmup_steps=warmup,
            logging_steps=1, save_strategy="steps", save_steps=config.save_steps, save_total_limit=2,
            report_to=[], seed=config.seed, gradient_checkpointing=config.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
            deepspeed=config.deepspeed, remove_unused_columns=False, disable_tqdm=not progress,
            dataloader_num_workers=0, save_only_model=False, group_by_length=config.group_by_length,
            length_column_name="length", include_num_input_tokens_seen="non_padding",
            ddp_find_unused_parameters=False,  # across processes: every LoRA weight is used in each step
            **precision)
        trainer = _trainer_class()(model=model, args=args, train_dataset=encoded, data_collator=PairCollator(pad_id),
                                   callbacks=[_log_callback(out_dir / TRAIN_LOG), *callbacks])
        start_from = last_checkpoint(checkpoints) if resume else None
        resumed_at = resumed_tokens = 0
        if start_from is not None:
            state = json.loads((start_from / "trainer_state.json").read_text())
            resumed_at, resumed_tokens = state["global_step"], int(state.get("num_input_tokens_seen") or 0)
        if first:
            _cut_log(out_dir / TRAIN_LOG, resumed_at)

        with warnings.catch_warnings():  # the Trainer's token count copies a tensor, and says so at every step
            warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
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
    computed = trainer.computed
    report = TrainReport(str(out_dir), pairs=len(pairs), truncated=truncated, steps=steps,
                         final_loss=log_rows[-1]["loss"] if log_rows else None, train_seconds=seconds,
                         tokens=int(trainer.state.num_input_tokens_seen) - resumed_tokens,
                         precision="bf16" if args.bf16 else "fp32",
                         padding_share=round(trainer.padding / computed, 4) if computed else 0.0,
                         attention=attention)
    if return_model:  # without the Trainer's autocast wrapper: the model computes as a freshly loaded one
        report.model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
        if attention == causal_attention.NAME:  # as loaded by default
            report.model.get_base_model().set_attn_implementation("sdpa")
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
    (out_dir / TRAINING_ARGS).write_text(json.dumps({
        "base_model": str(base_path), "data": [str(p) for p in paths], "pairs": len(pairs),
        "truncated_prompts": truncated, "tokens_per_epoch": tokens_per_epoch, "steps": steps,
        "resumed_from_step": resumed_at, "warmup_steps": warmup, "final_loss": report.final_loss,
        "train_seconds": round(seconds, 2), "tokens_per_second": round(report.tokens_per_second, 1),
        "precision": report.precision, "threads": threads, "padding_share": report.padding_share,
        "attention": attention,
        "settings": settings, "versions": _versions(), "data_stats": _data_stats(paths),
        "files": sorted({p.name for p in out_dir.iterdir() if p.name not in present_before or p.name in ADAPTER_FILES}
                        - {"checkpoints"} | {TRAINING_ARGS}),
    }, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(checkpoints, ignore_errors=True)
    return report


def remove_adapter_files(out_dir: Path, keep: Sequence[Path] = ()) -> list[str]:
    """Delete a previous adapter's own files in `out_dir` (for `--overwrite`); returns their names.

    Only what training wrote goes: the names its `training_args.json` lists (or, for an
    adapter without that list, the files an adapter and its tokenizer are saved as), the
    log and the checkpoints. Anything else in the directory stays, and so do the `keep`
    paths (the training data) wherever they are.
    """
    listed: list[str] = []
    args = out_dir / TRAINING_ARGS
    if args.is_file():
        try:
            listed = [str(n) for n in json.loads(args.read_text(encoding="utf-8")).get("files") or []]
        except (ValueError, AttributeError, UnicodeDecodeError):
            listed = []
    names = {Path(n).name for n in listed} | set(ADAPTER_FILES)
    if (out_dir / "README.md").is_file() and "library_name: peft" in (out_dir / "README.md").read_text(
            encoding="utf-8", errors="replace")[:2000]:
        names.add("README.md")  # the model card peft writes beside an adapter
    kept = {Path(p).resolve() for p in keep}
    removed = []
    for name in sorted(names):
        path = out_dir / name
        if path.resolve() in kept or not path.is_file() or path.is_symlink():
            continue
        path.unlink()
        removed.append(name)
    checkpoints = out_dir / "checkpoints"
    if checkpoints.is_dir() and not any(k.is_relative_to(checkpoints.resolve()) for k in kept):
        shutil.rmtree(checkpoints)
        removed.append("checkpoints")
    return removed
