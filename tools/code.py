"""Code[python]: run a snippet in a sandboxed subprocess and return what it printed.

Layers, outermost first. Each one is used when the machine allows it; `Sandbox.launch()`
says which were available.

1. Namespaces through util-linux ``unshare``: a network namespace (only a downed loopback,
   so no connections at all, not even to 127.0.0.1), a PID namespace (its own /proc, other
   processes invisible, and the whole tree dies with its init) and a mount namespace in
   which the bootstrap remounts everything read-only and nosuid, hides /tmp, /var/tmp, /run
   and /dev/shm (their files and Unix sockets) behind empty tmpfs, and mounts a size-capped
   tmpfs as the scratch directory. If ``unshare`` is missing or refused (e.g. a container
   without CAP_SYS_ADMIN), the sandbox tries a network namespace alone, then none, and
   relies on the layers below.
2. Privileges: no_new_privs and an empty capability bounding set; when we are root, the child
   then switches to an unprivileged uid/gid (65534 by default) with no supplementary groups.
   Not root: with ``unshare`` the child is root of a fresh user namespace (our own uid
   outside) and drops every capability; without it, it keeps our uid.
3. rlimits: address space, CPU seconds, processes (threads count), file size, open files, no
   core files. RLIMIT_NPROC counts every process of the uid, so sandboxes running at once
   share that allowance.
4. ``python -I`` (isolated mode) with only PATH, LANG and HOME/TMPDIR (= scratch) in the
   environment: nothing of the parent's environment reaches the child.
5. An audit hook (``tools/sandbox_boot.py``) that denies writes outside scratch, reads outside
   scratch and the import path, sockets, new processes, signals, ctypes and gc walks. It is a
   tripwire for the obvious attempts that gives clear errors, not the boundary: layers 1-3
   still hold if it is bypassed.
6. The parent: a wall-clock limit after which the whole process group is killed, at most
   ``max_capture_bytes`` read from the pipes (past that the child is stopped), and the
   scratch directory deleted afterwards. The child's CPU time and peak memory (from
   ``wait4``, in the init or here) word how a SIGKILLed run ended.

Reading files outside scratch is refused by the hook except for the import path and a few
devices; below the hook, the dropped uid can read only world-readable files.

This module is longer than the project's ~500-line guide on purpose: the parent's half of the
sandbox (building the command, the limits, reading the pipes, the kill and the wording of how a
run ended) is one boundary that a reviewer should read in one place; the child's half is
`tools/sandbox_boot.py`.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.base import ToolContext, ToolSpec

MiB = 1 << 20
SETUP_FAILED = 125  # the bootstrap's exit status when it could not prepare the child
_BOOT_SOURCE = Path(__file__).with_name("sandbox_boot.py").read_text(encoding="utf-8")
_BOOT_STUB = "import sys; exec(compile(sys.argv[1], '<sandbox>', 'exec'))"
_ENV_PATH = "/usr/local/bin:/usr/bin:/bin"

CODE_SPEC = ToolSpec(
    name="Code",
    description="Runs a short Python program in a sandbox (no network, no files outside a "
                "scratch directory, a few seconds of time, 512 MB of memory) and returns what "
                "it prints. Use print() to show results.",
    usage="Code[python source], e.g. Code[print(sum(x * x for x in range(10)))]",
)


@dataclass(frozen=True)
class SandboxLimits:
    """Resource bounds for one run."""

    wall_seconds: float = 5.0
    cpu_seconds: int | None = None  # default: the wall limit rounded up, plus one
    memory_bytes: int = 512 * MiB  # RLIMIT_AS
    max_processes: int = 32  # RLIMIT_NPROC, per uid
    max_file_bytes: int = 16 * MiB  # RLIMIT_FSIZE
    max_open_files: int = 64  # RLIMIT_NOFILE
    scratch_bytes: int = 64 * MiB  # size of the tmpfs scratch, when there is a mount namespace
    max_capture_bytes: int = 1 * MiB  # stdout + stderr read from the child before stopping it
    max_output_chars: int = 2000  # observation length

    def rlimits(self) -> dict[str, tuple[int, int]]:
        cpu = self.cpu_seconds or math.ceil(self.wall_seconds) + 1
        return {
            "RLIMIT_AS": (self.memory_bytes, self.memory_bytes),
            "RLIMIT_CPU": (cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL a second later
            "RLIMIT_NPROC": (self.max_processes, self.max_processes),
            "RLIMIT_FSIZE": (self.max_file_bytes, self.max_file_bytes),
            "RLIMIT_NOFILE": (self.max_open_files, self.max_open_files),
            "RLIMIT_CORE": (0, 0),
        }


@dataclass(frozen=True)
class Launch:
    """How the child is started: a command prefix, the interpreter and what it isolates."""

    prefix: tuple[str, ...]
    python: str
    drop_to: tuple[int, int] | None  # (uid, gid) the child switches to, if any
    init: bool  # the bootstrap is PID 1 of new PID and mount namespaces
    description: str


@dataclass
class SandboxResult:
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    signal: int | None = None  # set when the child was killed by a signal we did not send
    timed_out: bool = False
    output_capped: bool = False
    seconds: float = 0.0
    isolation: str = ""
    notes: list[str] = field(default_factory=list)  # what the init process reported
    error: str | None = None  # the sandbox itself could not run
    cpu_seconds: float | None = None  # the child's user + system CPU time, when known
    peak_memory_bytes: int | None = None  # its ru_maxrss: its peak resident memory or more
    peak_memory_exact: bool = False  # False: that may be a peak carried over exec from us

    @property
    def ok(self) -> bool:
        return (self.error is None and self.exit_code == 0 and not self.timed_out
                and not self.output_capped)


_LAUNCHES: dict[tuple[object, ...], Launch | str] = {}
_LAUNCH_LOCK = threading.Lock()
_PROBE = "import decimal, json, os\nprint('sandbox-ok', os.getuid())\n"


class Sandbox:
    """Runs Python source under the layers described in the module docstring."""

    def __init__(self, limits: SandboxLimits | None = None, *, uid: int = 65534,
                 gid: int = 65534, python: str | None = None, namespaces: bool = True,
                 audit_hook: bool = True) -> None:
        self.limits = limits or SandboxLimits()
        self.uid, self.gid = uid, gid
        self.python = python
        self.namespaces = namespaces
        self.audit_hook = audit_hook

    # -- choosing how to launch ------------------------------------------------------------

    def launch(self) -> Launch:
        """The strongest launch that works here (probed once per process); raises RuntimeError."""
        key = (self.uid, self.gid, self.python, self.namespaces, os.geteuid())
        with _LAUNCH_LOCK:
            found = _LAUNCHES.get(key)
            if found is None:
                found = self._probe_launches()
                _LAUNCHES[key] = found
        if isinstance(found, str):
            raise RuntimeError(found)
        return found

    def _interpreters(self) -> list[str]:
        if self.python:
            return [self.python]
        names = [sys.executable, os.path.realpath(sys.executable),
                 getattr(sys, "_base_executable", ""), shutil.which("python3") or "",
                 "/usr/bin/python3", "/usr/local/bin/python3"]
        seen: list[str] = []
        for name in names:
            if name and name not in seen and os.path.isfile(name):
                seen.append(name)
        return seen

    def _candidates(self) -> list[Launch]:
        root = os.geteuid() == 0
        drop = (self.uid, self.gid) if root else None
        unshare = shutil.which("unshare") or next(
            (p for p in ("/usr/bin/unshare", "/bin/unshare") if os.path.exists(p)), None)
        shapes: list[tuple[tuple[str, ...], bool, str]] = []
        if self.namespaces and unshare:
            user = () if root else ("--map-root-user",)
            shapes.append(((unshare, *user, "--net", "--pid", "--mount", "--fork",
                            "--kill-child", "--mount-proc", "--"), True,
                           "net+pid+mount namespaces"))
            shapes.append(((unshare, *user, "--net", "--"), False, "net namespace only"))
        shapes.append(((), False, "no namespaces"))

        def who(prefix: tuple[str, ...]) -> str:
            if root:
                return f"uid {self.uid}"
            return "user namespace, no capabilities" if prefix else "own uid (not root)"

        return [Launch(prefix, python, drop, init, f"{what}; {who(prefix)}")
                for prefix, init, what in shapes for python in self._interpreters()]

    def _probe_launches(self) -> Launch | str:
        limits = SandboxLimits(wall_seconds=15.0)
        failures: list[str] = []
        for launch in self._candidates():
            result = self._execute(_PROBE, launch, limits)
            words = result.stdout.split()
            uid_ok = launch.drop_to is None or words[1:2] == [str(launch.drop_to[0])]
            if result.ok and words[:1] == ["sandbox-ok"] and uid_ok:
                return launch
            why = result.error or (result.stderr.strip().splitlines() or ["no output"])[-1]
            failures.append(f"{launch.description} with {launch.python}: {why}")
        return "no way to run Python sandboxed here: " + "; ".join(failures)

    # -- running ---------------------------------------------------------------------------

    def run(self, source: str) -> SandboxResult:
        """Run `source`; never raises (problems are reported in `error`)."""
        try:
            launch = self.launch()
        except RuntimeError as exc:
            return SandboxResult(error=str(exc))
        return self._execute(source, launch, self.limits)

    def _execute(self, source: str, launch: Launch, limits: SandboxLimits) -> SandboxResult:
        started = time.monotonic()
        result = SandboxResult(isolation=launch.description)
        base = ""
        try:
            base = tempfile.mkdtemp(prefix="autoact-code-", dir=_scratch_parent())
            os.chmod(base, 0o711)  # others may enter, not list: the scratch name stays private
            scratch = os.path.join(base, secrets.token_hex(8))
            os.mkdir(scratch, 0o700)
            if launch.drop_to:
                os.chown(scratch, *launch.drop_to)
            code_path = os.path.join(base, "main.py")
            with open(code_path, "w", encoding="utf-8") as fh:
                fh.write(source)
            os.chmod(code_path, 0o644)
            self._spawn_and_collect(launch, limits, scratch, code_path, result, started)
        except Exception as exc:  # noqa: BLE001 - the caller wants an observation, not a crash
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            if base:
                shutil.rmtree(base, ignore_errors=True)
        result.seconds = time.monotonic() - started
        return result

    def _spawn_and_collect(self, launch: Launch, limits: SandboxLimits, scratch: str,
                           code_path: str, result: SandboxResult, started: float) -> None:
        status_r, status_w = os.pipe()
        config = {
            "code": code_path, "scratch": scratch, "init": launch.init,
            "uid": launch.drop_to[0] if launch.drop_to else None,
            "gid": launch.drop_to[1] if launch.drop_to else None,
            "limits": limits.rlimits(), "hook": self.audit_hook, "status_fd": status_w,
            "scratch_bytes": limits.scratch_bytes,
        }
        argv = [*launch.prefix, launch.python, "-I", "-B", "-X", "utf8", "-c", _BOOT_STUB,
                _BOOT_SOURCE, json.dumps(config)]
        env = {"PATH": _ENV_PATH, "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8"}
        try:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, cwd=scratch,
                                        start_new_session=True, pass_fds=(status_w,))
            finally:
                os.close(status_w)
            inherited = _own_peak_rss()  # the child has exec'd: what it carried over is fixed
            out, err = _collect(proc, started + limits.wall_seconds, limits.max_capture_bytes,
                                result, inherited)
            report = _read_report(status_r)
        finally:
            os.close(status_r)
        result.stdout = out.decode("utf-8", "replace")
        result.stderr = err.decode("utf-8", "replace")
        result.notes = [str(n) for n in report.get("notes", [])]
        _take_reported_usage(result, report.get("usage"))  # the user child's own, from init
        if result.timed_out or result.output_capped:
            return
        if "signal" in report:
            result.signal = int(report["signal"])
        elif "exit" in report:
            result.exit_code = int(report["exit"])
        elif proc.returncode is not None and proc.returncode < 0:
            result.signal = -proc.returncode
        else:
            result.exit_code = proc.returncode


@functools.lru_cache(maxsize=1)
def _scratch_parent() -> str:
    """A temp directory everyone can traverse: the child re-enters scratch after its uid drop."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        path = Path(candidate).resolve()
        if path.is_dir() and all(p.stat().st_mode & 0o001 for p in (path, *path.parents)):
            return str(path)
    return tempfile.gettempdir()


