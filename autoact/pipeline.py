"""`autoact pipeline`: every AutoAct stage in order, from two seeds to an evaluated agent group.

Stages (each writes into the workdir and is skipped when its output is complete):

1. serve: the base model behind FastChat (unless `--base-url` names a running server);
2. self-instruct: `questions.jsonl` grows to `n_questions` (HotpotQA: grounded in the corpus, which is
   never the evaluated rows: a second file, or the last half of the evaluation file while the
   evaluation asks the first half; no question near an evaluated one is kept); what training
   read that the evaluation asks (pages, questions) is counted into `run.json`'s `overlap`. With
   `questions="corpus"` the corpus part's own real questions are taken instead (not the paper's method:
   for a model whose own questions yield no right trajectory);
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
   evaluation file, `eval/NAME/{results.jsonl,summary.json}`; with `ablations` (`autoact ablate`)
   also the paper's ablation table (autoact.ablations): −reflection, −multi and −filtering (their
   adapters trained in differentiate-unfiltered, train-multi and train-unfiltered after train),
   and the chance, direct, CoT, ReAct and Reflexion baselines on the base model; with `curve`
   (`--curve 25,50,100`) groups trained on the first k kept trajectories (train-curve-K,
   autoact.curve), for the report's learning curve;
9. report: `report.md` with tables and plots (`autoact report`).

`run.json` records the settings, versions, model and every stage's status, time and counts;
it is rewritten after each stage, so a killed run shows where it stopped, and running the
same command again continues from there (finished stages are skipped, resumable ones resume).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from agents.base import AgentSettings
from agents.llm import EndpointConfig, EndpointModel
from autoact.ablations import ABLATION_BASELINES, ablation_dirs, served_ablations, variants
from autoact.assembly import RoleModels, build_agent, build_task_toolbox
from autoact.curve import curve_dirs, curve_points, curve_variants, served_curve
from autoact.presets import DEFAULT_EVAL, QUESTION_SOURCES, PipelineConfig, Preset
from autoact.run_record import RunRecord, StageError, now
from autoact.stages import differentiate_file, role_files, train_roles
from core.errors import AutoactError, ConfigError
from core.locking import OutputLock
from core.roles import ALL, ROLES
from evaluation.run_report import write_report
from evaluation.runner import EvalOptions, evaluate
from graph.context import Limits
from graph.protocol import GraphAgent
from serving.launcher import free_port, serving_stack
from serving.model_store import ResolvedModel, resolve_model
from tasks import get_task, read_rows
from tasks.base import Task
from training.overlap import Split, split_rows, training_overlap
from training.synthesize import synthesize

PIPELINE_STAGES = ("serve", "self-instruct", "select-tools", "synthesize", "differentiate", "train",
                   "differentiate-unfiltered", "train-multi", "train-unfiltered", "serve-group", "calibrate-reflect",
                   "eval-zero-shot",
                   "eval-autoact", "eval-no-reflect", "eval-no-multi", "eval-no-filter",
                   *(f"eval-{name}" for name in ABLATION_BASELINES), "report")


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def run_pipeline(config: PipelineConfig, on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or continue) the pipeline in `config.workdir`; returns the run record's data.

    One invocation at a time holds the workdir; a second is refused while it runs.
    """
    workdir = Path(config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with OutputLock(workdir, "pipeline run"):
        return _run_pipeline(config, on_stage)


@dataclass
class _Run:
    """One invocation's view of the run: its settings, record, model, files and the tools in use."""

    config: PipelineConfig
    task: Task
    preset: Preset
    record: RunRecord
    base: ResolvedModel
    split: Split  # the evaluated rows and the corpus training may read
    tools_file: Path | None = None  # the Meta-Agent's tool choice, when the run uses it

    @property
    def eval_rows(self) -> list[dict[str, Any]]:
        return self.split.eval_rows

    def evaluated_rows(self) -> list[dict[str, Any]]:
        """The rows the evaluations ask (the preset's limit applied)."""
        limit = self.preset.eval_limit
        return self.eval_rows if limit is None else self.eval_rows[:limit]

    def record_overlap(self) -> None:
        """What training read (questions with their pages, the corpus) that the evaluation asks: run.json."""
        paths = self.paths
        questions = read_rows(paths["questions"], self.task) if paths["questions"].is_file() else []
        overlap = training_overlap([*questions, *self.split.corpus_rows], self.evaluated_rows())
        self.record.data["overlap"] = {"corpus": self.split.how, **overlap}
        self.record.save()

    @property
    def workdir(self) -> Path:
        return Path(self.config.workdir)

    @property
    def paths(self) -> dict[str, Path]:
        w = self.workdir
        return {"questions": w / "questions.jsonl", "trajectories": w / "trajectories.jsonl", "data": w / "data",
                "adapters": w / "adapters", "logs": w / "logs"}

    def agent(self, url: str, roles: RoleModels, rows: list[dict], max_steps: int, prompts: str,
              temperature: float = 0.0, design: str = "autoact", reflect_threshold: float = 0.0) -> GraphAgent:
        """The group (or another registered design) at `url` with these roles; `rows`' pages form its docstore."""
        toolbox = build_task_toolbox(self.task, rows, tools_file=self.tools_file)
        settings = AgentSettings(scored=True, scored_arguments=self.preset.scored_arguments,
                                 calibrated_reflect=self.preset.calibrated_reflect, reflect_threshold=reflect_threshold)
        limits = Limits(max_steps=max_steps, answer_at_limit=self.preset.answer_at_limit)
        return build_agent(design, self.task, toolbox, roles, EndpointConfig(base_url=url, temperature=temperature),
                           settings, limits, prompts)  # type: ignore[arg-type]

    def meta_agent_stages(self) -> None:
        """serve, self-instruct, select-tools and synthesize, by the Meta-Agent (or an earlier round's group)."""
        config, record, base, paths, task = self.config, self.record, self.base, self.paths, self.task
        trained = trained_roles(paths["adapters"])
        need_meta = not (record.done("differentiate") and (trained or record.done("train")))
        synth_roles = {r: r for r in ROLES if r in (config.synth_adapters or {})}
        with contextlib.ExitStack() as meta_stack:
            url = None if synth_roles else config.base_url
            if need_meta and url is None:
                with record.running("serve") as counts:
                    stack = meta_stack.enter_context(serving_stack(
                        base, port=free_port(), log_dir=paths["logs"] / "meta",
                        adapters={r: config.synth_adapters[r] for r in synth_roles} if synth_roles else None,
                        **config.serving))
                    url = stack.base_url
                    counts.update(model=", ".join(stack.model_names), device=", ".join(stack.devices))
            elif url is None:
                record.skipped("serve", {}, "nothing left for the Meta-Agent to do")
            if need_meta:
                _stage_self_instruct(record, config, self.preset, task, url, paths, base.name, self.split)
            self.tools_file = _stage_select_tools(record, config, task, url, self.workdir)
            if not need_meta:
                for name in ("self-instruct", "synthesize"):
                    record.skipped(name, record.stage(name)["counts"], "done before")
                return
            questions = read_rows(paths["questions"], task)
            with record.running("synthesize") as counts:
                roles = RoleModels(*(synth_roles.get(r, base.name) for r in ROLES))
                # grounded questions carry their pages; otherwise the corpus (never the evaluated rows) does
                pages = questions if any(q.get("context") for q in questions) else self.split.corpus_rows
                agent = self.agent(url, roles, pages, self.preset.synth_max_steps, "roles" if synth_roles else "meta",
                                   self.preset.synth_temperature)
                who = {"model": base.name, "group": {r: str(config.synth_adapters[r]) for r in synth_roles}}
                summary = synthesize(agent, task, questions, paths["trajectories"], self.preset.concurrency,
                                     config.progress, {**who, "questions": str(paths["questions"]),
                                                       "temperature": self.preset.synth_temperature},
                                     samples=self.preset.synth_samples)
                counts.update(trajectories=summary["n"], **{k: summary[k] for k in task.metrics},
                              halted=summary["halted"], errors=summary["errors"])

    def ablation_stages(self) -> None:
        """The ablation table's extra training (autoact.ablations): unfiltered data and adapters, one adapter
        for all roles."""
        record, preset, paths, dirs = self.record, self.preset, self.paths, ablation_dirs(self.workdir)
        if not self.kept():  # an ablation of nothing: its training would cost as much as a group's, for no row
            why = "no trajectory was kept, so there is no AutoAct group to ablate"
            for stage in ("differentiate-unfiltered", "train-multi", "train-unfiltered"):
                record.skipped(stage, {}, why)
            return
        with record.running("differentiate-unfiltered") as counts:
            stats = differentiate_file(paths["trajectories"], dirs["data-unfiltered"],
                                       _tools(self.task, self.tools_file), max_trajectories=preset.max_trajectories,
                                       unfiltered=True, source={"model": record.data.get("model")})
            counts.update(trajectories=stats["trajectories"], kept=stats["kept"])
        for stage, roles, data, out in (("train-multi", [ALL], [paths["data"]], dirs["adapters-multi"]),
                                        ("train-unfiltered", ROLES, [dirs["data-unfiltered"]],
                                         dirs["adapters-unfiltered"])):
            if not any(role_files(r, data) for r in roles):
                record.skipped(stage, {"roles": 0}, "no training pairs")
                continue
            with record.running(stage) as counts:
                _train_counts(train_roles(roles, data, out, self.base.path, _train_config(preset), resume=True),
                              counts)

    def curve_sizes(self) -> list[int]:
        """The learning curve's sizes below the number of trajectories kept (that point is AutoAct itself)."""
        return sorted(k for k in set(self.config.curve) if k < self.kept())

    def kept(self) -> int:
        """Trajectories the differentiate stage kept (the full group's data)."""
        return int(self.record.stage("differentiate")["counts"].get("kept") or 0)

    def curve_stages(self) -> None:
        """Data and adapters of each learning-curve point (autoact.curve): the first k kept trajectories."""
        record, preset, paths = self.record, self.preset, self.paths
        for k in self.curve_sizes():
            data, adapters = curve_dirs(self.workdir, k)
            with record.running(f"train-curve-{k}") as counts:
                stats = differentiate_file(paths["trajectories"], data, _tools(self.task, self.tools_file),
                                           max_trajectories=k, reflect_negatives=preset.reflect_negatives,
                                           hold_out=preset.hold_out, source={"model": record.data.get("model")})
                counts["kept"] = stats["kept"]
                _train_counts(train_roles(ROLES, [data], adapters, self.base.path, _train_config(preset),
                                          resume=True), counts)

    def reflect_thresholds(self, url: str, sizes: list[int], served: Mapping[str, Path]) -> dict[str, float]:
        """calibrate-reflect: each trained reflect adapter's verdict threshold, fitted on the verdict pairs held out
        of its training, else those it was trained on (training.reflect_threshold), by served name; {} unless the
        preset asks for them."""
        if not self.preset.fit_reflect_threshold:
            return {}
        from training.reflect_threshold import fit_and_save, fit_pairs, load_threshold

        data = {"reflect": self.paths["data"], "all": self.paths["data"],
                **{f"curve{k}-reflect": curve_dirs(self.workdir, k)[0] for k in sizes}}
        adapters = {name: path for name, path in served.items() if name in data}
        if self.record.done("calibrate-reflect"):  # fitted by an earlier sitting: read back
            found = {n: load_threshold(p) for n, p in adapters.items()}
            return {n: t for n, t in found.items() if t is not None}
        thresholds: dict[str, float] = {}
        with self.record.running("calibrate-reflect") as counts:
            for name, adapter in adapters.items():
                chosen = fit_pairs(data[name])
                if not {p["completion"] for p in chosen[0]} >= {"right]", "wrong]"}:
                    counts[name] = "no right and wrong verdict pairs to fit on"
                    continue
                fit = fit_and_save(_endpoint(url, name), data[name], adapter, chosen)
                thresholds[name] = fit.threshold
                counts[name] = {"threshold": fit.threshold, "right_kept": fit.right_kept,
                                "wrong_caught": fit.wrong_caught, "pairs": fit.n_right + fit.n_wrong,
                                "held_out": fit.held_out}
        return thresholds

    def _eval_settings(self, variant: Any, threshold: float) -> dict[str, Any]:
        """How an evaluation's agent was set up, for its summary (as `autoact eval` records it)."""
        preset = self.preset
        chosen = {"scored_arguments": preset.scored_arguments, "answer_at_limit": preset.answer_at_limit,
                  "calibrated_reflect": preset.calibrated_reflect, "reflect_threshold": threshold}
        return {"agent": variant.design, "plan_model": variant.roles.plan, "tool_model": variant.roles.tool,
                "reflect_model": variant.roles.reflect, "prompts": variant.prompts, "max_steps": preset.eval_max_steps,
                **{k: v for k, v in chosen.items() if v}}

    def evaluate_group(self, trained: list[str]) -> None:
        """serve-group, then each variant (autoact.ablations.variants, the curve's) on the same evaluation rows."""
        record, base, paths, preset, config = self.record, self.base, self.paths, self.preset, self.config
        extra = served_ablations(self.workdir, trained_roles) if config.ablations else None
        sizes = self.curve_sizes()
        curve = served_curve(self.workdir, sizes, trained_roles)
        with record.running("serve-group") as counts:
            group_stack = serving_stack(base, port=free_port(), log_dir=paths["logs"] / "group",
                                        adapters={**{r: paths["adapters"] / r for r in trained}, **(extra or {}),
                                                  **curve}, **config.serving)
            group_stack.start()
            counts.update(models=", ".join(group_stack.model_names),
                          device=", ".join(group_stack.devices))
        try:
            url = group_stack.base_url
            thresholds = self.reflect_thresholds(url, sizes, {**{r: paths["adapters"] / r for r in trained},
                                                              **(extra or {}), **curve})
            if not trained:  # nothing was kept: the report says so, next to the zero-shot Meta-Agent
                record.skipped("eval-autoact", {}, "no adapter was trained (no trajectory kept)")
            for v in [*variants(base.name, trained, zero_shot=config.zero_shot_eval,
                                no_reflect=config.no_reflect_ablation, ablations=extra,
                                closed_options=self.task.closed_options),
                      *curve_variants(base.name, sizes, curve)]:
                with record.running(f"eval-{v.name}") as counts:
                    threshold = thresholds.get(str(v.roles.reflect), 0.0)
                    agent = self.agent(url, v.roles, self.eval_rows, preset.eval_max_steps, v.prompts, design=v.design,
                                       reflect_threshold=threshold)
                    options = EvalOptions(self.workdir / "eval" / v.name, preset.eval_limit, preset.concurrency,
                                          config.progress, label=f"eval {v.name}",
                                          settings=self._eval_settings(v, threshold))
                    summary = evaluate(agent, self.task, self.eval_rows, options)
                    scores = {k: None if summary[k] is None else round(summary[k], 4) for k in self.task.metrics}
                    counts.update(n=summary["n"], **scores, halted=summary["halted"], errors=summary["errors"])
                    record.data["evaluations"][v.label] = f"eval/{v.name}"
            if sizes:
                record.data["curve"] = curve_points(sizes, self.kept(), record.data["evaluations"])
        finally:
            group_stack.stop()


def _open_run(config: PipelineConfig, on_stage: Callable[[str], None] | None) -> _Run:
    """Check the inputs, open (or continue) run.json, resolve the base model."""
    task = get_task(config.task)
    preset = config.preset_values()
    workdir = Path(config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(config.data_dir)
    config.eval_file = Path(config.eval_file or data_dir / DEFAULT_EVAL[task.name])
    corpus_file = [config.corpus_file] if config.corpus_file else []
    for needed in (data_dir / task.name / "seeds.jsonl", config.eval_file, *corpus_file):
        if not needed.is_file():
            raise ConfigError(f"{needed}: not found (set --data-dir or --eval-file)")
    record = RunRecord.open(workdir, config, preset)
    record.on_stage = on_stage
    base = resolve_model(config.base)
    record.data["model"] = base.name
    corpus = read_rows(config.corpus_file, task) if config.corpus_file else None
    if config.questions not in QUESTION_SOURCES:
        raise ConfigError(f"--questions {config.questions!r}: choose {' or '.join(QUESTION_SOURCES)}")
    split = split_rows(read_rows(config.eval_file, task), corpus=corpus, share=config.corpus_share,
                       train_on_eval=config.train_on_eval,
                       needs_corpus=task.name == "hotpotqa" or config.questions == "corpus")
    record.data["split"] = {"corpus": split.how, "evaluation_rows": len(split.eval_rows),
                            "corpus_rows": len(split.corpus_rows)}
    return _Run(config, task, preset, record, base, split)


def _run_pipeline(config: PipelineConfig, on_stage: Callable[[str], None] | None) -> dict[str, Any]:
    run = _open_run(config, on_stage)
    record, paths = run.record, run.paths
    try:
        run.meta_agent_stages()
        run.record_overlap()
        _stage_differentiate(record, run.task, paths, run.preset, run.tools_file)
        trained = _stage_train(record, run.preset, paths, run.base, config.extra_training_data, config.init_adapters)
        if config.ablations:
            record.data["ablations"] = True
            run.ablation_stages()
        run.curve_stages()
        run.evaluate_group(trained)
        with record.running("report") as counts:
            report = _write_report(run.workdir)
            counts["report"] = str(report)
        record.data["finished_at"] = now()
        record.save()
        _write_report(run.workdir)  # once more, so the report shows its own stage done and the run finished
        return record.data
    except StageError:
        raise
    except (AutoactError, OSError, RuntimeError, ValueError) as err:
        failed = next((s["name"] for s in record.data["stages"] if s["status"] == "failed"), "set-up")
        raise StageError(f"stage {failed} failed: {err}. Fix the cause and run the same command again to "
                         f"resume ({run.workdir / 'run.json'} shows each stage's state)") from err


def trained_roles(adapters: Path) -> list[str]:
    """The roles whose adapter in `adapters` finished training (it has its training_args.json)."""
    return [r for r in ROLES if (adapters / r / "training_args.json").is_file()]


def _endpoint(url: str, model: str, temperature: float = 0.0) -> EndpointModel:
    return EndpointModel(EndpointConfig(base_url=url, model=model, temperature=temperature))


def _stage_select_tools(record: RunRecord, config: PipelineConfig, task: Any, url: str | None,
                        workdir: Path) -> Path | None:
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
            model = _endpoint(url, record.data["model"])
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
                         paths: dict[str, Path], model_name: str, split: Split) -> None:
    from training.self_instruct import SelfInstructConfig, run_self_instruct

    have = count_lines(paths["questions"])
    avoid = [str(r["question"]) for f in config.avoid_questions for r in read_rows(f, task)]
    if have >= preset.n_questions or (have and config.questions == "corpus"):
        record.skipped("self-instruct", {"questions": have}, "done before")
        return
    if config.questions == "corpus":
        _corpus_questions(record, preset, paths["questions"], split, set(avoid))
        return
    with record.running("self-instruct") as counts:
        corpus = split.corpus_rows if task.name == "hotpotqa" and preset.grounded else None
        si = SelfInstructConfig(task=task.name, n=preset.n_questions, per_round=preset.per_round,
                                grounded=corpus is not None, concurrency=preset.instruct_concurrency)
        seeds = Path(config.data_dir) / task.name / "seeds.jsonl"
        held_out = [] if config.train_on_eval else [str(r["question"]) for r in split.eval_rows]
        report = run_self_instruct(_endpoint(url, model_name, preset.temperature), task.name, seeds,
                                   paths["questions"], si, corpus_rows=corpus, progress=config.progress, avoid=avoid,
                                   held_out=held_out)
        counts.update(report.summary())  # each check's removals, the option-order agreement, the answer letters


def _corpus_questions(record: RunRecord, preset: Preset, out: Path, split: Split, avoid: set[str]) -> None:
    """self-instruct with `questions="corpus"`: the first `n_questions` rows of the corpus part (real questions,
    with their answers and pages; never an evaluated row), less those an earlier round asked."""
    with record.running("self-instruct") as counts:
        rows = [r for r in split.corpus_rows if str(r["question"]) not in avoid][:preset.n_questions]
        if not rows:
            raise StageError(f"self-instruct: --questions corpus, but none of the corpus's {len(split.corpus_rows)} "
                             "rows is left to ask")
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(out)
        counts.update(source=f"corpus ({split.how})", questions=len(rows), corpus_rows=len(split.corpus_rows))


def _stage_differentiate(record: RunRecord, task: Any, paths: dict[str, Path], preset: Preset,
                         tools_file: Path | None) -> None:
    with record.running("differentiate") as counts:
        stats = differentiate_file(paths["trajectories"], paths["data"], _tools(task, tools_file),
                                   max_trajectories=preset.max_trajectories, reflect_negatives=preset.reflect_negatives,
                                   hold_out=preset.hold_out, source={"model": record.data.get("model")})
        counts.update(trajectories=stats["trajectories"], kept=stats["kept"],
                      **{f"{role}_pairs": v["pairs"] for role, v in stats["roles"].items()})


def _stage_train(record: RunRecord, preset: Preset, paths: dict[str, Path], base: Any,
                 extra_data: Sequence[Path] = (), init_adapters: Path | None = None) -> list[str]:
    data_dirs = [paths["data"], *extra_data]  # this round's pairs and every earlier round's
    if not any(role_files(r, data_dirs) for r in ROLES):
        record.skipped("train", {"roles": 0}, "differentiation kept no trajectory: synthesis solved none "
                       "of its questions (more questions or a larger preset may keep some)")
        return []
    with record.running("train") as counts:
        _train_counts(train_roles(ROLES, data_dirs, paths["adapters"], base.path, _train_config(preset), resume=True,
                                  init_from=init_adapters), counts)
    return trained_roles(paths["adapters"])


def _tools(task: Any, tools_file: Path | None) -> list[Any]:
    from tools import default_tool_specs, load_tool_specs
    return load_tool_specs(tools_file) if tools_file else default_tool_specs(task.name)


def _train_config(preset: Preset) -> Any:
    from training.lora import TrainConfig
    return TrainConfig(epochs=preset.epochs, lora_r=preset.lora_r, lora_alpha=preset.lora_alpha,
                       lora_dropout=preset.lora_dropout, target_modules=tuple(preset.target_modules), lr=preset.lr,
                       batch_size=preset.batch_size)


def _train_counts(reports: dict[str, Any], counts: dict[str, Any]) -> None:
    """Each trained role's steps, time, speed and final loss, into a stage's counts."""
    for role, report in reports.items():
        if report is None:
            continue
        counts[f"{role}_steps"] = report.steps
        if not report.skipped:
            counts[f"{role}_seconds"] = round(report.train_seconds, 1)
            counts[f"{role}_tokens_per_s"] = round(report.tokens_per_second, 1)
        if report.final_loss is not None:
            counts[f"{role}_final_loss"] = round(report.final_loss, 4)


def _write_report(workdir: Path) -> Path:
    return write_report([workdir])
