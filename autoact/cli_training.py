"""CLI commands of the self-learning stages: select-tools, self-instruct, synthesize, differentiate, train, inspect."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from rich.table import Table

from agents.llm import DEFAULT_BASE_URL, EndpointConfig, EndpointModel
from autoact.agent_options import add_group_options, agent_from_args
from autoact.assembly import resolve_role_models
from autoact.console import console, styled
from autoact.options import (
    add_timeout_option,
    finite_float,
    nonnegative_int,
    out_directory,
    out_file,
    positive_int,
    share,
)
from core.errors import ConfigError, DataError
from serving.cli import add_engine_arguments, engine_options


def _endpoint_options(p: argparse.ArgumentParser, what: str = "the Meta-Agent") -> None:
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, help="OpenAI-compatible API of the FastChat server")
    p.add_argument("--api-key", default=None, help="API key of the server, if it requires one")
    p.add_argument("--model", default=None, help=f"{what} (default: the served base model)")
    add_timeout_option(p)


def meta_agent(args: argparse.Namespace, temperature: float = 0.0) -> EndpointModel:
    """The served base model (or `--model`) as one client."""
    name = resolve_role_models(args.base_url, args.api_key, args.model, no_reflect=True).plan
    return EndpointModel(EndpointConfig(base_url=args.base_url, api_key=args.api_key, model=name,
                                        timeout=args.timeout, temperature=temperature))


def cmd_select_tools(args: argparse.Namespace) -> int:
    """The Meta-Agent chooses the task's tools from the pool; writes them as a tool list (DESIGN §2)."""
    from tasks import TASKS, get_task
    from tools import (
        builtin_spec,
        default_tool_specs,
        registered_names,
        save_tool_specs,
    )
    from training.tool_selection import select_tools

    description = args.description
    built_in = args.task.lower() in TASKS
    if description is None:
        if not built_in:
            raise ConfigError(f"task {args.task!r} is not built in ({', '.join(sorted(TASKS))}): "
                              "describe it with --description TEXT")
        description = get_task(args.task).description
    out = out_file(args.out)
    pool = [builtin_spec(name) for name in registered_names()]
    fallback = [s.name for s in default_tool_specs(args.task.lower())] if built_in else None
    selection = select_tools(meta_agent(args), description, pool, scored=not args.free,
                             calibrate=not args.no_calibration, strict=args.strict, fallback=fallback)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_tool_specs(out, selection.chosen)
    for name in selection.ignored:
        console.print(styled(("warning:", "yellow"), f" the model named {name!r}, which is not in the pool; ignored"))
    console.print(f"Model said: {selection.answer.strip()}", highlight=False)
    if selection.fallback:
        console.print(styled(("warning:", "yellow"), f" {selection.fallback} (pass --strict to fail instead)"))
    console.print(styled(f"Selected for {args.task}: ", (", ".join(s.name for s in selection.chosen), "bold"),
                         f" → {out}"))
    return 0


def cmd_self_instruct(args: argparse.Namespace) -> int:
    """The Meta-Agent writes new task examples from the seeds (optionally grounded in a corpus)."""
    from tasks import get_task, read_rows
    from training.self_instruct import SelfInstructConfig, read_seeds, run_self_instruct

    read_seeds(args.seeds, get_task(args.task))  # bad input fails before the server is asked anything
    corpus = read_rows(args.corpus, get_task("hotpotqa")) if args.corpus else None
    config = SelfInstructConfig(task=args.task, n=args.n, per_round=args.per_round, seed=args.seed,
                                max_empty_rounds=args.max_empty_rounds, grounded=corpus is not None,
                                answer_by=args.answer_by, concurrency=args.concurrency,
                                permutations=args.permutations, min_agreement=args.min_agreement,
                                shuffle_options=not args.keep_option_order)
    held_out = [str(r["question"]) for f in args.held_out for r in read_rows(f, get_task(args.task))]
    report = run_self_instruct(meta_agent(args, temperature=args.temperature), args.task, args.seeds,
                               out_file(args.out), config, corpus_rows=corpus, progress=not args.no_progress,
                               held_out=held_out)
    summary = report.summary()
    console.print(f"{report.total} examples in {report.out_path} ({report.accepted} new this run, "
                  f"{report.rounds} rounds); rejected: {dict(report.rejected) or 'none'}")
    if "order_checked" in summary:
        console.print(f"option-order check: {summary['order_checked']} items, mean agreement "
                      f"{summary['order_agreement']:.2f}, {report.rejected['position_bias']} dropped as position "
                      f"bias; answer letters added: {summary.get('answer_letters') or 'none'}")
    return 0


