"""`autoact pipeline`: every AutoAct stage in order, from two seeds to an evaluated agent group.

Stages (each writes into the workdir and is skipped when its output is complete):

1. serve: the base model behind FastChat (unless `--base-url` names a running server);
2. self-instruct: `questions.jsonl` grows to `n_questions` (HotpotQA: grounded in the corpus);
3. select-tools: the Meta-Agent's tool choice is recorded in `tools-selected.json`; the tools
   used are the task's built-in set unless `tool_selection="model"` (a 135M model's choice is
   no better than chance, see RESULTS.md);
4. synthesize: the Meta-Agent solves every question with the runtime graph (`trajectories.jsonl`);
5. differentiate: kept trajectories → `data/{plan,tool,reflect}.jsonl` + `data/stats.json`;
6. train: one LoRA adapter per role with data (`adapters/ROLE`); the Meta-Agent's server is
   stopped first, so training has the CPU. With no kept trajectory nothing is trained, and the
   run goes on to evaluate the zero-shot Meta-Agent alone (the report shows why);
7. serve-group: one worker serving the base model and the adapters on shared weights;
8. eval-zero-shot / eval-autoact (and eval-no-reflect when asked): the same questions of the
   evaluation file, `eval/NAME/{results.jsonl,summary.json}`;
9. report: `report.md` with tables and plots (`autoact report`).

`run.json` records the settings, versions, model and every stage's status, time and counts;
it is rewritten after each stage, so a killed run shows where it stopped, and running the
same command again continues from there (finished stages are skipped, resumable ones resume).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from core.errors import AutoactError, ConfigError
from core.locking import OutputLock
from core.roles import ROLES
from core.tokens import ESTIMATE_NAME, estimated_count
from core.versions import package_versions

PIPELINE_STAGES = ("serve", "self-instruct", "select-tools", "synthesize", "differentiate", "train",
                   "serve-group", "eval-zero-shot", "eval-autoact", "eval-no-reflect", "report")
EVAL_LABELS = {"zero-shot": "Meta-Agent zero-shot", "autoact": "AutoAct", "no-reflect": "AutoAct w/o reflect"}


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
    temperature: float = 0.8  # self-instruct sampling
    grounded: bool = True  # HotpotQA self-instruct shows pages of the evaluation file's corpus
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    scored_arguments: bool = False  # entity arguments and open answers chosen among episode spans
    answer_at_limit: bool = False  # the last steps must Finish instead of halting without an answer


PRESETS = {
    # sized for a 2-core CPU with the embedded 135M model: about a quarter of an hour
    "quick": Preset(n_questions=8, per_round=4, synth_max_steps=4, max_trajectories=200, epochs=1.0, lora_r=8,
                    lora_alpha=16, lr=1e-4, batch_size=4, eval_limit=5, eval_max_steps=4),
    # the paper's settings: 200 trajectories, 5 epochs, LoRA rank 8
    "paper": Preset(n_questions=200, per_round=10, synth_max_steps=10, max_trajectories=200, epochs=5.0, lora_r=8,
                    lora_alpha=16, lr=1e-4, batch_size=4, eval_limit=None, eval_max_steps=10),
}


@dataclass
class PipelineConfig:
    task: str
    workdir: Path
    preset: str = "quick"
    data_dir: Path = Path("../shared/data")
    base: str = "default"
    base_url: str | None = None
    eval_file: Path | None = None  # default: hotpotqa/easy.jsonl or scienceqa/grade1-4.jsonl
    tool_selection: str = "default"  # "default" (built-in set) or "model" (the Meta-Agent's choice)
    no_reflect_ablation: bool = False
    progress: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)  # Preset fields to change
    # self-improvement rounds (autoact.rounds) set these for round 2 on:
    synth_adapters: dict[str, Path] | None = None  # synthesize with this trained group, not the Meta-Agent
    avoid_questions: list[Path] = field(default_factory=list)  # earlier rounds' questions: never asked again
    extra_training_data: list[Path] = field(default_factory=list)  # earlier rounds' data dirs: train on the union
    init_adapters: Path | None = None  # start each role's adapter from this group's instead of from scratch
    zero_shot_eval: bool = True  # evaluate the Meta-Agent zero-shot too

    def preset_values(self) -> Preset:
        if self.preset not in PRESETS:
            raise ConfigError(f"--preset {self.preset!r}: choose {', '.join(PRESETS)}")
        unknown = set(self.overrides) - set(Preset.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown preset settings: {', '.join(sorted(unknown))}")
        return replace(PRESETS[self.preset], **self.overrides)


_DEFAULT_EVAL = {"hotpotqa": "hotpotqa/easy.jsonl", "scienceqa": "scienceqa/grade1-4.jsonl"}


class RunRecord:
    """`run.json`: settings, versions and the status, time and counts of every stage."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data
        self.on_stage: Callable[[str], None] | None = None  # called as each stage starts (progress display)

    def done(self, name: str) -> bool:
        return any(s["name"] == name and s["status"] in ("done", "skipped") for s in self.data["stages"])

    @classmethod
    def open(cls, workdir: Path, config: PipelineConfig, preset: Preset) -> RunRecord:
        path = workdir / "run.json"
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as err:
                raise ConfigError(f"{path}: not valid JSON ({err}); move it away to start the run afresh") from err
            if data.get("task") != config.task or data.get("preset") != config.preset:
                raise ConfigError(f"{path} belongs to a {data.get('task')}/{data.get('preset')} run; use another "
                                  f"--workdir for {config.task}/{config.preset}")
        data.update({
            "name": workdir.name, "task": config.task, "preset": config.preset, "settings": {
                **asdict(preset), "base": config.base, "base_url": config.base_url,
                "eval_file": str(config.eval_file), "tool_selection": config.tool_selection,
                "data_dir": str(config.data_dir),
                "synthesized_by": ({r: str(p) for r, p in config.synth_adapters.items()}
                                   if config.synth_adapters else "Meta-Agent"),
                "avoided_questions_of": [str(p) for p in config.avoid_questions],
                "also_trained_on": [str(p) for p in config.extra_training_data],
                "adapters_continued_from": str(config.init_adapters) if config.init_adapters else None},
            "versions": _versions(), "finished_at": None,
        })
        data.setdefault("started_at", _now())
        data.setdefault("stages", [])
        for entry in data["stages"]:  # a stage still "running" in the file was cut off by a kill
            if entry.get("status") == "running":
                entry.update(status="interrupted", error="the previous invocation stopped during this stage "
                             "(killed); this one resumes it from its files")
        data.setdefault("evaluations", {})
        data.setdefault("history", []).append({"started_at": _now(), "pid": os.getpid(),
                                               "host": socket.gethostname()})
        record = cls(path, data)
        record.save()
        return record

    def stage(self, name: str) -> dict[str, Any]:
        for entry in self.data["stages"]:
            if entry["name"] == name:
                return entry
        entry = {"name": name, "status": "pending", "seconds": None, "counts": {}, "error": None}
        self.data["stages"].append(entry)
        return entry

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)

    @contextlib.contextmanager
    def running(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage; its body fills `counts`. A failure is recorded, then re-raised with a resume hint."""
        if self.on_stage:
            self.on_stage(name)
        entry = self.stage(name)
        entry.update(status="running", error=None)
        self.save()
        start = time.perf_counter()
        counts: dict[str, Any] = {}
        try:
            yield counts
        except BaseException as err:
            status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            entry.update(status=status, error=f"{type(err).__name__}: {err}",
                         seconds=round(time.perf_counter() - start, 1), counts=counts)
            self.save()
            raise
        entry.update(status="done", seconds=round(time.perf_counter() - start, 1), counts=counts)
        self.save()

    def skipped(self, name: str, counts: dict[str, Any], why: str) -> None:
        entry = self.stage(name)
        if entry["status"] != "done":  # a stage done in an earlier invocation keeps its time
            entry.update(status="skipped", counts=counts, error=None, note=why)
        self.save()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _versions() -> dict[str, str]:
    return package_versions(("autoact", "torch", "transformers", "peft", "fschat", "langgraph", "datasets"))


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


class StageError(AutoactError):
    """A pipeline stage failed; the message names it and says how to resume."""


def run_pipeline(config: PipelineConfig, on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or continue) the pipeline in `config.workdir`; returns the run record's data.

    One invocation at a time holds the workdir; a second is refused while it runs.
    """
    workdir = Path(config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with OutputLock(workdir, "pipeline run"):
        return _run_pipeline(config, on_stage)


def _run_pipeline(config: PipelineConfig, on_stage: Callable[[str], None] | None) -> dict[str, Any]:
    from agents.base import AgentSettings
    from agents.llm import EndpointConfig, EndpointModel
    from autoact.assembly import RoleModels, build_group, build_task_toolbox
    from evaluation.runner import EvalOptions, evaluate
    from graph.context import Limits
    from serving.launcher import FastChatStack, free_port
    from serving.model_store import resolve_model
    from tasks import get_task, read_rows

    task = get_task(config.task)
    preset = config.preset_values()
    workdir = Path(config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(config.data_dir)
    config.eval_file = Path(config.eval_file or data_dir / _DEFAULT_EVAL[task.name])
    seeds = data_dir / task.name / "seeds.jsonl"
    for needed in (seeds, config.eval_file):
        if not needed.is_file():
            raise ConfigError(f"{needed}: not found (set --data-dir or --eval-file)")
    record = RunRecord.open(workdir, config, preset)
    record.on_stage = on_stage
    base = resolve_model(config.base)
    record.data["model"] = base.name
    paths = {"questions": workdir / "questions.jsonl", "trajectories": workdir / "trajectories.jsonl",
             "data": workdir / "data", "adapters": workdir / "adapters", "logs": workdir / "logs"}
    eval_rows = read_rows(config.eval_file, task)

    def endpoint(url: str, model: str, temperature: float = 0.0) -> EndpointModel:
        return EndpointModel(EndpointConfig(base_url=url, model=model, temperature=temperature))

    def group_for(url: str, roles: RoleModels, rows: list[dict], max_steps: int, prompts: str) -> Any:
        toolbox = build_task_toolbox(task, rows, tools_file=tools_file)
        settings = AgentSettings(scored=True, scored_arguments=preset.scored_arguments)
        limits = Limits(max_steps=max_steps, answer_at_limit=preset.answer_at_limit)
        return build_group(task, toolbox, roles, EndpointConfig(base_url=url), settings, limits,
                           prompts)  # type: ignore[arg-type]

    tools_file: Path | None = None
    try:
        # ---------------------------------------------------------------- the Meta-Agent's stages
        trained = trained_roles(paths["adapters"])
        need_meta = not (record.done("differentiate") and (trained or record.done("train")))
        synth_roles = {r: r for r in ROLES if r in (config.synth_adapters or {})}
        with contextlib.ExitStack() as meta_stack:
            url = None if synth_roles else config.base_url
            if need_meta and url is None:
                with record.running("serve") as counts:
                    stack = meta_stack.enter_context(FastChatStack(
                        base, port=free_port(), log_dir=paths["logs"] / "meta",
                        adapters={r: config.synth_adapters[r] for r in synth_roles} if synth_roles else None))
                    url = stack.base_url
                    counts["model"] = ", ".join(stack.model_names)
            elif url is None:
                record.skipped("serve", {}, "nothing left for the Meta-Agent to do")
            if need_meta:
                _stage_self_instruct(record, config, preset, task, url, seeds, paths, base.name, endpoint)
            tools_file = _stage_select_tools(record, config, task, url, workdir, endpoint)
            if need_meta:
                questions = read_rows(paths["questions"], task)
                with record.running("synthesize") as counts:
                    roles = RoleModels(*(synth_roles.get(r, base.name) for r in ROLES))
                    # grounded questions carry their pages; otherwise the evaluation file's pages form the docstore
                    pages = questions if any(q.get("context") for q in questions) else eval_rows
                    group = group_for(url, roles, pages, preset.synth_max_steps, "roles" if synth_roles else "meta")
                    from training.synthesize import synthesize
                    who = {"model": base.name, "group": {r: str(config.synth_adapters[r]) for r in synth_roles}}
                    summary = synthesize(group, task, questions, paths["trajectories"], preset.concurrency,
                                         config.progress, {**who, "questions": str(paths["questions"])})
                    counts.update(trajectories=summary["n"], **{k: summary[k] for k in task.metrics},
                                  halted=summary["halted"], errors=summary["errors"])
            else:
                for name in ("self-instruct", "synthesize"):
                    record.skipped(name, record.stage(name)["counts"], "done before")
        _stage_differentiate(record, task, paths, preset, tools_file)
        trained = _stage_train(record, preset, paths, base, config.extra_training_data, config.init_adapters)

        # ---------------------------------------------------------------- the trained group
        with record.running("serve-group") as counts:
            group_stack = FastChatStack(base, port=free_port(), log_dir=paths["logs"] / "group",
                                        adapters={r: paths["adapters"] / r for r in trained})
            group_stack.start()
            counts.update(models=", ".join(group_stack.model_names))
        try:
            url = group_stack.base_url
            roles = RoleModels(*(r if r in trained else base.name for r in ROLES))
            variants = [("zero-shot", RoleModels(base.name, base.name, base.name), "meta")][:int(config.zero_shot_eval)]
            if trained:
                variants.append(("autoact", roles, "roles"))
                if config.no_reflect_ablation:
                    variants.append(("no-reflect", RoleModels(roles.plan, roles.tool, None), "roles"))
            else:  # nothing was kept: the report says so, next to the zero-shot Meta-Agent
                record.skipped("eval-autoact", {}, "no adapter was trained (no trajectory kept)")
            for name, variant_roles, prompts in variants:
                with record.running(f"eval-{name}") as counts:
                    group = group_for(url, variant_roles, eval_rows, preset.eval_max_steps, prompts)
                    out = workdir / "eval" / name
                    summary = evaluate(group, task, eval_rows, EvalOptions(out, preset.eval_limit, preset.concurrency,
                                                                          config.progress, label=f"eval {name}"))
                    scores = {k: None if summary[k] is None else round(summary[k], 4) for k in task.metrics}
                    counts.update(n=summary["n"], **scores, halted=summary["halted"], errors=summary["errors"])
                    record.data["evaluations"][EVAL_LABELS[name]] = f"eval/{name}"
        finally:
            group_stack.stop()
        with record.running("report") as counts:
            report = _write_report(workdir)
            counts["report"] = str(report) if report else "report module not available"
        record.data["finished_at"] = _now()
        record.save()
        _write_report(workdir)  # once more, so the report shows its own stage done and the run finished
        return record.data
    except StageError:
        raise
    except (AutoactError, OSError, RuntimeError, ValueError) as err:
        failed = next((s["name"] for s in record.data["stages"] if s["status"] == "failed"), "set-up")
        raise StageError(f"stage {failed} failed: {err}. Fix the cause and run the same command again to "
                         f"resume ({workdir / 'run.json'} shows each stage's state)") from err


def trained_roles(adapters: Path) -> list[str]:
    """The roles whose adapter in `adapters` finished training (it has its training_args.json)."""
    return [r for r in ROLES if (adapters / r / "training_args.json").is_file()]


def _stage_select_tools(record: RunRecord, config: PipelineConfig, task: Any, url: str | None, workdir: Path,
                        endpoint: Callable[..., Any]) -> Path | None:
    """Record the Meta-Agent's tool choice; returns the tool file to use (None: the built-in set)."""
    from tools import builtin_spec, registered_names, save_tool_specs
    from training.tool_selection import SelectionError, select_tools

    chosen_file = workdir / "tools-selected.json"
    if config.tool_selection not in ("default", "model"):
        raise ConfigError(f"--tool-selection {config.tool_selection!r}: choose default or model")
    if url is None or record.done("select-tools"):
        record.skipped("select-tools", record.stage("select-tools")["counts"], "done before")
    else:
        with record.running("select-tools") as counts:
            pool = [builtin_spec(n) for n in registered_names()]
            model = endpoint(url, record.data["model"])
            try:
                selection = select_tools(model, task.description, pool)
                save_tool_specs(chosen_file, selection.chosen)
                counts["model_choice"] = ", ".join(s.name for s in selection.chosen)
            except SelectionError as err:
                counts["model_choice"] = f"none ({err})"[:300]
            counts["used"] = "model choice" if config.tool_selection == "model" else "built-in set"
    if config.tool_selection == "model":
        if not chosen_file.exists():
            raise StageError("select-tools: the Meta-Agent chose no tool; use --tool-selection default")
        return chosen_file
    return None


def _stage_self_instruct(record: RunRecord, config: PipelineConfig, preset: Preset, task: Any, url: str,
                         seeds: Path, paths: dict[str, Path], model_name: str, endpoint: Callable[..., Any]) -> None:
    from tasks import read_rows
    from training.self_instruct import SelfInstructConfig, run_self_instruct

    have = _count_lines(paths["questions"])
    avoid = [str(r["question"]) for f in config.avoid_questions for r in read_rows(f, task)]
    if have >= preset.n_questions:
        record.skipped("self-instruct", {"questions": have}, "done before")
        return
    with record.running("self-instruct") as counts:
        corpus = read_rows(config.eval_file, task) if task.name == "hotpotqa" and preset.grounded else None
        si = SelfInstructConfig(task=task.name, n=preset.n_questions, per_round=preset.per_round,
                                grounded=corpus is not None, concurrency=preset.concurrency)
        report = run_self_instruct(endpoint(url, model_name, preset.temperature), task.name, seeds,
                                   paths["questions"], si, corpus_rows=corpus, progress=config.progress, avoid=avoid)
        counts.update(questions=report.total, rounds=report.rounds, rejected=sum(report.rejected.values()))


def _stage_differentiate(record: RunRecord, task: Any, paths: dict[str, Path], preset: Preset,
                         tools_file: Path | None) -> None:
    from prompts.builder import prompts_version
    from tools import default_tool_specs, load_tool_specs
    from training.dataset import read_trajectories, write_dataset
    from training.differentiate import differentiate

    with record.running("differentiate") as counts:
        rows = read_trajectories(paths["trajectories"])
        tools = load_tool_specs(tools_file) if tools_file else default_tool_specs(task.name)
        data = differentiate(rows, tools, 1.0, preset.max_trajectories)
        source = {"trajectories": str(paths["trajectories"]), "model": record.data.get("model"),
                  "prompts_version": prompts_version(), "min_reward": 1.0,
                  "max_trajectories": preset.max_trajectories, "token_counts": ESTIMATE_NAME}
        stats = write_dataset(paths["data"], data, len(rows), source, estimated_count)
        counts.update(trajectories=len(rows), kept=stats["kept"],
                      **{f"{role}_pairs": v["pairs"] for role, v in stats["roles"].items()})


def _stage_train(record: RunRecord, preset: Preset, paths: dict[str, Path], base: Any,
                 extra_data: Sequence[Path] = (), init_adapters: Path | None = None) -> list[str]:
    from training.lora import TrainConfig, train_adapter

    def files(role: str) -> list[Path]:  # this round's pairs and every earlier round's
        candidates = [Path(d) / f"{role}.jsonl" for d in (paths["data"], *extra_data)]
        return [f for f in candidates if _count_lines(f)]

    roles = [r for r in ROLES if files(r)]
    if not roles:
        record.skipped("train", {"roles": 0}, "differentiation kept no trajectory: synthesis solved none "
                       "of its questions (more questions or a larger preset may keep some)")
        return []
    with record.running("train") as counts:
        config = TrainConfig(epochs=preset.epochs, lora_r=preset.lora_r, lora_alpha=preset.lora_alpha,
                             lora_dropout=preset.lora_dropout, target_modules=tuple(preset.target_modules),
                             lr=preset.lr, batch_size=preset.batch_size)
        for role in roles:
            init = init_adapters / role if init_adapters and (init_adapters / role).is_dir() else None
            report = train_adapter(files(role), paths["adapters"] / role, base.path,
                                   replace(config, init_adapter=str(init) if init else None), resume=True)
            counts[f"{role}_steps"] = report.steps
            if not report.skipped:
                counts[f"{role}_seconds"] = round(report.train_seconds, 1)
                counts[f"{role}_tokens_per_s"] = round(report.tokens_per_second, 1)
            if report.final_loss is not None:
                counts[f"{role}_final_loss"] = round(report.final_loss, 4)
    return trained_roles(paths["adapters"])


def _write_report(workdir: Path) -> Path | None:
    try:
        from evaluation.run_report import write_report
    except ImportError:
        return None
    return write_report([workdir])
