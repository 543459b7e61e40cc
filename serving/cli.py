"""``autoact serve``: run the FastChat stack in the foreground until Ctrl-C or SIGTERM.

Also runnable alone: ``python -m serving.cli serve [options]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from core.errors import AutoactError
from serving.adapters import group_adapters, parse_adapter_specs
from serving.launcher import ENGINES, FastChatStack
from serving.model_store import resolve_model

API_KEY_ENV = "AUTOACT_API_KEY"


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand on an ``add_subparsers()`` object."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a model through FastChat's OpenAI-compatible API",
        description="Start a FastChat controller, model worker and OpenAI API server; "
        "stop them all on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--model", default="default", metavar="PATH|default",
                        help="local Hugging Face model directory, or 'default' for the embedded SmolLM2")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address of the API server (not loopback: --api-key is required)")
    parser.add_argument("--port", type=int, default=8000, help="port of the API server")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                        help=f"key clients must send (default: ${API_KEY_ENV})")
    parser.add_argument("--conv-template", default=None,
                        help="FastChat conversation template (default: ChatML for ChatML models)")
    parser.add_argument("--adapters", default=None, metavar="NAME=PATH,...",
                        help="LoRA adapters to serve beside the base model, sharing its weights "
                             "(e.g. plan=adapters/plan,tool=adapters/tool,reflect=adapters/reflect)")
    parser.add_argument("--group", type=Path, default=None, metavar="DIR",
                        help="serve the role adapters in DIR (plan, tool, reflect, all: what "
                             "`autoact train --roles` writes) under their role names")
    add_engine_arguments(parser)
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="where process logs go (default: a new temporary directory)")
    parser.add_argument("--startup-timeout", type=float, default=300.0,
                        help="seconds to wait for the stack to answer")
    parser.set_defaults(func=cmd_serve)
    return parser


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker-engine options (``--engine``, ``--dtype``, ``--max-batch-size``)."""
    parser.add_argument("--engine", choices=ENGINES, default="batched",
                        help="batched: our continuous-batching worker (mixed adapters in one batch); "
                             "stock: FastChat's model_worker / multi_model_worker, one request at a time")
    parser.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                        help="batched engine: weights and activations (auto: bf16 where the CPU has bf16 "
                             "instructions, else fp32)")
    parser.add_argument("--max-batch-size", type=int, default=32,
                        help="batched engine: rows decoded together at most")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """FastChatStack keyword arguments from :func:`add_engine_arguments` options."""
    return {"engine": args.engine, "dtype": args.dtype, "max_batch_size": args.max_batch_size}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns 0 after a clean stop. Raises AutoactError on failure."""
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    stack: FastChatStack | None = None
    try:
        model = resolve_model(args.model, conv_template=args.conv_template)
        adapters = {**(group_adapters(args.group) if args.group else {}),
                    **(parse_adapter_specs(args.adapters) if args.adapters else {})}
        stack = FastChatStack(model, host=args.host, port=args.port, api_key=args.api_key,
                              log_dir=args.log_dir, startup_timeout=args.startup_timeout, adapters=adapters,
                              **engine_options(args))
        print(f"Starting FastChat for {model.name} …", file=sys.stderr, flush=True)
        stack.start()
        print(f"Serving {', '.join(stack.model_names)} at {stack.base_url}", flush=True)
        print(f"Logs in {stack.log_dir}. Press Ctrl-C to stop.", file=sys.stderr, flush=True)
        while True:
            time.sleep(1.0)
            stack.check_alive()
    except KeyboardInterrupt:
        return 0
    finally:
        # No second signal may cut the shutdown short and leave processes behind.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if stack is not None:
                stack.stop()
                print("FastChat stopped.", file=sys.stderr, flush=True)
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (the ``autoact`` CLI wires :func:`add_serve_parser` itself)."""
    parser = argparse.ArgumentParser(prog="python -m serving.cli")
    add_serve_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except AutoactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