def cmd_synthesize(args: argparse.Namespace) -> int:
    from evaluation.report import summary_table
    from tasks import get_task, read_rows
    from training.synthesize import synthesize

    task = get_task(args.task)
    questions = read_rows(args.questions, task)
    corpus = read_rows(args.corpus, get_task("hotpotqa")) if args.corpus else questions
    if args.group is None:  # the Meta-Agent plays every role (a trained --group synthesizes the next round)
        if args.model is None:
            args.model = resolve_role_models(args.base_url, args.api_key).plan
        args.plan_model = args.tool_model = args.reflect_model = None
    agent = agent_from_args(args, task, corpus)
    info = {"model": args.model, "group": args.group, "base_url": args.base_url, "questions": str(args.questions),
            "corpus": str(args.corpus) if args.corpus else None, "scored": not args.free_actions,
            "scored_arguments": args.scored_arguments, "answer_at_limit": args.answer_at_limit,
            "calibrated_reflect": args.calibrated_reflect,
            "temperature": args.temperature}
    summary = synthesize(agent, task, questions, out_file(args.out), args.concurrency, not args.no_progress, info,
                         samples=args.samples)
    console.print(summary_table(summary, task.metrics, title=f"synthesis on {task.name} (success = reward 1)"))
    return 0


def _token_counter(spec: str) -> tuple[Callable[[str], int], str]:
    if spec == "none":
        from core.tokens import ESTIMATE_NAME, estimated_count
        return estimated_count, ESTIMATE_NAME
    from transformers import AutoTokenizer

    from serving.model_store import resolve_model
    tok = AutoTokenizer.from_pretrained(str(resolve_model(spec).path))
    return (lambda text: len(tok(text, add_special_tokens=False).input_ids)), f"tokenizer of {spec}"


def cmd_calibrate_reflect(args: argparse.Namespace) -> int:
    """Fit the group's reflect threshold on its held-out (else training) verdict pairs; writes
    GROUP/reflect/verdict_threshold.json."""
    from training.reflect_threshold import THRESHOLD_FILE, fit_and_save

    adapter = Path(args.group) / "reflect"
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"--group {args.group}: no reflect adapter in it (expected {adapter}/adapter_config.json)")
    name = args.model or resolve_role_models(args.base_url, args.api_key, group=args.group).reflect
    model = EndpointModel(EndpointConfig(base_url=args.base_url, api_key=args.api_key, model=name,
                                         timeout=args.timeout))
    fit = fit_and_save(model, Path(args.data), adapter)
    path = adapter / THRESHOLD_FILE
    kind = "held-out" if fit.held_out else "training"
    table = Table(title=f"reflect verdicts on their {fit.n_right} right and {fit.n_wrong} wrong {kind} pairs")
    for col in ("threshold", "right kept", "wrong caught"):
        table.add_column(col, justify="right")
    table.add_row("0 (default)", f"{100 * fit.right_kept_at_zero:.1f}%", f"{100 * fit.wrong_caught_at_zero:.1f}%")
    table.add_row(f"{fit.threshold:g} (fitted)", f"{100 * fit.right_kept:.1f}%", f"{100 * fit.wrong_caught:.1f}%")
    console.print(table)
    console.print(f"wrote {path}; `autoact eval --group {args.group}` applies it (--reflect-threshold none: not)")
    return 0


