"""The command line of one model worker, and where each of several workers runs.

A worker is one process serving the base model and its adapters to a FastChat controller:
our batched engine (``serving.batched_worker``) or FastChat's own ``model_worker`` /
``multi_model_worker`` (through ``serving.worker_main``). :func:`worker_command` builds its
arguments and environment; :class:`serving.launcher.FastChatStack` starts one or several of
them behind its controller, and ``autoact worker`` starts one more for a controller that is
already running, on this host or another.

:func:`place_workers` spreads several workers over the devices: one per GPU in turn when the
device is ``cuda``, and over the CPU cores (each worker its share of the torch threads) on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from serving.adapters import check_adapters, prepare_adapters
from serving.model_store import ResolvedModel

__all__ = ["ENGINES", "WorkerPlace", "WorkerSettings", "model_arguments", "place_workers", "worker_command"]

ENGINES = ("batched", "stock")


@dataclass(frozen=True)
class WorkerSettings:
    """How every worker of a stack serves: the engine, the device (resolved or ``auto``), the batch."""

    engine: str = "batched"
    device: str = "auto"
    dtype: str = "auto"
    max_batch_size: int = 32

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.max_batch_size < 1:
            raise ConfigError(f"--max-batch-size {self.max_batch_size}: must be at least 1")


@dataclass(frozen=True)
class WorkerPlace:
    """Where one worker runs: its torch device and, on the CPU, its torch threads (None: all cores)."""

    device: str
    threads: int | None = None


def place_workers(device: str, workers: int, gpus: int, cores: int) -> list[WorkerPlace]:
    """Places for `workers` workers on a resolved `device` (``cpu``, ``cuda``, ``cuda:N``).

    ``cuda`` with several workers gives worker i GPU ``i mod gpus``; one worker on ``cuda`` keeps
    every GPU (FastChat's stock worker splits a model over them). On the CPU each of several
    workers gets an equal share of the cores as its torch threads, so they do not fight over them.
    """
    if workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    if device == "cpu":
        threads = max(1, cores // workers) if workers > 1 else None
        return [WorkerPlace("cpu", threads) for _ in range(workers)]
    if device == "cuda" and workers > 1:
        if gpus < 1:
            raise ConfigError("--device cuda: torch sees no CUDA GPU here")
        return [WorkerPlace(f"cuda:{i % gpus}") for i in range(workers)]
    return [WorkerPlace(device) for _ in range(workers)]


def _stock_device_args(device: str, gpus: int) -> list[str]:
    """FastChat's worker flags for a resolved device: ``--device cuda --num-gpus N`` or one GPU by index."""
    if device == "cpu":
        return ["--device=cpu"]
    _, _, index = device.partition(":")
    if index:
        return ["--device=cuda", f"--gpus={index}", "--num-gpus=1"]
    return ["--device=cuda", f"--num-gpus={max(1, gpus)}"]


def model_arguments(model: ResolvedModel, adapters: Mapping[str, Path], engine: str,
                    adapter_dir: Path) -> list[str]:
    """The worker arguments naming what it serves: the base model and each adapter.

    FastChat's stock multi-model worker needs copies of the adapters, written under `adapter_dir`
    (:func:`serving.adapters.prepare_adapters`); the batched engine reads the adapters in place.
    A stack of several workers computes this once and hands it to each :func:`worker_command`.
    """
    if engine == "batched":
        checked = check_adapters(adapters, model) if adapters else {}
        return ["--model-path", str(model.path), "--model-name", model.name,
                *(f"--adapter={name}={path}" for name, (path, _) in checked.items())]
    if not adapters:
        return ["--model-path", str(model.path), "--model-names", model.name]
    args: list[str] = []
    for name, path in prepare_adapters(adapters, model, adapter_dir):
        args += ["--model-path", str(path), "--model-names", name]
    return args


def worker_command(model: ResolvedModel, adapters: Mapping[str, Path], settings: WorkerSettings, place: WorkerPlace,
                   *, host: str, port: int, worker_address: str, controller_url: str, adapter_dir: Path,
                   gpus: int = 0, models: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The interpreter arguments (after ``python``) and extra environment of one worker.

    `models` are the arguments :func:`model_arguments` gives for `model`, `adapters` and
    `adapter_dir`; they are computed here when not given.
    """
    if models is None:
        models = model_arguments(model, adapters, settings.engine, adapter_dir)
    common = ["--host", host, "--port", str(port), "--worker-address", worker_address,
              "--controller-address", controller_url, "--conv-template", model.conv_template]
    if settings.engine == "batched":
        args = ["-m", "serving.batched_worker", *common, *models, "--dtype", settings.dtype,
                "--max-batch-size", str(settings.max_batch_size), "--device", place.device]
        if place.threads:
            args += ["--threads", str(place.threads)]
        return args, {}
    device_args = _stock_device_args(place.device, gpus)
    env = {"OMP_NUM_THREADS": str(place.threads)} if place.threads else {}
    if adapters:
        # one request at a time: a streamed request switches the shared model's adapter when it starts,
        # so two interleaved streams of different adapters would mix their weights
        return (["-m", "serving.worker_main", "fastchat.serve.multi_model_worker", *common, *device_args, *models,
                 "--limit-worker-concurrency", "1"], {**env, "PEFT_SHARE_BASE_WEIGHTS": "true"})
    return (["-m", "serving.worker_main", "fastchat.serve.model_worker", *common, *device_args, *models], env)
