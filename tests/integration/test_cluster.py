"""A cluster on loopback: several workers behind one FastChat controller (serving.launcher, serving.cli).

Two workers of one stack both serve and answer as one worker does; a worker started by
`autoact worker --controller URL` joins a running stack; killing a worker in the middle of an
evaluation loses no row (the API server drops it and the client's retry goes to the other).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from serving.launcher import FastChatStack, free_port
from serving.model_store import resolve_model
from tests.support.builders import ROWS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROMPTS = ["The capital of France is", "Once upon a time", "Question: what is 2 + 2?\nAnswer:",
           "A list of fruits: apple,", "def add(a, b):", "The weather today"]


def _complete(url: str, prompt: str) -> str:
    body = {"model": "tiny-smol", "prompt": prompt, "max_tokens": 8, "temperature": 0.0}
    with httpx.Client(timeout=120, trust_env=False) as client:
        response = client.post(f"{url}/completions", json=body)
    response.raise_for_status()
    return response.json()["choices"][0]["text"]


def _served_requests(worker_url: str) -> int:
    """Prompts the batched worker at `worker_url` has prefilled: one per request it served."""
    with httpx.Client(timeout=30, trust_env=False) as client:
        return int(client.post(f"{worker_url}/engine_stats").json()["prefills"])


def _workers_speed(controller_url: str) -> int:
    with httpx.Client(timeout=30, trust_env=False) as client:
        return int(client.post(f"{controller_url}/worker_get_status").json().get("speed", 0))


@pytest.fixture(scope="module")
def two_workers(tiny_model_dir, tmp_path_factory):
    with FastChatStack(resolve_model(str(tiny_model_dir)), port=free_port(), log_dir=tmp_path_factory.mktemp("two"),
                       dtype="float32", workers=2, startup_timeout=240) as stack:
        yield stack


def test_two_workers_behind_one_controller_both_serve_and_answer_as_one_worker(two_workers, tiny_stack):
    assert len(two_workers.worker_urls) == 2 and set(two_workers.pids) == {"controller", "worker", "worker-2", "api"}
    assert [p.device for p in two_workers.places] == ["cpu", "cpu"]
    assert _workers_speed(two_workers.controller_url) == 2
    before = [_served_requests(w) for w in two_workers.worker_urls]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(24)]
    alone = [_complete(tiny_stack.base_url, p) for p in prompts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda p: _complete(two_workers.base_url, p), prompts))
    counts = [_served_requests(w) - b for w, b in zip(two_workers.worker_urls, before)]
    print(f"\ncluster: {len(prompts)} requests, per-worker requests {counts}, equal to one worker: {together == alone}")
    assert together == alone
    assert all(c > 0 for c in counts) and sum(counts) == len(prompts)


def _write_rows(path: Path, n: int) -> Path:
    rows = [{**ROWS[i % len(ROWS)], "id": f"r{i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _eval_args(data: Path, out: Path, base_url: str) -> list[str]:
    return [sys.executable, "-m", "autoact", "eval", "--task", "hotpotqa", "--data", str(data), "--out", str(out),
            "--base-url", base_url, "--max-steps", "3", "--no-progress", "--concurrency", "4"]


def _predictions(out: Path) -> dict[str, tuple]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {r["id"]: (r["prediction"], r["error"], r["steps"]) for r in rows}


def test_a_joined_worker_serves_and_killing_it_mid_eval_loses_no_row(tiny_model_dir, tiny_stack, tmp_path):
    data = _write_rows(tmp_path / "rows.jsonl", 16)
    alone = subprocess.run(_eval_args(data, tmp_path / "alone", tiny_stack.base_url), capture_output=True, text=True,
                           cwd=REPO, timeout=600)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    with FastChatStack(resolve_model(str(tiny_model_dir)), port=free_port(), log_dir=tmp_path / "logs",
                       dtype="float32", startup_timeout=240) as stack:
        port = free_port()
        joined = subprocess.Popen(
            [sys.executable, "-m", "autoact", "worker", "--controller", stack.controller_url, "--model",
             str(tiny_model_dir), "--dtype", "float32", "--device", "cpu", "--port", str(port)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=(tmp_path / "joined.log").open("wb"), start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while _workers_speed(stack.controller_url) < 2:
                assert joined.poll() is None, (tmp_path / "joined.log").read_text()
                assert time.monotonic() < deadline, "the joined worker never registered"
                time.sleep(0.5)
            out = tmp_path / "cluster"
            run = subprocess.Popen(_eval_args(data, out, stack.base_url), cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
            results = out / "results.jsonl"
            while not results.is_file() or len(results.read_text().splitlines()) < 3:
                assert run.poll() is None, run.stdout.read() if run.stdout else ""
                time.sleep(0.2)
            served = _served_requests(f"http://127.0.0.1:{port}")
            os.killpg(joined.pid, signal.SIGKILL)  # the worker and its launcher, mid-evaluation
            rows_at_kill = len(results.read_text().splitlines())
            output, _ = run.communicate(timeout=600)
        finally:
            if joined.poll() is None:
                os.killpg(joined.pid, signal.SIGKILL)
            joined.wait()
        assert run.returncode == 0, output
        print(f"\ncluster eval: 16 rows, {rows_at_kill} written when the joined worker (which had served "
              f"{served} requests) was killed")
        assert served > 0 and rows_at_kill < 16
        got = _predictions(out)
        assert len(got) == 16 and all(error is None for _, error, _ in got.values())
        assert got == _predictions(tmp_path / "alone")  # the same answers as one worker alone
        assert _complete(stack.base_url, "Hello") == _complete(tiny_stack.base_url, "Hello")  # the stack still serves
