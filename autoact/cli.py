"""The `autoact` command line: serve, run, eval, demo, and the self-learning stages (see cli_training)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.text import Text

from agents.base import AgentSettings
from agents.llm import DEFAULT_BASE_URL, EndpointConfig, EndpointModel
from autoact.assembly import (
    build_design,
    build_group,
    build_task_toolbox,
    resolve_role_models,
)
from autoact.options import (
    add_timeout_option,
    nonnegative_int,
    out_directory,
    positive_int,
)
from core.errors import AutoactError, ConfigError
from core.interrupt import RESUME, Interrupted
from evaluation.report import summary_table
from evaluation.runner import EvalOptions, evaluate, run_episode
from evaluation.trace import Tracer
from graph.context import Limits
from graph.group import AgentGroup
from tasks import TASKS, get_task, read_rows
from tasks.base import Task

console = Console(stderr=False, markup=False)  # user data (paths, answers, errors) is printed literally


def styled(*parts: str | tuple[str, str]) -> Text:
    """One line of literal text; `(text, style)` parts are shown in that style."""
    return Text.assemble(*parts)


def add_group_options(p: argparse.ArgumentParser) -> None:
    """Options every command that runs the group shares."""
    p.add_argument("--task", required=True, choices=sorted(TASKS), help="benchmark the questions come from")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, help="OpenAI-compatible API of the FastChat server")
    p.add_argument("--api-key", default=None, help="API key of the server, if it requires one")
    p.add_argument("--model", default=None, help="model for every role (default: the served base model)")
    p.add_argument("--plan-model", default=None, help="model of the plan agent")
    p.add_argument("--tool-model", default=None, help="model of the tool agent")
    p.add_argument("--reflect-model", default=None, help="model of the reflect agent")
    p.add_argument("--group", default=None, metavar="DIR",
                   help="the trained group in DIR (from `autoact train --roles`, served with `autoact serve --group "
                        "DIR`): each role uses its adapter (plan, tool, reflect, or all for every role)")
    p.add_argument("--no-reflect", action="store_true", help="no reflect agent: the first Finish is final")
    p.add_argument("--agent", choices=("autoact", "cot", "react", "reflexion", "rewoo", "fireact", "bolaa",
                                            "chameleon"), default="autoact",
                   help="agent design: autoact (the plan/tool/reflect group), cot (one Thought, then the answer; "
                        "no tools), react (one agent with worked examples in its prompt; no reflection), "
                        "reflexion (ReAct trials with self-judged answers and lessons between trials), "
                        "rewoo (the whole plan of tool calls first, then the calls, then the answer), "
                        "fireact (one model fine-tuned on all roles' data, served as 'all' or --model, in every role), "
                        "bolaa (a controller routes each step to a labor agent per tool family), "
                        "chameleon (a program of tool modules composed first, then run in order)")
    p.add_argument("--tools", default=None, help="tool list JSON (DESIGN §2); default: the task's built-in set")
    p.add_argument("--wiki", choices=("offline", "live"), default="offline",
                   help="Retrieve from the data file's context paragraphs, or live Wikipedia")
    p.add_argument("--database", default=None, help="SQLite file the Database tool queries (read-only)")
    p.add_argument("--triples", default=None, help="triple file (RDF or CSV) the KnowledgeGraph tool queries")
    p.add_argument("--image-dir", default=None, help="where Text2Image writes its PNG files")
    p.add_argument("--free-actions", action="store_true",
                   help="let models write actions and verdicts freely (parsed leniently) instead of scoring choices")
    p.add_argument("--scored-arguments", action="store_true",
                   help="choose entity arguments (Retrieve[...]) and open answers (Finish[...]) among the names, "
                   "dates and numbers of the question and observations by likelihood, instead of generating them")
    p.add_argument("--prompts", choices=("auto", "meta", "roles"), default="auto",
                   help="meta: one zero-shot instruction for all roles; roles: one per role; auto: meta when one model plays all roles")
    p.add_argument("--max-steps", type=positive_int, default=10, help="step limit of an episode")
    p.add_argument("--answer-at-limit", action="store_true",
                   help="the last steps before --max-steps offer only Finish (leaving room to reflect), instead "
                   "of halting without an answer")
    p.add_argument("--max-reflections", type=nonnegative_int, default=1, help="Finish answers that get reflected on")
    p.add_argument("--context-tokens", type=positive_int, default=2048,
                   help="halt when a prompt would exceed this many tokens")
    add_timeout_option(p)


def make_group(args: argparse.Namespace, task: Task, rows: Sequence[dict] | None) -> AgentGroup:
    """The agent to run, from the command line: the group (`--agent autoact`) or another design."""
    if args.max_steps < 1 or args.max_reflections < 0 or args.context_tokens < 64:
        raise ConfigError("--max-steps must be >= 1, --max-reflections >= 0 and --context-tokens >= 64")
    toolbox = build_task_toolbox(task, rows, args.tools, args.wiki, args.database, args.triples, args.image_dir)
    endpoint = EndpointConfig(base_url=args.base_url, api_key=args.api_key, timeout=args.timeout)
    limits = Limits(max_steps=args.max_steps, max_reflections=args.max_reflections,
                    context_tokens=args.context_tokens, answer_at_limit=args.answer_at_limit)
    settings = AgentSettings(scored=not args.free_actions, scored_arguments=args.scored_arguments)
    agent = getattr(args, "agent", "autoact")
    if agent == "fireact":  # one model fine-tuned on every role's data plays every role (`train --roles all`)
        one = args.model or "all"
        roles = resolve_role_models(args.base_url, args.api_key, one, one, one, one, args.no_reflect)
        return build_group(task, toolbox, roles, endpoint, settings, limits, "roles")
    roles = resolve_role_models(args.base_url, args.api_key, args.model, args.plan_model,
                                args.tool_model, args.reflect_model, args.no_reflect, getattr(args, "group", None))
    if agent != "autoact":
        model = EndpointModel(EndpointConfig(**{**endpoint.__dict__, "model": roles.plan}), usage_label=agent)
        return build_design(agent, task, toolbox, model, limits, settings)
    prompts = "roles" if getattr(args, "group", None) and args.prompts == "auto" else args.prompts
    return build_group(task, toolbox, roles, endpoint, settings, limits, prompts)


def cmd_run(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    rows = read_rows(args.data, task) if args.data else None
    row = _find_row(rows or [], args.question, args.id)
    if row is None:
        if not args.question:
            raise ConfigError("give a QUESTION or --id of a row in --data")
        row = {"id": "cli", "question": args.question}
        if task.name == "scienceqa":
            raise ConfigError("ScienceQA questions need their options: pass --data FILE with --id ID "
                              "(or a QUESTION that matches a row of FILE exactly)")
    group = make_group(args, task, rows)
    tracer = Tracer(console=console if args.trace or not args.trace_file else None,
                    jsonl=Path(args.trace_file) if args.trace_file else None)
    try:
        result = run_episode(group, task, row, tracer)
    finally:
        tracer.close()
    console.print(styled(("Answer:", "bold"), f" {result['prediction']}" + (" (halted)" if result["halted"] else "")))
    if "answer" in row:
        scores = {k: result[k] for k in task.metrics}
        console.print(styled(("Gold:", "bold"), f" {result['gold']}   "
                             + "  ".join(f"{k}={v:.2f}" for k, v in scores.items())))
    if result["error"]:
        console.print(styled(("error:", "red"), f" {result['error']}"))
        return 1
    return 0


def _find_row(rows: Sequence[dict], question: str | None, row_id: str | None) -> dict | None:
    for row in rows:
        if (row_id is not None and str(row["id"]) == row_id) or (question and row["question"].strip() == question.strip()):
            return row
    if row_id is not None:
        raise ConfigError(f"no row with id {row_id!r} in --data")
    return None


def make_baseline(args: argparse.Namespace, task: Task) -> Any:
    """The `--baseline` answerer (evaluation/baselines.py) in place of the group."""
    from evaluation.baselines import build_baseline

    train = read_rows(args.baseline_train, task) if args.baseline_train else None
    model = None
    if args.baseline == "direct":
        name = resolve_role_models(args.base_url, args.api_key, args.model, no_reflect=True).plan
        model = EndpointModel(EndpointConfig(base_url=args.base_url, api_key=args.api_key, model=name,
                                             timeout=args.timeout))
    return build_baseline(args.baseline, task, model, train)


def _agent_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The command-line choices that shape an agent's behaviour, for the evaluation summary."""
    keys = ("agent", "baseline", "model", "plan_model", "tool_model", "reflect_model", "group", "no_reflect",
            "free_actions", "scored_arguments", "answer_at_limit", "prompts", "max_steps", "max_reflections",
            "context_tokens", "tools")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) not in (None, False)}


