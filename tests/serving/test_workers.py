"""Worker command lines and placement (serving/workers.py), the heart-beat setting, and the API
server's drop of an unreachable worker (serving/api_main.py); no process is started here."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path

import aiohttp
import pytest

from core.errors import ConfigError
from serving.api_main import TRIES, patch_worker_failover
from serving.batched_worker import heart_beat_seconds
from serving.model_store import ResolvedModel
from serving.worker_main import CHATML_TEMPLATE
from serving.workers import WorkerPlace, WorkerSettings, place_workers, worker_command

MODEL = ResolvedModel(Path("/models/base"), "base", CHATML_TEMPLATE)
WHERE = {"host": "127.0.0.1", "port": 4001, "worker_address": "http://127.0.0.1:4001",
         "controller_url": "http://127.0.0.1:4000"}


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@pytest.mark.parametrize("device, workers, gpus, cores, expected", [
    ("cpu", 1, 0, 16, [WorkerPlace("cpu", None)]),                        # one worker: every core
    ("cpu", 3, 0, 16, [WorkerPlace("cpu", 5)] * 3),                       # the cores shared out
    ("cpu", 4, 0, 2, [WorkerPlace("cpu", 1)] * 4),                        # never under one thread
    ("cuda", 1, 4, 16, [WorkerPlace("cuda")]),                            # one worker keeps every GPU
    ("cuda", 3, 2, 16, [WorkerPlace("cuda:0"), WorkerPlace("cuda:1"), WorkerPlace("cuda:0")]),  # GPUs in turn
    ("cuda:1", 2, 2, 16, [WorkerPlace("cuda:1")] * 2),                    # a named GPU is shared
])
def test_workers_are_placed_one_per_gpu_in_turn_or_over_the_cores(device, workers, gpus, cores, expected):
    assert place_workers(device, workers, gpus, cores) == expected


def test_placement_rejects_no_workers_and_cuda_without_gpus():
    with pytest.raises(ConfigError, match="--workers 0"):
        place_workers("cpu", 0, 0, 2)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        place_workers("cuda", 2, 0, 2)


def test_settings_reject_an_unknown_engine_and_an_empty_batch():
    with pytest.raises(ConfigError, match="unknown engine 'vllm-ish'"):
        WorkerSettings(engine="vllm-ish")
    with pytest.raises(ConfigError, match="--max-batch-size 0"):
        WorkerSettings(max_batch_size=0)


def test_the_batched_worker_gets_its_device_and_thread_share(tmp_path):
    args, env = worker_command(MODEL, {}, WorkerSettings(dtype="float32", device="cuda:1"), WorkerPlace("cuda:1"),
                               adapter_dir=tmp_path, **WHERE)
    assert args[:2] == ["-m", "serving.batched_worker"] and env == {}
    assert _flag(args, "--device") == "cuda:1" and _flag(args, "--dtype") == "float32"
    assert _flag(args, "--model-name") == "base" and _flag(args, "--controller-address") == WHERE["controller_url"]
    assert "--threads" not in args
    args, _ = worker_command(MODEL, {}, WorkerSettings(device="cpu"), WorkerPlace("cpu", 3), adapter_dir=tmp_path,
                             **WHERE)
    assert _flag(args, "--threads") == "3" and _flag(args, "--device") == "cpu"


@pytest.mark.parametrize("device, gpus, expected", [
    ("cpu", 0, ["--device=cpu"]),
    ("cuda", 4, ["--device=cuda", "--num-gpus=4"]),          # one stock worker spreads the model over the GPUs
    ("cuda:2", 4, ["--device=cuda", "--gpus=2", "--num-gpus=1"]),
])
def test_the_stock_worker_gets_fastchats_device_flags(device, gpus, expected, tmp_path):
    args, env = worker_command(MODEL, {}, WorkerSettings(engine="stock", device=device), WorkerPlace(device),
                               adapter_dir=tmp_path, gpus=gpus, **WHERE)
    assert args[:3] == ["-m", "serving.worker_main", "fastchat.serve.model_worker"]
    assert [a for a in args if a.startswith(("--device", "--gpus", "--num-gpus"))] == expected
    assert env == {}
    _, env = worker_command(MODEL, {}, WorkerSettings(engine="stock", device="cpu"), WorkerPlace("cpu", 2),
                            adapter_dir=tmp_path, **WHERE)
    assert env == {"OMP_NUM_THREADS": "2"}


@pytest.mark.parametrize("value, expected", [(None, 45.0), ("10", 10.0), ("0", 1.0), ("soon", 45.0)])
def test_heart_beats_follow_fastchats_interval_variable(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("FASTCHAT_WORKER_HEART_BEAT_INTERVAL", raising=False)
    else:
        monkeypatch.setenv("FASTCHAT_WORKER_HEART_BEAT_INTERVAL", value)
    assert heart_beat_seconds() == expected


def _fake_api(fail: set[str], addresses: list[str]) -> tuple[types.SimpleNamespace, list[str]]:
    """A stand-in for FastChat's API server module: `fetch_remote` fails at the connection for the URLs
    starting with one of `fail`; the controller hands out `addresses` in turn."""
    calls: list[str] = []

    async def fetch_remote(url, pload=None, name=None):
        calls.append(url)
        if any(url.startswith(f) for f in fail):
            raise aiohttp.ClientConnectionError(f"cannot connect to {url}")
        if url.endswith("/get_worker_address"):
            return addresses.pop(0) if addresses else ""
        return f"answer of {url}"

    api = types.SimpleNamespace(fetch_remote=fetch_remote,
                                app_settings=types.SimpleNamespace(controller_address="http://ctl:1"))
    return api, calls


def test_a_call_to_a_dead_worker_goes_to_another_after_the_controller_checks_its_workers():
    api, calls = _fake_api({"http://dead:2"}, ["http://live:3"] * 3)
    patch_worker_failover(api)
    patch_worker_failover(api)  # patching twice wraps once

    async def run():
        return await asyncio.gather(*(api.fetch_remote("http://dead:2/worker_generate", {"model": "m"}, "")
                                      for _ in range(3)))

    assert asyncio.run(run()) == ["answer of http://live:3/worker_generate"] * 3
    assert calls.count("http://ctl:1/refresh_all_workers") == 1  # failures close together share one check
    assert calls.count("http://dead:2/worker_generate") == 3 and calls.count("http://ctl:1/get_worker_address") == 3


def test_a_call_fails_when_no_worker_is_left_or_every_try_fails():
    api, calls = _fake_api({"http://dead:2"}, [])
    patch_worker_failover(api)
    with pytest.raises(aiohttp.ClientConnectionError):  # the controller has no other worker
        asyncio.run(api.fetch_remote("http://dead:2/count_token", {"model": "m", "prompt": "x"}))
    api, calls = _fake_api({"http://dead:2"}, ["http://dead:2"] * 5)
    patch_worker_failover(api)
    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(api.fetch_remote("http://dead:2/worker_generate", {"model": "m"}, ""))
    assert calls.count("http://dead:2/worker_generate") == TRIES


def test_a_controller_that_cannot_be_reached_is_not_asked_to_refresh():
    api, calls = _fake_api({"http://ctl:1"}, [])
    patch_worker_failover(api)
    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(api.fetch_remote("http://ctl:1/get_worker_address", {"model": "m"}, "address"))
    assert calls == ["http://ctl:1/get_worker_address"]


@pytest.mark.parametrize("argv, message", [
    (["worker", "--controller", "http://127.0.0.1:9"],
     "--controller http://127.0.0.1:9: no FastChat controller answers"),
    (["serve", "--workers", "0"], "--workers 0: must be at least 1"),
    (["serve", "--device", "tpu"], "--device 'tpu': use auto, cpu, cuda or cuda:N"),
])
def test_serving_commands_name_what_is_wrong_in_one_line(argv, message, capsys):
    from autoact.cli import main
    assert main(argv) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert message in out


def test_cuda_where_there_is_none_is_refused_before_anything_starts(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from autoact.cli import main
    assert main(["serve", "--device", "cuda"]) == 2
    assert "torch sees no CUDA GPU here" in " ".join(capsys.readouterr().out.split())


def test_a_stack_of_stock_workers_copies_the_adapters_once(monkeypatch, tmp_path):
    """Two stock workers serving two adapters: the copies FastChat needs are made once, and both
    workers' command lines name the same copies."""
    from serving import launcher, workers

    copies: list[Path] = []

    def prepare(adapters, model, work_dir):
        copies.append(work_dir)
        return [(model.name, work_dir / "_base"), *((name, work_dir / name) for name in adapters)]

    monkeypatch.setattr(workers, "prepare_adapters", prepare)
    monkeypatch.setattr(launcher, "check_adapters", lambda adapters, model: {})
    stack = launcher.FastChatStack(MODEL, adapters={"plan": tmp_path / "plan", "tool": tmp_path / "tool"},
                                   engine="stock", device="cpu", workers=2, log_dir=tmp_path / "logs")
    spawned: dict[str, list[str]] = {}
    monkeypatch.setattr(stack, "_spawn", lambda name, args, grace_s=5.0, env=None: spawned.update({name: args}))
    monkeypatch.setattr(stack, "_wait", lambda what, deadline, ready: None)
    stack._log_dir = tmp_path / "logs"
    stack._start_processes(deadline=0.0)
    assert copies == [tmp_path / "logs" / "adapters"]
    paths = {name: [a for a, b in zip(args, args[1:]) if b == "--model-names"] for name, args in spawned.items()
             if name.startswith("worker")}
    assert list(paths) == ["worker", "worker-2"] and paths["worker"] == paths["worker-2"]
    assert len(paths["worker"]) == 3  # the base model's identity adapter, then plan and tool
