"""The `autoact` command line: serve, run, eval, demo, and the self-learning stages (see cli_training)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

from autoact.agent_options import (
    add_baseline_options,
    add_group_options,
    agent_from_args,
    agent_settings,
)
from autoact.cli_training import add_training_parsers
from autoact.console import console, log_to_stderr, styled
from autoact.options import out_directory, positive_int
from core.errors import AutoactError, ConfigError
from core.interrupt import RESUME, Interrupted
from evaluation.report import summary_table
from evaluation.runner import EvalOptions, evaluate, run_episode
from evaluation.trace import Tracer
from graph.designs import DESIGNS, design
from serving.cli import add_serve_parser, add_worker_parser
from tasks import get_task, read_rows


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
    agent = agent_from_args(args, task, rows)
    tracer = Tracer(console=console if args.trace or not args.trace_file else None,
                    jsonl=Path(args.trace_file) if args.trace_file else None)
    try:
        result = run_episode(agent, task, row, tracer)
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


def cmd_eval(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    rows = read_rows(args.data, task)
    out = out_directory(args.out)
    agent = agent_from_args(args, task, rows)
    tracer = Tracer(console=console if args.trace else None,
                    jsonl=Path(args.trace_file) if args.trace_file else None)
    started = time.perf_counter()
    try:
        options = EvalOptions(out, args.limit, args.concurrency, not args.no_progress, settings=agent_settings(args))
        summary = evaluate(agent, task, rows, options, tracer)
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
    from evaluation.viewer import write_viewer
    console.print(f"every episode, step by step, in a browser: {write_viewer([Path(args.out)])}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write report.md (tables and plots) for one or more pipeline runs; print its path and a summary."""
    from evaluation.report_terminal import terminal_summary
    from evaluation.run_report import write_report

    path = write_report([Path(d) for d in args.runs], Path(args.out) if args.out else None)
    for item in terminal_summary(args.runs):
        console.print(item)
    console.print(f"report: {path}")
    console.print(f"episodes: {path.parent / 'view.html'}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """Write the offline episode browser for runs or eval directories; print its path."""
    from evaluation.viewer import write_viewer

    path = write_viewer([Path(d) for d in args.runs], Path(args.out) if args.out else None)
    size = path.stat().st_size
    console.print(f"{path} ({size / 1024:.0f} KiB): open it in a browser (it needs no server or network)")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    """Print an agent design's graph as Mermaid (dotted edges are conditional)."""
    graph = design(args.agent).graph()
    print(graph.get_graph().draw_mermaid())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoact", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    add_serve_parser(sub)
    add_worker_parser(sub)

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
    add_baseline_options(ev)
    ev.set_defaults(func=cmd_eval)

    demo = sub.add_parser("demo", help="serve the embedded model, evaluate a few questions with a trace")
    _add_eval_options(demo, out_default="", limit_default=3)
    demo.add_argument("--serve-model", default="default", help="model to serve (default: embedded SmolLM2)")
    demo.add_argument("--port", type=positive_int, default=8000, help="API server port")
    demo.set_defaults(func=cmd_demo)

    gr = sub.add_parser("graph", help="print an agent design's graph as Mermaid")
    gr.add_argument("--agent", choices=list(DESIGNS), default="autoact")
    gr.set_defaults(func=cmd_graph)

    rep = sub.add_parser("report", help="write report.md with tables and plots for one or more pipeline runs")
    rep.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (each holds run.json)")
    rep.add_argument("--out", default=None, metavar="FILE",
                     help="report file; the plots go beside it (default: report.md in the first RUN_DIR)")
    rep.set_defaults(func=cmd_report)

    view = sub.add_parser("view", help="write view.html: every episode step by step, in a browser, offline")
    view.add_argument("runs", nargs="+", metavar="DIR",
                      help="pipeline run directories, `autoact eval --out` directories, or folders of them")
    view.add_argument("--out", default=None, metavar="FILE", help="the page (default: view.html in the first DIR)")
    view.set_defaults(func=cmd_view)
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


def take_local_rank(argv: Sequence[str]) -> list[str]:
    """`argv` without the `--local_rank=N` (or `--local-rank N`) the `deepspeed` launcher puts before the
    command; its value goes to `$LOCAL_RANK`, where torchrun puts it and the Trainer reads it."""
    out, args = [], list(argv)
    while args:
        arg = args.pop(0)
        name, sep, value = arg.partition("=")
        if name in ("--local_rank", "--local-rank"):
            value = value if sep else (args.pop(0) if args else "")
            os.environ["LOCAL_RANK"] = value
            continue
        out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(take_local_rank(sys.argv[1:] if argv is None else argv))
    log_to_stderr()
    # SIGTERM (`kill`, a batch scheduler's stop) ends a command as Ctrl-C does: finished work kept, the
    # pipeline's stage recorded as interrupted with its time, servers stopped, resumable
    old_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return int(args.func(args) or 0)
    except AutoactError as e:
        console.print(styled(("error:", "red"), f" {e}"))
        return 2
    except KeyboardInterrupt as e:
        console.print(styled(("stopped:", "yellow"), f" {e if isinstance(e, Interrupted) else RESUME}"))
        return 130
    finally:
        signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    sys.exit(main())
