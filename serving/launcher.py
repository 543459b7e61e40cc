"""Start and stop a FastChat stack (controller, one model worker, OpenAI API server).

Two worker engines serve the same protocol behind the same controller and API server:

* ``batched`` (default): our continuous-batching worker (``serving.batched_worker``), which
  decodes concurrent requests for the base model and every LoRA adapter in shared batches,
  in bf16 where the CPU supports it;
* ``stock``: FastChat's own ``model_worker``, or with ``adapters`` its ``multi_model_worker``
  serving every adapter and the base model on one copy of the base weights
  (``serving.adapters``), one request at a time.

Every process runs with this interpreter in its own process group, logs to a file in
``log_dir``, and is stopped with SIGTERM, then SIGKILL. The controller and the worker
listen on free loopback ports; only the API server listens on the requested address.
"""

from __future__ import annotations

import atexit
import ctypes
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import httpx

from core.errors import ConfigError, ServeError
from serving.adapters import check_adapters, prepare_adapters
from serving.model_store import ResolvedModel

if TYPE_CHECKING:
    from typing_extensions import Self

LOOPBACK = "127.0.0.1"
_REPO_ROOT = Path(__file__).resolve().parents[1]  # makes ``-m serving.worker_main`` importable
_POLL_S = 0.5
ENGINES = ("batched", "stock")


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    grace_s: float  # how long SIGTERM may take before SIGKILL


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True if a server could not bind ``host:port`` (probed the way uvicorn binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            return True
    return False


def log_tail(path: Path, max_chars: int = 3000) -> str:
    """The last ``max_chars`` characters of a log file (empty if unreadable)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_chars))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class FastChatStack:
    """A running FastChat controller + worker + OpenAI-compatible API server for one model.

    Use as a context manager, or call :meth:`start` and :meth:`stop` (idempotent).
    A host other than loopback requires ``api_key``.
    """

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
    ) -> None:
        if api_key is not None and (not api_key.strip() or "," in api_key):
            raise ConfigError("the API key must be non-empty and contain no comma")
        if api_key is None and not is_loopback(host):
            raise ConfigError(
                f"serving on {host} (not loopback) needs an API key (--api-key): "
                "otherwise anyone on the network can use the endpoint"
            )
        if not 0 < port < 65536:
            raise ConfigError(f"invalid port {port}")
        self.model = model
        self.host = host
        self.port = port
        self._api_key = api_key
        self._log_dir = Path(log_dir).resolve() if log_dir is not None else None  # children run inside it
        self.startup_timeout = startup_timeout
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
        self.engine = engine
        self.dtype = dtype
        self.max_batch_size = max_batch_size
        self.adapters = dict(adapters or {})
        if self.adapters:
            check_adapters(self.adapters, model)
        self._procs: list[_Proc] = []
        self._atexit_registered = False
        self._controller_url = ""
        self._worker_url = ""

    # -- public properties -------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The OpenAI base URL clients use, e.g. ``http://127.0.0.1:8000/v1``."""
        host = self.host
        if host in ("0.0.0.0", ""):
            host = LOOPBACK
        elif host == "::":
            host = "::1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def model_names(self) -> list[str]:
        """Every name the stack serves: the base model's, then one per adapter."""
        return [self.model.name, *self.adapters]

    @property
    def api_key(self) -> str | None:
        return self._api_key

    @property
    def log_dir(self) -> Path | None:
        """Where the process logs go (created by :meth:`start` when not given)."""
        return self._log_dir

    @property
    def controller_url(self) -> str:
        """URL of the FastChat controller (loopback; empty before :meth:`start`)."""
        return self._controller_url

    @property
    def worker_url(self) -> str:
        """URL of the model worker (loopback; empty before :meth:`start`)."""
        return self._worker_url

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the started processes, by name (controller, worker, api)."""
        return {p.name: p.popen.pid for p in self._procs}

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.popen.poll() is None for p in self._procs)

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the three processes and wait until a completion request succeeds."""
        if self._procs:
            return
        if port_in_use(self.host, self.port):
            raise ServeError(f"cannot serve on {self.host}:{self.port}: the port is already in use")
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="autoact-serve-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        deadline = time.monotonic() + self.startup_timeout
        try:
            self._start_processes(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process group (SIGTERM, then SIGKILL); safe to call repeatedly."""
        procs, self._procs = self._procs, []
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False
        for proc in reversed(procs):  # api, worker, controller
            _terminate_group(proc)
            proc.log_file.close()

    def check_alive(self) -> None:
        """Raise :class:`ServeError` (with its log tail) if a process has exited."""
        for proc in self._procs:
            code = proc.popen.poll()
            if code is not None:
                raise ServeError(
                    f"FastChat {proc.name} exited with code {code}; log {proc.log_path}:\n"
                    f"{log_tail(proc.log_path)}"
                )

    # -- internals ---------------------------------------------------------------------
    def _start_processes(self, deadline: float) -> None:
        controller_url = self._controller_url = f"http://{LOOPBACK}:{free_port()}"
        worker_port = free_port()
        self._worker_url = f"http://{LOOPBACK}:{worker_port}"
        self._spawn(
            "controller",
            ["-m", "fastchat.serve.controller", "--host", LOOPBACK,
             "--port", controller_url.rsplit(":", 1)[1]],
            grace_s=1.0,  # its heartbeat thread is not a daemon: it never exits on SIGTERM alone
        )
        self._wait("controller to answer", deadline,
                   lambda c: c.post(f"{controller_url}/list_models").status_code == 200)
        worker_args = ["--host", LOOPBACK, "--port", str(worker_port), "--worker-address", self._worker_url,
                       "--controller-address", controller_url, "--conv-template", self.model.conv_template]
        if self.engine == "batched":
            checked = check_adapters(self.adapters, self.model) if self.adapters else {}
            self._spawn("worker", ["-m", "serving.batched_worker", *worker_args,
                                   "--model-path", str(self.model.path), "--model-name", self.model.name,
                                   "--dtype", self.dtype, "--max-batch-size", str(self.max_batch_size),
                                   *(f"--adapter={name}={path}" for name, (path, _) in checked.items())])
        elif self.adapters:
            worker_args.append("--device=cpu")
            assert self._log_dir is not None
            served = prepare_adapters(self.adapters, self.model, self._log_dir / "adapters")
            for name, path in served:
                worker_args += ["--model-path", str(path), "--model-names", name]
            # one request at a time: a streamed request switches the shared model's adapter when it
            # starts, so two interleaved streams of different adapters would mix their weights
            self._spawn("worker", ["-m", "serving.worker_main", "fastchat.serve.multi_model_worker",
                                   *worker_args, "--limit-worker-concurrency", "1"],
                        env={"PEFT_SHARE_BASE_WEIGHTS": "true"})
        else:
            worker_args.append("--device=cpu")
            self._spawn("worker", ["-m", "serving.worker_main", "fastchat.serve.model_worker", *worker_args,
                                   "--model-path", str(self.model.path), "--model-names", self.model.name])
        api_args = ["-m", "fastchat.serve.openai_api_server", "--host", self.host,
                    "--port", str(self.port), "--controller-address", controller_url]
        if self._api_key:
            api_args += ["--api-keys", self._api_key]
        self._spawn("api", api_args)
        self._wait(f"models {', '.join(self.model_names)} to appear in {self.base_url}/models", deadline,
                   self._model_listed)
        self._wait("a first completion", deadline, self._completion_works)

    def _spawn(self, name: str, args: list[str], grace_s: float = 5.0, env: Mapping[str, str] | None = None) -> None:
        assert self._log_dir is not None
        log_path = self._log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        env = {**os.environ, **(env or {})}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        env["LOGDIR"] = ""  # FastChat's own log files would duplicate ours (and land in cwd)
        try:
            popen = subprocess.Popen(
                [sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self._log_dir,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - a lone prctl call, which takes no locks
            )
        except OSError as err:
            log_file.close()
            raise ServeError(f"cannot start FastChat {name}: {err}") from err
        self._procs.append(_Proc(name, popen, log_path, log_file, grace_s))

    def _wait(self, what: str, deadline: float, ready: Callable[[httpx.Client], bool]) -> None:
        """Poll ``ready(client)`` until it is true; fail if a process dies or time runs out."""
        with httpx.Client(timeout=30, headers=self._auth_headers(), trust_env=False) as client:
            while True:
                self.check_alive()
                try:
                    if ready(client):
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    worker = next((p for p in self._procs if p.name == "worker"), None)
                    tail = f"\nworker log {worker.log_path}:\n{log_tail(worker.log_path)}" if worker else ""
                    raise ServeError(
                        f"FastChat stack not ready after {self.startup_timeout:.0f} s "
                        f"(waiting for {what}){tail}"
                    )
                time.sleep(_POLL_S)

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _model_listed(self, client: httpx.Client) -> bool:
        response = client.get(f"{self.base_url}/models")
        if response.status_code != 200:
            return False
        listed = {m.get("id") for m in response.json().get("data", [])}
        return set(self.model_names) <= listed

    def _completion_works(self, client: httpx.Client) -> bool:
        response = client.post(
            f"{self.base_url}/completions",
            json={"model": self.model.name, "prompt": "Hello", "max_tokens": 1},
        )
        return response.status_code == 200 and bool(response.json().get("choices"))


def _terminate_group(proc: _Proc) -> None:
    """SIGTERM the process group, wait up to its grace period, then SIGKILL what is left."""
    pgid = proc.popen.pid  # start_new_session: the leader's pid is the group id
    _signal_group(pgid, signal.SIGTERM)
    try:
        proc.popen.wait(timeout=proc.grace_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(pgid, signal.SIGKILL)  # the leader or a forked helper may still be there
    proc.popen.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # looked up in the parent: the child should only call it


def _die_with_parent() -> None:
    """In the child (Linux): get SIGKILL when the thread that started it dies.

    This keeps a crashed or killed parent from leaving workers behind. Start stacks from a
    long-lived thread (normally the main thread): the signal follows the starting thread.
    """
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
