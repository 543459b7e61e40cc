"""What a pipeline run is set up with: the presets (every count and hyper-parameter) and the run's config."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """Every count and hyper-parameter of a pipeline run."""

    n_questions: int
    per_round: int
    synth_max_steps: int
    max_trajectories: int
    epochs: float
    lora_r: int
    lora_alpha: int
    lr: float
    batch_size: int
    eval_limit: int | None  # None: the whole evaluation file
    eval_max_steps: int
    concurrency: int = 8  # episodes at once: the batched worker decodes them together
    instruct_concurrency: int = 8  # self-instruct rounds in flight (benchmarks/self_instruct.py)
    temperature: float = 0.8  # self-instruct sampling
    grounded: bool = True  # HotpotQA self-instruct shows pages of the corpus (never the evaluated rows')
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    scored_arguments: bool = False  # entity arguments and open answers chosen among episode spans
    answer_at_limit: bool = False  # the last steps must Finish instead of halting without an answer
    synth_samples: int = 1  # attempts per question in synthesis (1: the paper's)
    synth_temperature: float = 0.0  # sampling temperature of synthesis (0: greedy, the paper's)
    calibrated_reflect: bool = False  # verdicts relative to a content-free answer's (agents.reflect)
    fit_reflect_threshold: bool = False  # each trained reflect adapter's threshold, fitted on its verdict pairs
    reflect_negatives: bool = True  # wrong finishes teach the reflect agent Reflect[wrong] (balanced)
    verdict_hold_out: float = 0.25  # with fit_reflect_threshold: share of the reflect pairs the fit gets, not training

    @property
    def hold_out(self) -> float:
        """The share of reflect pairs differentiation holds out of training (0 unless a threshold is fitted)."""
        return self.verdict_hold_out if self.fit_reflect_threshold else 0.0


PRESETS = {
    # sized for a 2-core CPU with the embedded 135M model: about a quarter of an hour
    "quick": Preset(n_questions=8, per_round=4, synth_max_steps=4, max_trajectories=200, epochs=1.0, lora_r=8,
                    lora_alpha=16, lr=1e-4, batch_size=4, eval_limit=5, eval_max_steps=4),
    # the paper's settings: 200 trajectories, 5 epochs, LoRA rank 8. One greedy attempt per question keeps
    # about half of 200 ScienceQA questions with the embedded model (51% right, RESULTS.md), so each
    # question is tried 3 times at T = 0.7 to reach 200 kept trajectories (distinct ones only)
    "paper": Preset(n_questions=200, per_round=10, synth_max_steps=10, max_trajectories=200, epochs=5.0, lora_r=8,
                    lora_alpha=16, lr=1e-4, batch_size=4, eval_limit=None, eval_max_steps=10, synth_samples=3,
                    synth_temperature=0.7),
}


#: where the questions synthesis solves come from (`PipelineConfig.questions`)
QUESTION_SOURCES = ("self-instruct", "corpus")


@dataclass
class PipelineConfig:
    task: str
    workdir: Path
    preset: str = "quick"
    data_dir: Path = Path("../shared/data")
    base: str = "default"
    base_url: str | None = None
    eval_file: Path | None = None  # default: hotpotqa/easy.jsonl or scienceqa/grade1-4.jsonl
    # what self-instruct and synthesis may read (training.overlap.split_rows): a second file, else the last
    # `corpus_share` of the eval file (the evaluation keeps the first part); `train_on_eval` reads the evaluated
    # rows themselves (the report states the overlap)
    corpus_file: Path | None = None
    corpus_share: float = 0.5
    train_on_eval: bool = False
    # the questions synthesis solves: "self-instruct" (the paper's: written by the Meta-Agent) or "corpus" (the
    # corpus part's own real questions, answers and pages, never the evaluated rows: for a model too weak to
    # write answerable questions)
    questions: str = "self-instruct"
    tool_selection: str = "default"  # "default" (built-in set) or "model" (the Meta-Agent's choice)
    no_reflect_ablation: bool = False
    ablations: bool = False  # the paper's ablation table (autoact.ablations): extra adapters, baselines, one report
    curve: tuple[int, ...] = ()  # learning curve (autoact.curve): groups trained on the first k kept trajectories
    progress: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)  # Preset fields to change
    # self-improvement rounds (autoact.rounds) set these for round 2 on:
    synth_adapters: dict[str, Path] | None = None  # synthesize with this trained group, not the Meta-Agent
    avoid_questions: list[Path] = field(default_factory=list)  # earlier rounds' questions: never asked again
    extra_training_data: list[Path] = field(default_factory=list)  # earlier rounds' data dirs: train on the union
    init_adapters: Path | None = None  # start each role's adapter from this group's instead of from scratch
    zero_shot_eval: bool = True  # evaluate the Meta-Agent zero-shot too
    # how the stacks the pipeline starts serve (serving.launcher.FastChatStack keywords: engine, device,
    # dtype, max_batch_size, workers); empty: the batched engine on `auto`, one worker
    serving: dict[str, Any] = field(default_factory=dict)

    def preset_values(self) -> Preset:
        if self.preset not in PRESETS:
            raise ConfigError(f"--preset {self.preset!r}: choose {', '.join(PRESETS)}")
        unknown = set(self.overrides) - set(Preset.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown preset settings: {', '.join(sorted(unknown))}")
        return replace(PRESETS[self.preset], **self.overrides)


DEFAULT_EVAL = {"hotpotqa": "hotpotqa/easy.jsonl", "scienceqa": "scienceqa/grade1-4.jsonl"}