def cmd_differentiate(args: argparse.Namespace) -> int:
    from autoact.stages import differentiate_file
    from tools import default_tool_specs, load_tool_specs
    from training.synthesize import meta_path, read_meta

    path = Path(args.trajectories)
    meta = read_meta(path)
    if args.tools:
        tools = load_tool_specs(args.tools)
    elif meta.get("tools") is not None:
        from tools.base import ToolSpec
        if not isinstance(meta["tools"], list):
            raise DataError(f"{meta_path(path)}: field 'tools' should be a list of tool specs")
        tools = [ToolSpec.from_json(t, f"{meta_path(path)}: tools entry {i}") for i, t in enumerate(meta["tools"])]
    elif args.task:
        tools = default_tool_specs(args.task)
    else:
        raise ConfigError(f"{meta_path(path)} is missing: pass --tools FILE or --task NAME to say which tools "
                          "the trajectories used")
    count, how = _token_counter(args.tokenizer)
    stats = differentiate_file(path, out_directory(args.out), tools, min_reward=args.min_reward,
                               max_trajectories=args.max_trajectories, unfiltered=args.unfiltered,
                               reflect_negatives=not args.no_reflect_negatives, negative_ratio=args.negative_ratio,
                               hold_out=args.hold_out_verdicts, count=count,
                               count_name=how, source={"synthesis": meta})
    _print_stats(stats)
    return 0


def _train_config(args: argparse.Namespace) -> Any:
    from training.lora import TrainConfig
    modules = tuple(m.strip() for m in args.target_modules.split(",") if m.strip())
    return TrainConfig(epochs=args.epochs, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                       lora_dropout=args.lora_dropout, target_modules=modules, lr=args.lr,
                       max_length=args.max_length, batch_size=args.batch_size, grad_accum=args.grad_accum,
                       warmup_ratio=args.warmup_ratio, gradient_checkpointing=args.gradient_checkpointing,
                       save_steps=args.save_steps, max_steps=args.max_steps, seed=args.seed,
                       deepspeed=args.deepspeed, precision=args.precision,
                       group_by_length=not args.no_length_grouping, attention=args.attention)