def _collect(proc: subprocess.Popen[bytes], deadline: float, cap: int, result: SandboxResult,
             inherited: int = 0) -> tuple[bytes, bytes]:
    """Read both pipes until EOF, the deadline or `cap` bytes; then make sure nothing is left,
    and note the child's resource usage (`inherited`: the ru_maxrss it carried over exec)."""
    assert proc.stdout is not None and proc.stderr is not None
    buffers = {"out": bytearray(), "err": bytearray()}
    total = 0
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, "out")
            selector.register(proc.stderr, selectors.EVENT_READ, "err")
            while selector.get_map() and not result.output_capped:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    result.timed_out = True
                    break
                for key, _ in selector.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    buffers[key.data] += chunk[:max(cap - total, 0)]
                    total += len(chunk)
                    if total > cap:
                        result.output_capped = True
        if not (result.timed_out or result.output_capped):
            result.timed_out = not _wait_exit(proc.pid, deadline)
    finally:
        # The leader is not reaped yet, so its process-group id cannot have been reused.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            usage = _reap(proc, timeout=10)
            if usage is not None:
                _record_usage(result, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024,
                              inherited)
        finally:
            proc.stdout.close()
            proc.stderr.close()
    return bytes(buffers["out"]), bytes(buffers["err"])


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> resource.struct_rusage | None:
    """Reap `proc` with os.wait4 for its resource usage, setting `returncode` so subprocess
    does not wait again. Raises subprocess.TimeoutExpired if it is still alive after
    `timeout`; returns None when the usage could not be had."""
    if not _wait_exit(proc.pid, time.monotonic() + timeout):
        proc.wait(timeout=0)  # raises TimeoutExpired unless it exited just now
        return None
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # already reaped (by poll(), or SIGCHLD ignored)
        proc.wait()
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage


