"""Start and stop a FastChat stack (controller, one or more model workers, OpenAI API server).

Two worker engines serve the same protocol behind the same controller and API server
(their command lines: :mod:`serving.workers`):

* ``batched`` (default): our continuous-batching worker (``serving.batched_worker``), which
  decodes concurrent requests for the base model and every LoRA adapter in shared batches,
  in bf16 where the CPU supports it;
* ``stock``: FastChat's own ``model_worker``, or with ``adapters`` its ``multi_model_worker``
  serving every adapter and the base model on one copy of the base weights
  (``serving.adapters``), one request at a time.

``workers=N`` starts N workers behind the one controller (one per GPU in turn on ``cuda``, an
equal share of the cores each on the CPU); FastChat's controller spreads requests over them,
and the API server (``serving.api_main``) drops a worker that stops answering, so requests go
to the others. More workers, on other hosts too, can join with ``autoact worker --controller URL``.

Process handling (logs in ``log_dir``, process groups, SIGTERM then SIGKILL) is
:class:`serving.processes.ServedProcesses`'. The controller and the workers listen on free
loopback ports (the controller elsewhere only when asked); the API server listens on the
requested address. :func:`serving_stack` picks this stack or vLLM's server by engine.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from serving.adapters import check_adapters
from serving.model_store import ResolvedModel
from serving.processes import (
    LOOPBACK,
    ServedProcesses,
    child_env,
    free_port,
    is_loopback,
    log_tail,
    port_in_use,
)
from serving.workers import ENGINES, WorkerSettings, model_arguments, place_workers, worker_command

__all__ = ["ENGINES", "FastChatStack", "LOOPBACK", "child_env", "free_port", "is_loopback", "log_tail", "port_in_use",
           "serving_stack", "worker_name"]

SERVING_ENGINES = (*ENGINES, "vllm")  # `--engine` choices: FastChat's stack with either worker, or vLLM's server


class FastChatStack(ServedProcesses):
    """A running FastChat controller + worker(s) + OpenAI-compatible API server for one model.

    Use as a context manager, or call :meth:`start` and :meth:`stop` (idempotent).
    A host other than loopback requires ``api_key``.
    """

    kind = "FastChat"

    def __init__(
        self,
        model: ResolvedModel,
        host: str = LOOPBACK,
        port: int = 8000,
        api_key: str | None = None,
        log_dir: Path | None = None,
        startup_timeout: float = 300,
        adapters: Mapping[str, Path] | None = None,
        engine: str = "batched",
        dtype: str = "auto",
        max_batch_size: int = 32,
        device: str = "auto",
        workers: int = 1,
        controller_host: str = LOOPBACK,
        controller_port: int = 0,
    ) -> None:
        super().__init__(model, host, port, api_key, log_dir, startup_timeout, adapters)
        from core.hardware import cpu_threads, gpu_count, resolve_device

        self.settings = WorkerSettings(engine, resolve_device(device), dtype, max_batch_size)
        self._gpus = gpu_count() if self.settings.device != "cpu" else 0
        self.places = place_workers(self.settings.device, workers, self._gpus, cpu_threads())
        if self.adapters:
            check_adapters(self.adapters, model)
        self._controller_url = ""
        self.controller_host, self.controller_port = controller_host, controller_port  # 0: a free port
        self._worker_urls: list[str] = []

    @property
    def controller_url(self) -> str:
        """URL of the FastChat controller as this host reaches it (empty before :meth:`start`)."""
        return self._controller_url

    @property
    def controller_address(self) -> str:
        """URL other hosts' workers give ``autoact worker --controller`` (this host's name when the
        controller listens on every address; its loopback URL otherwise)."""
        host = self.controller_host
        if host in ("0.0.0.0", "::", "") and self._controller_url:
            return f"http://{socket.getfqdn()}:{self._controller_url.rsplit(':', 1)[1]}"
        return self._controller_url

    @property
    def worker_url(self) -> str:
        """URL of the (first) model worker (loopback; empty before :meth:`start`)."""
        return self._worker_urls[0] if self._worker_urls else ""

    @property
    def worker_urls(self) -> list[str]:
        """URLs of every model worker this stack started, in order (loopback)."""
        return list(self._worker_urls)

    @property
    def devices(self) -> list[str]:
        return [p.device for p in self.places]

    def describe(self) -> str:
        return (f"{len(self.places)} {self.settings.engine} worker(s) on {', '.join(self.devices)}; controller "
                f"{self.controller_address}; logs in {self.log_dir}")

    # -- internals ---------------------------------------------------------------------
    def _start_processes(self, deadline: float) -> None:
        host = self.controller_host
        port = self.controller_port or free_port(LOOPBACK if is_loopback(host) else "0.0.0.0")
        reach = LOOPBACK if host in ("0.0.0.0", "::", "") else host
        controller_url = self._controller_url = f"http://{f'[{reach}]' if ':' in reach else reach}:{port}"
        self._worker_urls = []
        self._spawn(
            "controller",
            ["-m", "fastchat.serve.controller", "--host", host, "--port", str(port)],
            grace_s=1.0,  # its heartbeat thread is not a daemon: it never exits on SIGTERM alone
        )
        self._wait("controller to answer", deadline,
                   lambda c: c.post(f"{controller_url}/list_models").status_code == 200)
        assert self._log_dir is not None
        models = model_arguments(self.model, self.adapters, self.settings.engine, self._log_dir / "adapters")
        for i, place in enumerate(self.places):
            port = free_port()
            url = f"http://{LOOPBACK}:{port}"
            args, env = worker_command(self.model, self.adapters, self.settings, place, host=LOOPBACK, port=port,
                                       worker_address=url, controller_url=controller_url,
                                       adapter_dir=self._log_dir / "adapters", gpus=self._gpus, models=models)
            self._worker_urls.append(url)
            self._spawn(worker_name(i), args, env=env)
        api_args = ["-m", "serving.api_main", "--host", self.host,
                    "--port", str(self.port), "--controller-address", controller_url]
        if self._api_key:
            api_args += ["--api-keys", self._api_key]
        self._spawn("api", api_args)
        self._wait(f"models {', '.join(self.model_names)} to appear in {self.base_url}/models", deadline,
                   self._model_listed)
        if len(self.places) > 1:
            self._wait(f"all {len(self.places)} workers to register", deadline, self._workers_registered)
        self._wait("a first completion", deadline, self._completion_works)

    def _workers_registered(self, client: httpx.Client) -> bool:
        """Every started worker answers the controller's status (the sum of their speeds is theirs)."""
        response = client.post(f"{self.controller_url}/worker_get_status")
        return response.status_code == 200 and int(response.json().get("speed", 0)) >= len(self.places)

    def _log_of(self) -> Any:
        """The last worker's log explains a start that timed out."""
        return next((p for p in reversed(self._procs) if p.name.startswith("worker")), None)


def worker_name(index: int) -> str:
    """The process (and log file) name of a stack's worker: ``worker``, then ``worker-2``, ``worker-3`` …"""
    return "worker" if index == 0 else f"worker-{index + 1}"


def serving_stack(model: ResolvedModel, *, engine: str = "batched", **options: Any) -> ServedProcesses:
    """The processes serving `model` with `engine`: FastChat's stack (``batched``, ``stock``) or vLLM's
    server (``vllm``, :class:`serving.vllm_server.VllmServer`), with the keywords either takes."""
    if engine == "vllm":
        from serving.vllm_server import VllmServer

        return VllmServer(model, **options)
    return FastChatStack(model, engine=engine, **options)