def cmd_train(args: argparse.Namespace) -> int:
    """Train LoRA adapters: one file → one adapter, or `--roles` over a differentiated dataset directory."""
    from autoact.stages import role_files, train_roles
    from core.roles import ALL, ROLES
    from serving.model_store import resolve_model
    from training.lora import train_adapter, world_rank

    # under torchrun or the deepspeed launcher every process runs this; the first one reports
    say = console.print if world_rank() == 0 else (lambda *_, **__: None)
    config = _train_config(args)
    config.check()
    data, out = Path(args.data), out_directory(args.out)
    base = resolve_model(args.base).path
    table = Table(title=f"LoRA adapters on {base.name}")
    for col in ("adapter", "pairs", "steps", "final loss", "seconds", "tokens/s", "where"):
        table.add_column(col, justify="right")

    def show(name: str, target: Path, report: Any) -> None:
        loss = "—" if report.final_loss is None else f"{report.final_loss:.4f}"
        table.add_row(name, str(report.pairs), str(report.steps), loss,
                      "done before" if report.skipped else f"{report.train_seconds:.1f}",
                      "" if report.skipped else f"{report.tokens_per_second:.0f}", str(target))

    def started(name: str, files: list[Path], target: Path) -> None:
        say(f"training {name} on {', '.join(map(str, files))} → {target}")

    if args.roles is None:
        if data.is_dir():
            raise ConfigError(f"--data {data} is a directory: pass --roles plan,tool,reflect (or all) to train "
                              "its role files, or name one file")
        started(data.stem, [data], out)
        show(data.stem, out, train_adapter([data], out, base, config, resume=args.resume, overwrite=args.overwrite,
                                           progress=not args.no_progress))
        say(table)
        return 0
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = [r for r in roles if r not in (*ROLES, ALL)]
    if unknown or not roles:
        raise ConfigError(f"--roles {args.roles}: choose among {', '.join(ROLES)} or all")
    if not data.is_dir():
        raise ConfigError(f"--data {data}: with --roles, give the dataset directory (plan.jsonl, ...)")
    for role in roles:
        if not role_files(role, [data]):
            names = [f"{r}.jsonl" for r in ROLES] if role == ALL else [f"{role}.jsonl"]
            say(styled((f"skipping {role}:", "yellow"),
                                 f" no training pairs in {', '.join(str(data / n) for n in names)}"))
    reports = train_roles(roles, [data], out, base, config, resume=args.resume, overwrite=args.overwrite,
                          progress=not args.no_progress, on_start=started)
    for role, report in reports.items():
        if report is not None:
            show(role, out / role, report)
    say(table)
    missing = [role for role, report in reports.items() if report is None]
    if missing:
        say(styled((f"no adapter for {', '.join(missing)}", "yellow"), ": serve the base model in that role"))
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Every stage from seeds to an evaluated group (autoact.pipeline); rerun to resume."""
    from autoact.presets import PipelineConfig
    from autoact.rounds import RoundsConfig, run_rounds

    overrides = {k: v for k, v in (("n_questions", args.n_questions), ("epochs", args.epochs),
                                   ("eval_limit", args.eval_limit), ("concurrency", args.concurrency),
                                   ("scored_arguments", args.scored_arguments or None),
                                   ("answer_at_limit", args.answer_at_limit or None),
                                   ("calibrated_reflect", args.calibrated_reflect or None),
                                   ("fit_reflect_threshold", args.fit_reflect_threshold or None),
                                   ("verdict_hold_out", args.hold_out_verdicts),
                                   ("synth_samples", args.samples), ("synth_temperature", args.temperature))
                 if v is not None}
    config = PipelineConfig(task=args.task, workdir=Path(args.workdir), preset=args.preset,
                            data_dir=Path(args.data_dir), base=args.base, base_url=args.base_url,
                            eval_file=Path(args.eval_file) if args.eval_file else None,
                            corpus_file=Path(args.corpus) if args.corpus else None,
                            corpus_share=args.corpus_share, train_on_eval=args.train_on_eval,
                            tool_selection=args.tool_selection, no_reflect_ablation=args.ablate_reflect,
                            questions=args.questions,
                            ablations=args.ablations, curve=tuple(args.curve),
                            progress=not args.no_progress, overrides=overrides,
                            serving={**engine_options(args), "workers": args.workers})
    rounds = RoundsConfig(rounds=args.rounds, continue_adapters=args.continue_adapters,
                          reuse_questions=args.reuse_questions,
                          stop_on_regression=args.stop_on_regression, regression_margin=args.regression_margin)
    data = run_rounds(config, rounds, on_stage=lambda name: console.rule(styled((name, "bold"))))
    if args.rounds > 1:
        console.print(f"rounds: {Path(args.workdir) / 'rounds.md'} (best round {data['best_round']})")
        return 0
    table = Table(title=f"pipeline {data['name']} ({data['task']}, preset {data['preset']})")
    for col in ("stage", "status", "seconds", "counts"):
        table.add_column(col)
    for st in data["stages"]:
        counts = ", ".join(f"{k}={v}" for k, v in st["counts"].items())
        table.add_row(st["name"], st["status"], "" if st["seconds"] is None else f"{st['seconds']:.1f}", counts)
    console.print(table)
    workdir = Path(args.workdir)
    console.print(f"run record: {workdir / 'run.json'}; report: {workdir / 'report.md'}")
    if (workdir / "view.html").is_file():
        console.print(f"every episode, step by step, in a browser: {workdir / 'view.html'}")
    return 0


def _print_stats(stats: dict[str, Any]) -> None:
    console.print(f"trajectories {stats['trajectories']}, kept {stats['kept']} "
                  f"({100 * stats['success_rate']:.1f}%), dropped {stats['dropped']}")
    if verdicts := stats.get("reflect_verdicts"):
        console.print(f"reflect verdicts: right {verdicts['right']}, wrong {verdicts['wrong']} (of which "
                      f"{verdicts['negatives_used']} from the {verdicts['negatives_found']} wrong finishes found)")
        if "held_out_right" in verdicts:
            console.print(f"held out of training for the threshold fit: {verdicts['held_out_right']} right, "
                          f"{verdicts['held_out_wrong']} wrong ({stats['held_out_pairs']} reflect pairs)")
    table = Table(title="pairs per role")
    for col in ("role", "pairs", "prompt tokens (mean/max)", "completion tokens (mean/max)"):
        table.add_column(col, justify="right")
    for role, r in stats["roles"].items():
        table.add_row(role, str(r["pairs"]), f"{r['prompt_tokens']['mean']}/{r['prompt_tokens']['max']}",
                      f"{r['completion_tokens']['mean']}/{r['completion_tokens']['max']}")
    console.print(table)


def cmd_inspect(args: argparse.Namespace) -> int:
    """Print a few kept trajectories and the dataset stats, for a person to judge quality."""
    from training.dataset import read_dataset_stats, read_trajectories

    if args.dataset:
        _print_stats(read_dataset_stats(Path(args.dataset)))
    if args.trajectories:
        rows = read_trajectories(Path(args.trajectories))
        kept = [r for r in rows if float(r.get("reward") or 0) >= args.min_reward and not r.get("halted")]
        console.print(f"{len(kept)} of {len(rows)} trajectories reach reward {args.min_reward}; showing {args.n}")
        for row in kept[: args.n]:
            console.print(styled("\n", (str(row["id"]), "bold"), f" {row['question']}  ",
                                 (f"(gold: {row.get('gold')})", "dim")), highlight=False)
            for i, s in enumerate(row["transcript"], 1):
                step = f"{s.get('action')}[{s.get('argument')}] → {(s.get('observation') or '')[:200]}"
                console.print(styled(f"  {i}. ", (s.get("thought") or "", "cyan"), f"\n     {step}"), highlight=False)
    return 0


def add_training_parsers(sub: argparse._SubParsersAction) -> None:
    from training.tool_selection import FALLBACK_TOP_K

    non_negative = finite_float(0.0, inclusive=True)

    sel = sub.add_parser("select-tools", help="let the Meta-Agent choose the tools a task needs")
    sel.add_argument("--task", required=True, help="a built-in task (hotpotqa, scienceqa) or a new task's name")
    sel.add_argument("--description", default=None, help="what the task asks (required for a new task)")
    sel.add_argument("--out", required=True, help="where to write the chosen tools (JSON)")
    sel.add_argument("--free", action="store_true", help="let the model write a list (parsed leniently) "
                     "instead of scoring yes/no per tool")
    sel.add_argument("--no-calibration", action="store_true", help="use raw yes/no margins, not margins "
                     "relative to a content-free task")
    sel.add_argument("--strict", action="store_true", help="fail when the model picks no tool, instead of "
                     "falling back (with a warning) to the task's built-in set, or for a new task to the "
                     f"{FALLBACK_TOP_K} tools with the highest margins")
    _endpoint_options(sel)
    sel.set_defaults(func=cmd_select_tools)

    si = sub.add_parser("self-instruct", help="the Meta-Agent writes new task examples from two seeds")
    si.add_argument("--task", required=True, choices=("hotpotqa", "scienceqa"), help="task of the examples")
    si.add_argument("--seeds", required=True, help="seed examples JSONL (question, answer, ...)")
    si.add_argument("--out", required=True, help="questions JSONL (appended; rerunning continues to --n)")
    si.add_argument("--n", type=positive_int, default=200, help="how many examples the file should hold")
    si.add_argument("--per-round", type=positive_int, default=10, help="examples asked for per round")
    si.add_argument("--corpus", default=None, help="HotpotQA-format JSONL: ground each round in its paragraphs "
                    "(not the rows you will evaluate on)")
    si.add_argument("--held-out", action="append", default=[], metavar="FILE",
                    help="task rows to be evaluated: a question equal or near to one of theirs is dropped "
                         "(counted as eval_duplicate / eval_near_duplicate); repeatable")
    si.add_argument("--temperature", type=non_negative, default=0.8, help="sampling temperature (variety)")
    si.add_argument("--seed", type=int, default=0, help="random seed of example sampling")
    si.add_argument("--max-empty-rounds", type=positive_int, default=5,
                    help="stop after this many rounds in a row add nothing")
    si.add_argument("--answer-by", choices=("generate", "score"), default="score",
                    help="with --corpus: 'score' (default) has the model write only questions and picks each "
                         "answer among the pages' spans by likelihood; 'generate' has it write the answers too. "
                         "ScienceQA: 'score' fills in one field at a time and scores the answer among the options; "
                         "'generate' has the model write whole examples")
    si.add_argument("--concurrency", type=positive_int, default=8,
                    help="rounds generated at once (the batched worker decodes them together)")
    si.add_argument("--permutations", type=nonnegative_int, default=3,
                    help="ScienceQA: other option orders each item is scored in; it is kept only when the model "
                         "picks the same option's content there (0: no check)")
    si.add_argument("--min-agreement", type=non_negative, default=1.0,
                    help="ScienceQA: share of those orders that must agree (default: all)")
    si.add_argument("--keep-option-order", action="store_true",
                    help="ScienceQA: do not shuffle a kept item's options (by default answer letters are uniform)")
    si.add_argument("--no-progress", action="store_true", help="no progress bar")
    _endpoint_options(si)
    si.set_defaults(func=cmd_self_instruct)

    syn = sub.add_parser("synthesize", help="the Meta-Agent solves generated questions with the runtime graph")
    syn.add_argument("--questions", required=True, help="questions JSONL (from self-instruct)")
    syn.add_argument("--out", required=True, help="trajectories JSONL (appended; resumable)")
    syn.add_argument("--corpus", default=None, help="HotpotQA-format JSONL whose context paragraphs form the docstore")
    syn.add_argument("--concurrency", type=positive_int, default=8,
                     help="episodes run at once (the batched worker decodes them together)")
    syn.add_argument("--samples", type=positive_int, default=1,
                     help="solve each question K times (rows ID#0 … ID#K-1); differentiation keeps the right ones "
                          "and drops repeats (default 1: the paper's one attempt)")
    syn.add_argument("--temperature", type=non_negative, default=0.0,
                     help="sampling temperature of generated thoughts and arguments (default 0: greedy); "
                          "with --samples K > 1, a temperature above 0 makes the attempts differ")
    syn.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_group_options(syn)
    syn.set_defaults(func=cmd_synthesize)

    dif = sub.add_parser("differentiate", help="filter correct trajectories into plan/tool/reflect training pairs")
    dif.add_argument("--trajectories", required=True, help="trajectories JSONL from `autoact synthesize`")
    dif.add_argument("--out", required=True, help="output directory for plan/tool/reflect.jsonl and stats.json")
    dif.add_argument("--max-trajectories", type=positive_int, default=200, help="keep at most this many trajectories")
    dif.add_argument("--min-reward", type=non_negative, default=1.0, help="keep trajectories with at least this reward")
    dif.add_argument("--unfiltered", action="store_true", help="ablation: keep every trajectory that ran "
                     "without an error, right or wrong, finished or not")
    dif.add_argument("--no-reflect-negatives", action="store_true", help="ablation: no Reflect[wrong] pairs from "
                     "trajectories that finished with a wrong answer (by default they teach the reflect agent to "
                     "reject, balanced against the Reflect[right] pairs)")
    dif.add_argument("--negative-ratio", type=non_negative, default=1.0,
                     help="most Reflect[wrong] pairs per Reflect[right] pair kept")
    dif.add_argument("--hold-out-verdicts", type=share, default=0.0, metavar="SHARE",
                     help="keep about this share of the questions' reflect pairs out of reflect.jsonl, in "
                          "reflect.heldout.jsonl, for `autoact calibrate-reflect` to fit on (default 0: none)")
    dif.add_argument("--tools", default=None, help="tool list the trajectories used (default: from the meta file)")
    dif.add_argument("--task", default=None, help="task whose default tools to assume when there is no meta file")
    dif.add_argument("--tokenizer", default="default", help="tokenizer for length stats: default, a model dir, or none")
    dif.set_defaults(func=cmd_differentiate)

    cal = sub.add_parser("calibrate-reflect", help="fit where the trained reflect agent's scored verdict turns "
                         "from right to wrong, on its own verdict training pairs")
    cal.add_argument("--group", required=True, help="the trained group (`train --roles` output) with a reflect adapter")
    cal.add_argument("--data", required=True, help="the dataset directory it was trained on (reflect.jsonl)")
    _endpoint_options(cal, "the reflect model (default: the group's reflect adapter, served)")
    cal.set_defaults(func=cmd_calibrate_reflect)

    tr = sub.add_parser("train", help="train LoRA adapters of the plan, tool and reflect agents")
    tr.add_argument("--data", required=True, help="a role's pairs JSONL, or with --roles the dataset directory")
    tr.add_argument("--out", required=True, help="adapter directory, or with --roles the parent of one per role")
    tr.add_argument("--roles", default=None, help="plan,tool,reflect (any of them) or all (one adapter on "
                    "every role's data)")
    tr.add_argument("--base", default="default", help="base model: default (embedded SmolLM2) or a model dir")
    tr.add_argument("--epochs", type=finite_float(), default=5.0)
    tr.add_argument("--lora-r", type=positive_int, default=8)
    tr.add_argument("--lora-alpha", type=positive_int, default=16)
    tr.add_argument("--lora-dropout", type=non_negative, default=0.05)
    tr.add_argument("--target-modules", default="q_proj,v_proj", help="comma-separated module names")
    tr.add_argument("--lr", type=finite_float(), default=1e-4)
    tr.add_argument("--max-length", type=positive_int, default=1024,
                    help="longest example in tokens (prompt cut on the left)")
    tr.add_argument("--batch-size", type=positive_int, default=4)
    tr.add_argument("--grad-accum", type=positive_int, default=1)
    tr.add_argument("--warmup-ratio", type=non_negative, default=0.03, help="share of steps to warm up (at least 1)")
    tr.add_argument("--gradient-checkpointing", action="store_true")
    tr.add_argument("--save-steps", type=positive_int, default=50, help="checkpoint every N steps (for --resume)")
    tr.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (smoke runs)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                    help="auto (default): bf16 autocast where the GPU or CPU computes bf16 natively (AVX512-BF16, "
                         "AMX), fp32 otherwise; bf16: autocast (weights and optimizer stay fp32); fp32")
    tr.add_argument("--attention", default="auto",
                    help="auto (default): block-causal attention on a CPU (training.causal_attention), "
                         "transformers' default on a GPU; chunked, sdpa, eager or another transformers name")
    tr.add_argument("--no-length-grouping", action="store_true",
                    help="draw batches at random instead of grouping examples of similar length (more padding)")
    tr.add_argument("--deepspeed", default=None, help="DeepSpeed JSON config (see training/deepspeed/)")
    tr.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    tr.add_argument("--overwrite", action="store_true",
                    help="discard a previous adapter or unfinished run in --out: only its "
                    "own files (adapter, tokenizer, log, checkpoints) are removed, never other files there")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)  # deepspeed launcher
    tr.set_defaults(func=cmd_train)

    pl = sub.add_parser("pipeline", help="run every AutoAct stage, from seeds to an evaluated agent group")
    _pipeline_options(pl)
    pl.add_argument("--ablations", action="store_true", help="also train and evaluate the paper's ablation table "
                    "(what `autoact ablate` runs)")
    ab = sub.add_parser("ablate", help="the pipeline and the paper's ablation table: AutoAct, -reflection, -multi, "
                        "-fine-tuning, -filtering and the chance, direct, CoT, ReAct, Reflexion baselines, "
                        "on the same questions, in one report")
    _pipeline_options(ab)
    ab.set_defaults(func=cmd_pipeline, ablations=True)
    pl.set_defaults(func=cmd_pipeline)

    ins = sub.add_parser("inspect", help="print kept trajectories and dataset stats")
    ins.add_argument("--trajectories", default=None, help="trajectories JSONL")
    ins.add_argument("--dataset", default=None, help="a differentiated dataset directory")
    ins.add_argument("--n", type=positive_int, default=3, help="how many trajectories to show")
    ins.add_argument("--min-reward", type=non_negative, default=1.0, help="what counts as a kept trajectory")
    ins.set_defaults(func=cmd_inspect)


def _pipeline_options(pl: argparse.ArgumentParser) -> None:
    """The options of `pipeline` and `ablate`."""
    non_negative = finite_float(0.0, inclusive=True)
    pl.add_argument("--curve", type=_sizes, default=(), metavar="K,K,...",
                    help="learning curve: also train and evaluate groups on the first K kept trajectories of the "
                         "same pool (e.g. 25,50,100,200; sizes at or above the number kept are AutoAct itself)")
    pl.add_argument("--task", required=True, choices=("hotpotqa", "scienceqa"))
    pl.add_argument("--workdir", required=True, help="the run's folder (rerun the same command to resume)")
    pl.add_argument("--preset", choices=("quick", "paper"), default="quick",
                    help="quick: minutes on a 2-core CPU; paper: the paper's counts (200 trajectories, 5 epochs, r=8)")
    pl.add_argument("--base", default="default", help="base model: default (embedded SmolLM2) or a model dir")
    pl.add_argument("--base-url", default=None, help="a running server for the Meta-Agent stages (default: "
                    "start one); the trained group is always served locally")
    pl.add_argument("--data-dir", default="../shared/data", help="folder with TASK/seeds.jsonl and the eval files")
    pl.add_argument("--eval-file", default=None, help="evaluation questions (default: hotpotqa/easy.jsonl or "
                    "scienceqa/grade1-4.jsonl under --data-dir)")
    pl.add_argument("--corpus", default=None, help="HotpotQA-format JSONL that self-instruct and synthesis read "
                    "(default: the last --corpus-share of the eval file, whose first part is evaluated)")
    pl.add_argument("--corpus-share", type=finite_float(), default=0.5,
                    help="share of the eval file (its last rows) kept for self-instruct when there is no --corpus")
    pl.add_argument("--train-on-eval", action="store_true", help="let self-instruct and synthesis read the "
                    "evaluated rows themselves (the report states the overlap); off by default")
    pl.add_argument("--questions", choices=("self-instruct", "corpus"), default="self-instruct",
                    help="what synthesis solves: questions the Meta-Agent self-instructs (the paper's method), or "
                         "the corpus part's own real questions with their answers (never evaluated rows; for a "
                         "model whose own questions yield no right trajectory)")
    pl.add_argument("--tool-selection", choices=("default", "model"), default="default",
                    help="tools used: the task's built-in set, or the Meta-Agent's choice (always recorded)")
    pl.add_argument("--ablate-reflect", action="store_true", help="also evaluate the group without its reflect agent")
    pl.add_argument("--n-questions", type=positive_int, default=None, help="override the preset's question count")
    pl.add_argument("--epochs", type=finite_float(), default=None, help="override the preset's epochs")
    pl.add_argument("--eval-limit", type=positive_int, default=None,
                    help="override the preset's number of eval questions")
    pl.add_argument("--concurrency", type=positive_int, default=None, help="episodes run at once in synthesis and eval")
    pl.add_argument("--scored-arguments", action="store_true", help="synthesis and eval choose entity arguments "
                    "and open answers among the episode's names and numbers by likelihood (for weak models)")
    pl.add_argument("--answer-at-limit", action="store_true", help="synthesis and eval episodes must Finish in "
                    "their last steps instead of halting without an answer")
    pl.add_argument("--calibrated-reflect", action="store_true", help="synthesis and eval: the reflect agent's "
                    "verdict is measured against a content-free answer's (for weak models that always say right)")
    pl.add_argument("--fit-reflect-threshold", action="store_true", help="fit each trained reflect adapter's "
                    "verdict threshold before the evaluations (autoact calibrate-reflect), on the verdict pairs "
                    "differentiation held out of its training (--hold-out-verdicts)")
    pl.add_argument("--hold-out-verdicts", type=share, default=None, metavar="SHARE",
                    help="with --fit-reflect-threshold: the share of reflect pairs held out of training for the fit "
                         "(default 0.25; 0: fit on the training pairs themselves)")
    pl.add_argument("--samples", type=positive_int, default=None,
                    help="override the preset's attempts per question in synthesis (quick: 1, paper: 3)")
    pl.add_argument("--temperature", type=non_negative, default=None,
                    help="override the preset's synthesis temperature (quick: 0, greedy; paper: 0.7)")
    pl.add_argument("--rounds", type=positive_int, default=1,
                    help="self-improvement rounds: round r>=2 synthesizes new "
                    "questions with the latest round's trained group, or the Meta-Agent while no round has "
                    "kept a trajectory (default 1: the paper's method)")
    pl.add_argument("--continue-adapters", action="store_true", help="round r>=2 continues the latest trained "
                    "adapters on the data kept since (default: train from the base on all data kept so far)")
    pl.add_argument("--reuse-questions", action="store_true",
                    help="rounds may ask questions an earlier round asked (default: every round's are new)")
    pl.add_argument("--stop-on-regression", action="store_true",
                    help="end the rounds when a round scores below the previous one by more than the margin")
    pl.add_argument("--regression-margin", type=non_negative, default=1.0, help="points of the task metric")
    pl.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_engine_arguments(pl)
    pl.add_argument("--workers", type=positive_int, default=1,
                    help="model workers behind each stack the pipeline starts (cuda: one per GPU in turn)")


def _sizes(text: str) -> tuple[int, ...]:
    """`25,50,100` → (25, 50, 100); every size a positive integer."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return sizes
