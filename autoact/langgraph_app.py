"""The group graph for LangGraph's own tooling: `langgraph dev` serves :func:`make_graph` (langgraph.json).

    pip install "langgraph-cli[inmem]"      # optional: not needed by anything else here
    autoact serve &                         # the endpoint the agents call
    AUTOACT_GRAPH_ARGS="--task hotpotqa --data ../shared/data/hotpotqa/easy.jsonl --scored-arguments" \\
        langgraph dev

`AUTOACT_GRAPH_ARGS` takes the options of `autoact run` (the task, the docstore rows, the endpoint,
`--group`, the aids, the limits), so the served graph is the one `autoact run` would answer with.
The graph is the group's own (plan, tool, execute, reflect, halt) with the agents bound in and a
first node `start`, invoked with `{"question": "..."}` (and, for ScienceQA, `{"inputs": {...}}`);
LangGraph Studio shows each node's update as it comes.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import shlex
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from autoact.agent_options import add_group_options, agent_from_args
from core.errors import ConfigError
from graph.builder import bound_group_graph
from graph.context import GroupContext
from tasks import get_task, read_rows

__all__ = ["ARGS_ENV", "build_graph", "make_graph"]

ARGS_ENV = "AUTOACT_GRAPH_ARGS"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"${ARGS_ENV}", add_help=False)
    parser.add_argument("--data", default=None, help="task data file (the docstore for HotpotQA)")
    add_group_options(parser)
    return parser


async def make_graph(config: Any = None) -> CompiledStateGraph:
    """The factory `langgraph dev` calls for each run (`config`, LangGraph's, is not used).

    It runs in the server's event loop, so the build (files read, the endpoint asked for its
    models) happens in a worker thread, once per process: :func:`build_graph`.
    """
    return await asyncio.to_thread(build_graph)


@functools.cache
def _built(text: str) -> CompiledStateGraph:
    try:
        args = _parser().parse_args(shlex.split(text))
    except SystemExit:
        raise ConfigError(f"${ARGS_ENV}={text!r}: not options of `autoact run` (see autoact run --help)") from None
    task = get_task(args.task)
    rows = read_rows(args.data, task) if args.data else None
    agent = agent_from_args(args, task, rows)
    if not isinstance(agent.context, GroupContext):
        raise ConfigError(f"${ARGS_ENV}: the {getattr(args, 'agent', 'autoact')} design has no group graph to serve")
    return bound_group_graph(agent.context)


def build_graph() -> CompiledStateGraph:
    """The bound group graph `$AUTOACT_GRAPH_ARGS` describes (built once per distinct value)."""
    return _built(os.environ.get(ARGS_ENV, "--task hotpotqa"))