def _own_peak_rss() -> int:
    """Our peak resident memory in bytes. Linux carries ru_maxrss over fork + exec, so a child
    started from here reports at least what it inherited, at most this much."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _record_usage(result: SandboxResult, cpu_seconds: float, max_rss: int,
                  inherited: int = 0) -> None:
    result.cpu_seconds, result.peak_memory_bytes = cpu_seconds, max_rss
    result.peak_memory_exact = max_rss > inherited


def _take_reported_usage(result: SandboxResult, usage: object) -> None:
    """The init's `{"cpu_seconds": s, "max_rss_kib": k}` for the user child it forked (which
    inherited nothing worth counting), replacing what wait4 said about the whole tree."""
    if not isinstance(usage, dict):
        return
    try:
        cpu, rss = float(usage["cpu_seconds"]), int(usage["max_rss_kib"])
    except (KeyError, TypeError, ValueError):
        return
    _record_usage(result, cpu, rss * 1024)


def _wait_exit(pid: int, deadline: float) -> bool:
    """Wait until `pid` has exited (without reaping it) or the deadline passes."""
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _read_report(fd: int) -> dict[str, object]:
    """The init process's JSON report, or {} when there is none."""
    os.set_blocking(fd, False)
    data = bytearray()
    while len(data) < 65536:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    try:
        report = json.loads(data.decode("utf-8")) if data else {}
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


