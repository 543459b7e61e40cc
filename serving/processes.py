"""Processes started in their own groups behind one OpenAI-compatible server, and stopped together.

:class:`ServedProcesses` holds what every way of serving shares: the checked address and API
key, the log directory (each process logs to ``NAME.log`` in it and runs inside it), the start
within a deadline (every process alive, the model names listed, a first completion answered),
and the stop (SIGTERM to each process group, then SIGKILL). :class:`serving.launcher.FastChatStack`
(FastChat's controller, workers and API server) and :class:`serving.vllm_server.VllmServer`
(vLLM's own server) say which processes to start.

Every process runs with this interpreter in its own process group, and dies with the thread
that started it (Linux).
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

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["LOOPBACK", "ServedProcesses", "child_env", "free_port", "is_loopback", "log_tail", "port_in_use"]

LOOPBACK = "127.0.0.1"
_REPO_ROOT = Path(__file__).resolve().parents[1]  # makes ``-m serving.worker_main`` importable
_POLL_S = 0.5
#: seconds between a worker's heart-beats, and after how many silent seconds the controller drops it
#: (FastChat reads both variables; the batched worker reads the first too). FastChat's defaults are 45 and
#: 90; the processes started here use shorter ones, so a worker that dies is dropped within a minute.
HEART_BEAT_ENV = {"FASTCHAT_WORKER_HEART_BEAT_INTERVAL": "10", "FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION": "30"}


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


class ServedProcesses:
    """Processes that serve one model (and its adapters) at ``base_url``; subclasses start them.

    Use as a context manager, or call :meth:`start` and :meth:`stop` (idempotent).
    A host other than loopback requires ``api_key``.
    """

    kind = "server"  # what the processes are called in messages

    def __init__(self, model: Any, host: str = LOOPBACK, port: int = 8000, api_key: str | None = None,
                 log_dir: Path | None = None, startup_timeout: float = 300,
                 adapters: Mapping[str, Path] | None = None) -> None:
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
        self.adapters = dict(adapters or {})
        self._procs: list[_Proc] = []
        self._atexit_registered = False

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
        """Every name served: the base model's, then one per adapter."""
        return [self.model.name, *self.adapters]

    @property
    def api_key(self) -> str | None:
        return self._api_key

    @property
    def log_dir(self) -> Path | None:
        """Where the process logs go (created by :meth:`start` when not given)."""
        return self._log_dir

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the started processes, by name (FastChat's: controller, worker, worker-2 …, api)."""
        return {p.name: p.popen.pid for p in self._procs}

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.popen.poll() is None for p in self._procs)

    @property
    def devices(self) -> list[str]:
        """The device each serving process runs on (what run records and messages state)."""
        return []

    def describe(self) -> str:
        """One line on how it serves, for messages."""
        return f"{self.kind} on {', '.join(self.devices) or 'its default device'}; logs in {self.log_dir}"

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
        """Start the processes and wait until a completion request succeeds."""
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
        """Stop every process group (SIGTERM, then SIGKILL), last started first; safe to call repeatedly."""
        procs, self._procs = self._procs, []
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False
        for proc in reversed(procs):
            _terminate_group(proc)
            proc.log_file.close()

    def check_alive(self) -> None:
        """Raise :class:`ServeError` (with its log tail) if a process has exited."""
        for proc in self._procs:
            code = proc.popen.poll()
            if code is not None:
                raise ServeError(
                    f"{self.kind} {proc.name} exited with code {code}; log {proc.log_path}:\n"
                    f"{log_tail(proc.log_path)}"
                )

    # -- for subclasses ----------------------------------------------------------------
    def _start_processes(self, deadline: float) -> None:
        raise NotImplementedError

    def _log_of(self) -> _Proc | None:
        """The process whose log tail explains a start that timed out (default: the last started)."""
        return self._procs[-1] if self._procs else None

    def _spawn(self, name: str, args: list[str], grace_s: float = 5.0, env: Mapping[str, str] | None = None) -> None:
        assert self._log_dir is not None
        log_path = self._log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        env = child_env(env)
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
            raise ServeError(f"cannot start {self.kind} {name}: {err}") from err
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
                    culprit = self._log_of()
                    tail = f"\n{culprit.name} log {culprit.log_path}:\n{log_tail(culprit.log_path)}" if culprit else ""
                    raise ServeError(
                        f"{self.kind} not ready after {self.startup_timeout:.0f} s "
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


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process started here: this one's, with this repository importable,
    unbuffered output, no FastChat log files of its own, the short heart-beats of
    :data:`HEART_BEAT_ENV`, and `extra`."""
    env = {**os.environ, **HEART_BEAT_ENV, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["LOGDIR"] = ""  # FastChat's own log files would duplicate ours (and land in cwd)
    return env


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
