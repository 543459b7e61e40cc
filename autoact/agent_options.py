"""The command-line options that say which agent to run, and the agent they build (run, eval, synthesize)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Sequence

from agents.base import AgentSettings
from agents.llm import DEFAULT_BASE_URL, EndpointConfig
from autoact.assembly import build_agent, build_task_toolbox, resolve_role_models
from autoact.options import add_timeout_option, nonnegative_int, positive_int
from core.errors import ConfigError
from graph.context import Limits
from graph.designs import DESIGNS, design
from graph.protocol import GraphAgent
from tasks import TASKS, read_rows
from tasks.base import Task


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
    agents = [d for d in DESIGNS.values() if not d.reference]
    p.add_argument("--agent", choices=[d.name for d in agents], default="autoact",
                   help="agent design: " + ", ".join(f"{d.name} ({d.description})" for d in agents))
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
    p.add_argument("--calibrated-reflect", action="store_true",
                   help="scored verdicts: the reflect agent says right only when the proposed answer makes 'right' "
                   "likelier than a content-free answer (N/A) does, instead of whenever 'right' is likelier")
    p.add_argument("--reflect-threshold", default="auto", metavar="auto|none|X",
                   help="margin (log p(right) - log p(wrong)) a scored verdict needs to say right: auto = the "
                   "group's fitted one (`autoact calibrate-reflect`) when there is one, else 0; none = 0; or a number")
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


def add_baseline_options(p: argparse.ArgumentParser) -> None:
    """`--baseline NAME`: a reference answerer of the design registry instead of the agent."""
    references = [d for d in DESIGNS.values() if d.reference]
    p.add_argument("--baseline", choices=[d.name for d in references], default=None,
                   help="evaluate a reference answerer instead of the agent: "
                        + ", ".join(f"{d.name} ({d.description})" for d in references))
    p.add_argument("--baseline-train", default=None, metavar="FILE",
                   help="training rows the majority baseline counts answer letters in (ScienceQA)")


def agent_from_args(args: argparse.Namespace, task: Task, rows: Sequence[dict] | None) -> GraphAgent:
    """The agent the command line asks for: `--baseline`, else `--agent` (default: the AutoAct group)."""
    if args.max_steps < 1 or args.max_reflections < 0 or args.context_tokens < 64:
        raise ConfigError("--max-steps must be >= 1, --max-reflections >= 0 and --context-tokens >= 64")
    name = getattr(args, "baseline", None) or getattr(args, "agent", "autoact")
    entry = design(name)
    group = getattr(args, "group", None)
    endpoint = EndpointConfig(base_url=args.base_url, api_key=args.api_key, timeout=args.timeout,
                              temperature=getattr(args, "temperature", 0.0))
    limits = Limits(max_steps=args.max_steps, max_reflections=args.max_reflections,
                    context_tokens=args.context_tokens, answer_at_limit=args.answer_at_limit)
    settings = AgentSettings(scored=not args.free_actions, scored_arguments=args.scored_arguments,
                             calibrated_reflect=args.calibrated_reflect, reflect_threshold=reflect_threshold(args))
    if entry.models == "roles" and entry.served:  # one served model (e.g. the `all` adapter) in every role
        one = args.model or entry.served
        roles = resolve_role_models(args.base_url, args.api_key, one, one, one, one, args.no_reflect)
    elif entry.models == "roles":
        roles = resolve_role_models(args.base_url, args.api_key, args.model, args.plan_model,
                                    args.tool_model, args.reflect_model, args.no_reflect, group)
    elif entry.models == "one":
        roles = resolve_role_models(args.base_url, args.api_key, args.model, args.plan_model, args.tool_model,
                                    no_reflect=True, group=group)
    else:
        roles = None
    toolbox = build_task_toolbox(task, None if entry.reference else rows, args.tools, args.wiki, args.database,
                                 args.triples, args.image_dir)
    prompts = "roles" if group and args.prompts == "auto" else args.prompts
    train = read_rows(args.baseline_train, task) if getattr(args, "baseline_train", None) else None
    return build_agent(name, task, toolbox, roles, endpoint, settings, limits, prompts, train)


def reflect_threshold(args: argparse.Namespace) -> float:
    """`--reflect-threshold`: a number, none (0), or auto (the `--group`'s fitted threshold, else 0)."""
    from training.reflect_threshold import load_threshold

    choice = str(getattr(args, "reflect_threshold", "auto"))
    if choice == "none":
        return 0.0
    if choice == "auto":
        group = getattr(args, "group", None)
        fitted = load_threshold(Path(group) / "reflect") if group else None
        return 0.0 if fitted is None else fitted
    try:
        value = float(choice)
    except ValueError:
        raise ConfigError(f"--reflect-threshold {choice!r}: give auto, none or a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"--reflect-threshold {choice!r}: give a finite number")
    return value


def agent_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The command-line choices that shape an agent's behaviour, for the evaluation summary."""
    keys = ("agent", "baseline", "baseline_train", "model", "plan_model", "tool_model", "reflect_model", "group", "no_reflect",
            "free_actions", "scored_arguments", "calibrated_reflect", "answer_at_limit", "prompts", "max_steps", "max_reflections",
            "context_tokens", "tools")
    out = {k: getattr(args, k) for k in keys if getattr(args, k, None) not in (None, False)}
    if hasattr(args, "reflect_threshold") and (threshold := reflect_threshold(args)):
        out["reflect_threshold"] = threshold  # the value used, whether given or the group's fitted one
    return out


