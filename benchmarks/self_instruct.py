"""Benchmark: what a kept self-instructed ScienceQA item costs, and which model calls the time goes to.

Runs guided ScienceQA self-instruct (the pipeline's settings: one field at a time, the answer
scored, the option-order check) for `--n` kept items against one batched server, and prints the
wall time, the seconds per kept item, what each check removed, and the share of request time
spent on each kind of call (question stem, options, caption, image text, the scored answer, the
option-order check). Under concurrency the requests overlap, so the shares are of the summed
request seconds, not of the wall time.

    .venv/bin/python benchmarks/self_instruct.py [--n 8] [--concurrency 8] [--permutations 3]
        [--min-agreement 1.0] [--base-url URL]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)  # run as a script: benchmarks/serving.py and training.py must not shadow packages

import argparse
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from agents.llm import EndpointConfig, EndpointModel
from autoact.assembly import resolve_role_models
from benchmarks.training import machine
from serving.launcher import FastChatStack, free_port
from serving.model_store import resolve_model
from training import guided_items
from training.guided_items import FIELD_TOKENS
from training.self_instruct import SelfInstructConfig, run_self_instruct

DATA = ROOT.parent / "shared" / "data"
#: guided generation's calls, told apart by their token budgets
_GENERATE_KINDS = {tokens: name for name, tokens in FIELD_TOKENS.items()}


class CallTimer:
    """Wraps the Meta-Agent's model: sums each kind of request's seconds (one item is built on one thread)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._lock = threading.Lock()
        self._last = threading.local()
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _timed(self, kind: str, fn: Any, *args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            with self._lock:
                self.seconds[kind] += time.perf_counter() - start
                self.calls[kind] += 1
            self._last.kind = kind

    def generate(self, prompt: str, *, stop: Sequence[str], max_tokens: int) -> str:
        kind = _GENERATE_KINDS.get(max_tokens, "other generation")
        return self._timed(kind, self._model.generate, prompt, stop=stop, max_tokens=max_tokens)

    def score(self, prompt: str, candidates: Sequence[str]) -> list[float]:
        # the first score after the image fields is the answer; the ones after it, the option-order check
        last = getattr(self._last, "kind", "")
        kind = "answer" if last in ("options", "caption", "image text") else "option-order check"
        return self._timed(kind, self._model.score, prompt, candidates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=8, help="kept items to generate")
    parser.add_argument("--concurrency", type=int, default=8, help="rounds in flight (the pipeline's: 8)")
    parser.add_argument("--permutations", type=int, default=3)
    parser.add_argument("--min-agreement", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (the pipeline's)")
    parser.add_argument("--base-url", default=None, help="use a running server instead of starting one")
    parser.add_argument("--option-tries", type=int, default=guided_items.OPTION_TRIES,
                        help="options lines sampled for one stem before it is dropped (the pipeline's: "
                             f"{guided_items.OPTION_TRIES})")
    args = parser.parse_args()
    guided_items.OPTION_TRIES = max(1, args.option_tries)
    base = resolve_model("default")
    config = SelfInstructConfig(task="scienceqa", n=args.n, per_round=4, concurrency=args.concurrency,
                                permutations=args.permutations, min_agreement=args.min_agreement,
                                max_empty_rounds=1000)
    with ExitStack() as stack:
        url = args.base_url or stack.enter_context(FastChatStack(base, port=free_port())).base_url
        name = resolve_role_models(url, None).plan
        timer = CallTimer(EndpointModel(EndpointConfig(base_url=url, model=name, temperature=args.temperature)))
        out = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "questions.jsonl"
        start = time.perf_counter()
        report = run_self_instruct(timer, "scienceqa", DATA / "scienceqa" / "seeds.jsonl", out, config,
                                   progress=False)
        wall = time.perf_counter() - start
    summary = report.summary()
    table = Table(title=f"guided ScienceQA self-instruct: {report.accepted} kept items, {report.rounds} rounds")
    for col in ("call", "requests", "request s", "share", "s per kept item"):
        table.add_column(col, justify="right")
    total = sum(timer.seconds.values()) or 1.0
    for kind in sorted(timer.seconds, key=lambda k: -timer.seconds[k]):
        table.add_row(kind, str(timer.calls[kind]), f"{timer.seconds[kind]:.1f}",
                      f"{100 * timer.seconds[kind] / total:.0f}%",
                      f"{timer.seconds[kind] / max(1, report.accepted):.1f}")
    console = Console(width=150)
    console.print(table)
    console.print(f"wall {wall:.1f} s, {wall / max(1, report.accepted):.1f} s per kept item; removed: "
                  f"{dict(report.rejected)}; mean option-order agreement {summary.get('order_agreement')}")
    console.print(f"machine: {machine()}; model: {base.name}; concurrency {args.concurrency}, "
                  f"permutations {args.permutations}, min agreement {args.min_agreement}, T={args.temperature}, "
                  f"option tries {guided_items.OPTION_TRIES}")


if __name__ == "__main__":
    main()
