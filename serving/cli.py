"""``autoact serve``: run the FastChat stack in the foreground until Ctrl-C or SIGTERM;
``autoact worker``: one more model worker for a controller already running (here or on another host).

Also runnable alone: ``python -m serving.cli serve|worker [options]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from core.errors import AutoactError, ConfigError, ServeError
from core.hardware import cpu_threads, gpu_count, resolve_device
from serving.adapters import group_adapters, parse_adapter_specs
from serving.launcher import SERVING_ENGINES, child_env, free_port, is_loopback, serving_stack
from serving.model_store import resolve_model
from serving.workers import WorkerSettings, place_workers, worker_command

API_KEY_ENV = "AUTOACT_API_KEY"


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand on an ``add_subparsers()`` object."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a model through FastChat's OpenAI-compatible API",
        description="Start a FastChat controller, model worker and OpenAI API server; "
        "stop them all on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address of the API server (not loopback: --api-key is required)")
    parser.add_argument("--port", type=int, default=8000, help="port of the API server")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                        help=f"key clients must send (default: ${API_KEY_ENV})")
    _add_model_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--controller-host", default="127.0.0.1",
                        help="address the FastChat controller listens on: 0.0.0.0 lets workers on other hosts "
                             "join (`autoact worker --controller URL`); it has no key, so only on a private network")
    parser.add_argument("--controller-port", type=int, default=0, help="port of the controller (default: a free one)")
    parser.add_argument("--workers", type=int, default=1,
                        help="model workers behind the one controller (cuda: one per GPU in turn; cpu: the "
                             "cores shared out); `autoact worker` adds more from other hosts")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="where process logs go (default: a new temporary directory)")
    parser.add_argument("--startup-timeout", type=float, default=300.0,
                        help="seconds to wait for the stack to answer")
    parser.set_defaults(func=cmd_serve)
    return parser


def add_worker_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``worker`` subcommand on an ``add_subparsers()`` object."""
    parser = subparsers.add_parser(
        "worker",
        help="start one more model worker for a running FastChat controller",
        description="Start a model worker (the batched engine by default) that registers with the FastChat "
        "controller at --controller and serves the same model names; the controller spreads requests over "
        "all its workers. Runs until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--controller", required=True, metavar="URL",
                        help="the controller's address, e.g. http://10.0.0.1:21001 (`autoact serve` prints it)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address the worker listens on (0.0.0.0 for a controller on another host)")
    parser.add_argument("--port", type=int, default=0, help="port the worker listens on (default: a free one)")
    parser.add_argument("--worker-address", default=None, metavar="URL",
                        help="URL the controller and API server reach this worker at (default: "
                             "http://HOST:PORT, with this host's name for 0.0.0.0)")
    _add_model_arguments(parser)
    add_engine_arguments(parser)
    parser.set_defaults(func=cmd_worker)
    return parser


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """What is served: the base model, its conversation template and its adapters."""
    parser.add_argument("--model", default="default", metavar="PATH|default",
                        help="local Hugging Face model directory, or 'default' for the embedded SmolLM2")
    parser.add_argument("--conv-template", default=None,
                        help="FastChat conversation template (default: ChatML for ChatML models)")
    parser.add_argument("--adapters", default=None, metavar="NAME=PATH,...",
                        help="LoRA adapters to serve beside the base model, sharing its weights "
                             "(e.g. plan=adapters/plan,tool=adapters/tool,reflect=adapters/reflect)")
    parser.add_argument("--group", type=Path, default=None, metavar="DIR",
                        help="serve the role adapters in DIR (plan, tool, reflect, all: what "
                             "`autoact train --roles` writes) under their role names")


def _served(args: argparse.Namespace) -> tuple[Any, dict[str, Path]]:
    """The resolved base model and the adapters named by :func:`_add_model_arguments` options."""
    model = resolve_model(args.model, conv_template=args.conv_template)
    adapters = {**(group_adapters(args.group) if args.group else {}),
                **(parse_adapter_specs(args.adapters) if args.adapters else {})}
    return model, adapters


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker-engine options (``--engine``, ``--device``, ``--dtype``, ``--max-batch-size``)."""
    parser.add_argument("--engine", choices=SERVING_ENGINES, default="batched",
                        help="batched: our continuous-batching worker (mixed adapters in one batch); "
                             "stock: FastChat's model_worker / multi_model_worker, one request at a time; "
                             "vllm: vLLM's own server with the adapters as LoRA modules (where vllm is installed)")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                        help="where the workers run (auto: CUDA when torch sees a GPU, else the CPU); the stock "
                             "engine gets FastChat's --device cuda --num-gpus N")
    parser.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                        help="batched engine: weights and activations (auto: bf16 where the device computes it "
                             "natively, else fp32)")
    parser.add_argument("--max-batch-size", type=int, default=32,
                        help="batched engine: rows decoded together at most")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """FastChatStack keyword arguments from :func:`add_engine_arguments` options."""
    return {"engine": args.engine, "dtype": args.dtype, "max_batch_size": args.max_batch_size,
            "device": args.device}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns 0 after a clean stop. Raises AutoactError on failure."""
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    stack: Any = None
    try:
        model, adapters = _served(args)
        stack = serving_stack(model, host=args.host, port=args.port, api_key=args.api_key,
                              log_dir=args.log_dir, startup_timeout=args.startup_timeout, adapters=adapters,
                              workers=args.workers, controller_host=args.controller_host,
                              controller_port=args.controller_port, **engine_options(args))
        print(f"Starting FastChat for {model.name} …", file=sys.stderr, flush=True)
        stack.start()
        print(f"Serving {', '.join(stack.model_names)} at {stack.base_url}", flush=True)
        print(f"{stack.describe()}. Press Ctrl-C to stop.", file=sys.stderr, flush=True)
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


def _worker_address(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one worker in the foreground until interrupted; returns its exit code (0 after Ctrl-C)."""
    controller = args.controller.rstrip("/")
    try:
        httpx.post(f"{controller}/list_models", timeout=10, trust_env=False).raise_for_status()
    except httpx.HTTPError as err:
        raise ServeError(f"--controller {controller}: no FastChat controller answers there ({err})") from None
    if not is_loopback(args.host) and not args.worker_address and args.host not in ("0.0.0.0", "::"):
        raise ConfigError(f"--host {args.host}: give --worker-address, the URL the controller reaches it at")
    model, adapters = _served(args)
    settings = WorkerSettings(args.engine, resolve_device(args.device), args.dtype, args.max_batch_size)
    place = place_workers(settings.device, 1, gpu_count(), cpu_threads())[0]
    port = args.port or free_port("0.0.0.0" if not is_loopback(args.host) else "127.0.0.1")
    address = args.worker_address or _worker_address(args.host, port)
    argv, env = worker_command(model, adapters, settings, place, host=args.host, port=port, worker_address=address,
                               controller_url=controller,
                               adapter_dir=Path(tempfile.mkdtemp(prefix="autoact-worker-")), gpus=gpu_count())
    print(f"Worker for {', '.join([model.name, *adapters])} on {place.device} at {address}, "
          f"registering with {controller}. Press Ctrl-C to stop.", file=sys.stderr, flush=True)
    proc = subprocess.Popen([sys.executable, *argv], env=child_env(env), stdin=subprocess.DEVNULL)
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        signal.signal(signal.SIGTERM, old_term)
        print("Worker stopped.", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (the ``autoact`` CLI wires :func:`add_serve_parser` itself)."""
    parser = argparse.ArgumentParser(prog="python -m serving.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(commands)
    add_worker_parser(commands)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except AutoactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