def cmd_eval(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    rows = read_rows(args.data, task)
    out = out_directory(args.out)
    group = make_baseline(args, task) if getattr(args, "baseline", None) else make_group(args, task, rows)
    tracer = Tracer(console=console if args.trace else None,
                    jsonl=Path(args.trace_file) if args.trace_file else None)
    started = time.perf_counter()
    try:
        options = EvalOptions(out, args.limit, args.concurrency, not args.no_progress, settings=_agent_settings(args))
        summary = evaluate(group, task, rows, options, tracer)
    finally:
        tracer.close()
    console.print(summary_table(summary, task.metrics))
    retry = "; rerun the same command to retry the errored rows" if summary["errors"] else ""
    console.print(f"{summary['errors']} errors, {summary['halted']} halted; wall time "
                  f"{time.perf_counter() - started:.1f}s; results in {out / 'results.jsonl'}{retry}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the FastChat stack on the embedded model, evaluate a few questions with a live trace, stop."""
    from serving.launcher import FastChatStack
    from serving.model_store import resolve_model

    if not args.out:  # a fresh folder each time, so the demo always shows its episodes
        args.out = str(Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    model = resolve_model(args.serve_model)
    console.print(f"Starting FastChat (controller, worker, API server) for {model.name} …")
    with FastChatStack(model, port=args.port) as stack:
        console.print(f"Serving {stack.model_name} at {stack.base_url}")
        args.base_url, args.model, args.api_key, args.trace = stack.base_url, stack.model_name, None, True
        args.trace_file = str(Path(args.out) / "trace.jsonl")
        cmd_eval(args)
    console.print("FastChat stack stopped.")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write report.md (tables and plots) for one or more pipeline runs; print its path and a summary."""
    from evaluation.run_report import terminal_summary, write_report

    path = write_report([Path(d) for d in args.runs], Path(args.out) if args.out else None)
    for item in terminal_summary(args.runs):
        console.print(item)
    console.print(f"report: {path}")
    return 0


AGENT_GRAPHS = {"autoact": "graph.builder:build_group_graph",  # agent designs selectable by name
                "cot": "graph.builder:build_single_agent_graph", "react": "graph.builder:build_single_agent_graph",
                "reflexion": "graph.reflexion:build_reflexion_graph", "rewoo": "graph.rewoo:build_rewoo_graph",
                "fireact": "graph.builder:build_group_graph", "bolaa": "graph.bolaa:build_bolaa_graph",
                "chameleon": "graph.chameleon:build_chameleon_graph"}


def cmd_graph(args: argparse.Namespace) -> int:
    """Print an agent design's graph as Mermaid (dotted edges are conditional)."""
    import importlib
    module, _, func = AGENT_GRAPHS[args.agent].partition(":")
    graph = getattr(importlib.import_module(module), func)()
    print(graph.get_graph().draw_mermaid())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoact", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    from autoact.cli_training import add_training_parsers
    from serving.cli import add_serve_parser
    add_serve_parser(sub)

    run = sub.add_parser("run", help="answer one question, printing each step")
    run.add_argument("question", nargs="?", default=None, help="the question (or use --id with --data)")
    run.add_argument("--data", default=None, help="task data file (docstore for HotpotQA; rows for --id)")
    run.add_argument("--id", default=None, help="answer the row with this id from --data")
    run.add_argument("--trace", action="store_true", help="print each step (default unless --trace-file)")
    run.add_argument("--trace-file", default=None, help="append each step as JSONL to this file")
    add_group_options(run)
    run.set_defaults(func=cmd_run)

    add_training_parsers(sub)

    ev = sub.add_parser("eval", help="evaluate on a data file; resumable")
    _add_eval_options(ev)
    ev.add_argument("--baseline", choices=("majority", "direct"), default=None,
                    help="evaluate a reference answerer instead of the group: majority (a constant answer) or "
                         "direct (the base model answers at once, without tools)")
    ev.add_argument("--baseline-train", default=None, metavar="FILE",
                    help="training rows the majority baseline counts answer letters in (ScienceQA)")
    ev.set_defaults(func=cmd_eval)

    demo = sub.add_parser("demo", help="serve the embedded model, evaluate a few questions with a trace")
    _add_eval_options(demo, out_default="", limit_default=3)
    demo.add_argument("--serve-model", default="default", help="model to serve (default: embedded SmolLM2)")
    demo.add_argument("--port", type=positive_int, default=8000, help="API server port")
    demo.set_defaults(func=cmd_demo)

    gr = sub.add_parser("graph", help="print an agent design's graph as Mermaid")
    gr.add_argument("--agent", choices=sorted(AGENT_GRAPHS), default="autoact")
    gr.set_defaults(func=cmd_graph)

    rep = sub.add_parser("report", help="write report.md with tables and plots for one or more pipeline runs")
    rep.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (each holds run.json)")
    rep.add_argument("--out", default=None, metavar="FILE",
                     help="report file; the plots go beside it (default: report.md in the first RUN_DIR)")
    rep.set_defaults(func=cmd_report)
    return parser


def _add_eval_options(p: argparse.ArgumentParser, out_default: str | None = None,
                      limit_default: int | None = None) -> None:
    p.add_argument("--data", required=True, help="JSONL data file of the task")
    p.add_argument("--out", required=out_default is None, default=out_default, help="output directory")
    p.add_argument("--limit", type=positive_int, default=limit_default, help="evaluate only the first N questions")
    p.add_argument("--concurrency", type=positive_int, default=8,
                   help="episodes run at once (the batched worker decodes them together)")
    p.add_argument("--trace", action="store_true", help="print every step")
    p.add_argument("--trace-file", default=None, help="append every step as JSONL to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_group_options(p)


def _log_to_stderr() -> None:
    """autoact's warnings (a server that stopped answering, a fallback taken) as `warning: …` lines."""
    logger = logging.getLogger("autoact")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.setLevel(logging.WARNING)
        logger.addHandler(handler)
        logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _log_to_stderr()
    try:
        return int(args.func(args) or 0)
    except AutoactError as e:
        console.print(styled(("error:", "red"), f" {e}"))
        return 2
    except KeyboardInterrupt as e:
        console.print(styled(("stopped:", "yellow"), f" {e if isinstance(e, Interrupted) else RESUME}"))
        return 130


if __name__ == "__main__":
    sys.exit(main())