# -- observations ----------------------------------------------------------------------------

_SIGNAL_MEANING: dict[int, str] = {
    int(signal.SIGXCPU): "CPU time limit exceeded",
    int(signal.SIGXFSZ): "file size limit exceeded",
    int(signal.SIGSEGV): "crashed",
}
MEMORY_NEAR = 0.8  # a SIGKILL with peak memory at this share of the limit is put down to it


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _sigkill_line(result: SandboxResult, limits: SandboxLimits) -> str:
    """SIGKILL may come from the hard CPU limit, the kernel's OOM killer or the code itself
    (RLIMIT_AS makes allocations fail with MemoryError instead): say what the usage shows."""
    cpu, peak = result.cpu_seconds, result.peak_memory_bytes
    if cpu is None or peak is None:
        return "[killed (SIGKILL)]"
    cpu_limit = limits.rlimits()["RLIMIT_CPU"][0]
    if cpu >= cpu_limit:
        return f"[CPU time limit exceeded (SIGKILL after {cpu:.1f} s of CPU; limit {cpu_limit} s)]"
    near = peak >= MEMORY_NEAR * limits.memory_bytes
    if near and not result.peak_memory_exact:
        return f"[killed by SIGKILL, not at the CPU limit (CPU {cpu:.1f} s; peak memory unknown)]"
    bound = "" if result.peak_memory_exact else "at most "
    usage = (f"peak memory {bound}{peak // MiB} MiB of {limits.memory_bytes // MiB} MiB, "
             f"CPU {cpu:.1f} s")
    if near:
        return f"[killed by SIGKILL near the memory limit ({usage})]"
    return f"[killed by SIGKILL; not by a limit of the sandbox ({usage})]"


def status_line(result: SandboxResult, limits: SandboxLimits) -> str:
    """One bracketed line saying how the run ended, or "" for a clean exit."""
    if result.timed_out:
        return f"[timed out after {limits.wall_seconds:g} s; the process was killed]"
    if result.output_capped:
        return (f"[output passed {limits.max_capture_bytes} bytes; the process was stopped]")
    if result.signal == signal.SIGKILL:
        return _sigkill_line(result, limits)
    if result.signal is not None:
        meaning = _SIGNAL_MEANING.get(result.signal, "killed")
        return f"[{meaning} ({_signal_name(result.signal)})]"
    if result.exit_code:
        return f"[exit status {result.exit_code}]"
    return ""


def _clip_head(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    return text[:room] + f"\n[... {len(text) - room} more characters cut]"


def _clip_tail(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    return f"[... {len(text) - room} earlier characters cut]\n" + text[len(text) - room:]


def render_observation(result: SandboxResult, limits: SandboxLimits) -> str:
    """stdout (head kept), then stderr (tail kept), then the status line; bounded length."""
    if result.error:
        return f"Code could not run: {result.error}"
    if result.exit_code == SETUP_FAILED and "sandbox setup failed" in result.stderr:
        return f"Code could not run: {result.stderr.strip().splitlines()[-1]}"
    out, err = result.stdout.rstrip(), result.stderr.rstrip()
    room = limits.max_output_chars
    err_room = min(len(err), max(room // 2, room - len(out)))
    parts = []
    if out:
        parts.append(_clip_head(out, room - err_room))
    if err:
        parts.append(("[stderr]\n" if out else "") + _clip_tail(err, err_room))
    status = status_line(result, limits)
    if status:
        parts.append(status)
    return "\n".join(parts) if parts else "(no output)"


_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+.-]*[ \t]*\n(.*?)(?:```|\Z)", re.S)


def strip_fences(argument: str) -> str:
    """The code inside a markdown fence (or inline backticks), dedented; else the argument."""
    text = argument.strip()
    match = _FENCE.search(text)
    if match:
        text = match.group(1)
    elif len(text) >= 2 and text.startswith("`") and text.endswith("`"):
        text = text.strip("`")
    return textwrap.dedent(text).strip("\n")


class Code:
    """The Code tool: the argument is Python source (fences allowed); the observation is
    what it printed, bounded, with how it ended when it did not exit cleanly."""

    def __init__(self, spec: ToolSpec = CODE_SPEC, sandbox: Sandbox | None = None) -> None:
        self.spec = spec
        self.sandbox = sandbox or Sandbox()

    def run(self, argument: str, ctx: ToolContext) -> str:
        try:
            source = strip_fences(argument or "")
            if not source.strip():
                return "Code needs Python source, e.g. Code[print(1 + 1)]."
            result = self.sandbox.run(source)
            return render_observation(result, self.sandbox.limits)
        except Exception as exc:  # noqa: BLE001 - tools never raise
            return f"Code could not run: {type(exc).__name__}: {exc}"
