"""Run hostile snippets through the Code tool's sandbox and print a table for an issue note.

    .venv/bin/python benchmarks/sandbox_report.py [--wall 1.5] [--full-only]

One table for the full sandbox and, unless --full-only, one with the audit hook turned off,
which shows what the operating-system layers (namespaces, dropped uid, rlimits) hold alone.
Columns: snippet | what happened (observation summary) | contained? | seconds. Exits 1 if
anything escaped the full sandbox.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.base import ToolContext  # noqa: E402
from tools.code import Code, Sandbox, SandboxLimits  # noqa: E402


class Lab:
    """Bait for the snippets (listeners, exposed files, a process holding a secret) and the
    checks that tell whether anything got through."""

    def __init__(self) -> None:
        self.token = "autoact_escape_" + secrets.token_hex(6)
        self.secret = "hunter2-" + secrets.token_hex(4)
        self.exposed = Path(tempfile.mkdtemp(prefix="autoact_victim_", dir="/tmp"))
        self.exposed.chmod(0o777)
        self.victim = self.exposed / "victim.txt"
        self.tmp_target = Path("/tmp") / self.token
        self.repo_target = REPO / self.token
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.unix_path = str(self.exposed / "sock")
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.unix_path)
        os.chmod(self.unix_path, 0o777)
        self.unix.listen(8)
        os.environ["AUTOACT_TEST_SECRET"] = self.secret
        self.holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                       env=dict(os.environ))
        self.children_before = {c.pid for c in psutil.Process().children(recursive=True)}

    def reset(self) -> None:
        self.victim.write_text("precious")
        self.victim.chmod(0o666)
        self.remove_escapes()

    def remove_escapes(self) -> None:
        for path in (self.tmp_target, self.repo_target, Path(f"{self.tmp_target}.fifo")):
            if os.path.lexists(path):
                os.remove(path)

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()
        for sock in (self.tcp, self.udp, self.unix):
            sock.close()
        shutil.rmtree(self.exposed, ignore_errors=True)
        self.remove_escapes()
        os.environ.pop("AUTOACT_TEST_SECRET", None)

    def quiet(self, sock: socket.socket) -> bool:
        return select.select([sock], [], [], 0.1)[0] == []

    def no_survivors(self) -> bool:
        deadline = time.monotonic() + 3.0
        while True:
            left = [p for p in psutil.process_iter(["cmdline"])
                    if self.token in " ".join(p.info["cmdline"] or [])]
            left += [c for c in psutil.Process().children(recursive=True)
                     if c.pid not in self.children_before and c.pid != self.holder.pid
                     and c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
            if not left:
                return True
            if time.monotonic() > deadline:
                for proc in left:  # do not leave them running after the report
                    try:
                        proc.kill()
                    except psutil.Error:
                        pass
                return False
            time.sleep(0.05)


Check = Callable[[Lab, str, float], bool]


@dataclass(frozen=True)
class Case:
    name: str
    source: Callable[[Lab], str]
    contained: Check


def _sleeper(lab: Lab) -> str:
    return f"[sys.executable, '-c', 'import time; time.sleep(60)  # {lab.token}']"


CASES = [
    Case("infinite loop", lambda lab: "while True:\n    pass",
         lambda lab, obs, s: "timed out" in obs and lab.no_survivors()),
    Case("fork bomb (os.fork loop)",
         lambda lab: f"import os\nwhile True:\n    try:\n        os.fork()\n"
                     f"    except OSError:\n        pass  # {lab.token}",
         lambda lab, obs, s: lab.no_survivors()),
    Case("detached children (setsid), then exit",
         lambda lab: "import subprocess, sys\nfor _ in range(5):\n"
                     f"    subprocess.Popen({_sleeper(lab)}, start_new_session=True)\n"
                     "print('spawned 5')",
         lambda lab, obs, s: lab.no_survivors()),
    Case("subprocess spam (200 Popen)",
         lambda lab: "import subprocess, sys\nfor _ in range(200):\n"
                     f"    subprocess.Popen({_sleeper(lab)})",
         lambda lab, obs, s: lab.no_survivors()),
    Case("allocate 10 GB", lambda lab: "x = bytearray(10 * 1024 ** 3)",
         lambda lab, obs, s: "MemoryError" in obs or "memory limit" in obs),
    Case("grow memory in 50 MB steps",
         lambda lab: "chunks = []\nwhile True:\n    chunks.append(bytearray(50 << 20))",
         lambda lab, obs, s: "MemoryError" in obs or "memory limit" in obs),
    Case("write into the system temp dir (/tmp)",
         lambda lab: f"open({str(lab.tmp_target)!r}, 'w').write('escaped')",
         lambda lab, obs, s: not lab.tmp_target.exists()),
    Case("write into the repository",
         lambda lab: f"open({str(lab.repo_target)!r}, 'w').write('escaped')",
         lambda lab, obs, s: not lab.repo_target.exists()),
    Case("mkfifo in /tmp (no audit event)",
         lambda lab: f"import os\nos.mkfifo({str(lab.tmp_target) + '.fifo'!r})",
         lambda lab, obs, s: not os.path.lexists(f"{lab.tmp_target}.fifo")),
    Case("delete / truncate a world-writable file",
         lambda lab: f"import os\npath = {str(lab.victim)!r}\nerrors = []\n"
                     "for act in (lambda: open(path, 'w').close(), lambda: os.remove(path)):\n"
                     "    try:\n        act()\n"
                     "    except OSError as exc:\n        errors.append(type(exc).__name__)\n"
                     "print('errors:', errors)",
         lambda lab, obs, s: lab.victim.exists() and lab.victim.read_text() == "precious"),
    Case("read a world-readable repo file",
         lambda lab: f"print('read', len(open({str(REPO / 'pyproject.toml')!r}).read()), 'chars')",
         lambda lab, obs, s: f"read {len((REPO / 'pyproject.toml').read_text())} chars" not in obs),
    Case("TCP connect to 127.0.0.1 listener",
         lambda lab: "import socket\n"
                     f"socket.create_connection(('127.0.0.1', {lab.tcp.getsockname()[1]}), 1)",
         lambda lab, obs, s: lab.quiet(lab.tcp) and "Error" in obs),
    Case("UDP datagram to 127.0.0.1",
         lambda lab: "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                     f"s.sendto(b'x', ('127.0.0.1', {lab.udp.getsockname()[1]}))",
         lambda lab, obs, s: lab.quiet(lab.udp)),
    Case("Unix socket (world-writable, in /tmp)",
         lambda lab: "import socket\ns = socket.socket(socket.AF_UNIX)\n"
                     f"s.connect({lab.unix_path!r})",
         lambda lab, obs, s: lab.quiet(lab.unix)),
    Case("DNS lookup", lambda lab: "import socket\nprint(socket.getaddrinfo('example.com', 80))",
         lambda lab, obs, s: "AddressFamily" not in obs),
    Case("print the environment",
         lambda lab: "import os\nprint(dict(os.environ))",
         lambda lab, obs, s: lab.secret not in obs and "AUTOACT_TEST_SECRET" not in obs),
    Case("read /proc/<pid>/environ of a host process",
         lambda lab: f"print(open('/proc/{lab.holder.pid}/environ', 'rb').read())",
         lambda lab, obs, s: lab.secret not in obs),
    Case("signal a host process",
         lambda lab: f"import os, signal\nos.kill({lab.holder.pid}, signal.SIGKILL)",
         lambda lab, obs, s: lab.holder.poll() is None),
    Case("setuid(0) back to root", lambda lab: "import os\nos.setuid(0)\nprint('root again')",
         lambda lab, obs, s: "root again" not in obs),
    Case("fill the disk (8 MB files)",
         lambda lab: "i = 0\nwhile True:\n"
                     "    open(f'f{i}', 'wb').write(b'x' * (8 << 20))\n    i += 1",
         lambda lab, obs, s: "No space left" in obs or "File too large" in obs),
    Case("print 10 MB", lambda lab: "print('x' * 10_000_000)",
         lambda lab, obs, s: len(obs) < 2200),
    Case("print forever", lambda lab: "while True:\n    print('y' * 1000)",
         lambda lab, obs, s: len(obs) < 2200 and "output passed" in obs),
]

_STATUS = re.compile(r"^\[(timed out|output passed|exit status|CPU|file size|killed|crashed)")


def summarize(observation: str, width: int = 72) -> str:
    """The line that says what happened: a status line, else the last line (the error)."""
    lines = [line.strip() for line in observation.splitlines() if line.strip()]
    status = [line for line in lines if _STATUS.match(line)]
    meaningful = [line for line in lines if not line.startswith("[exit status")]
    if status and not status[0].startswith("[exit status"):
        text = status[0]
    elif meaningful:
        text = meaningful[-1]
    else:
        text = lines[-1] if lines else "(nothing)"
    text = text.replace("|", "/")
    return text if len(text) <= width else text[:width - 3] + "..."


def run_table(sandbox: Sandbox, lab: Lab, title: str) -> bool:
    launch = sandbox.launch()
    hook = "on" if sandbox.audit_hook else "off"
    print(f"\n### {title}\n")
    print(f"isolation: {launch.description}; python: {launch.python}; audit hook: {hook}\n")
    print("| snippet | what happened | contained? | seconds |")
    print("|---|---|---|---|")
    tool = Code(sandbox=sandbox)
    all_contained = True
    for case in CASES:
        lab.reset()
        started = time.monotonic()
        observation = tool.run(case.source(lab), ToolContext(row={}))
        seconds = time.monotonic() - started
        contained = case.contained(lab, observation, seconds)
        all_contained &= contained
        print(f"| {case.name} | {summarize(observation)} | {'yes' if contained else 'NO'} "
              f"| {seconds:.2f} |")
        if lab.holder.poll() is not None:  # a snippet killed the bait; replace it
            lab.holder = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(600)"], env=dict(os.environ))
    return all_contained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wall", type=float, default=1.5, help="wall-clock limit (s)")
    parser.add_argument("--full-only", action="store_true", help="skip the hook-off table")
    args = parser.parse_args(argv)
    limits = SandboxLimits(wall_seconds=args.wall)
    print(f"Code sandbox report: wall {limits.wall_seconds:g} s, "
          f"memory {limits.memory_bytes >> 20} MiB, processes {limits.max_processes}, "
          f"file size {limits.max_file_bytes >> 20} MiB, "
          f"captured output {limits.max_capture_bytes >> 20} MiB, "
          f"observation {limits.max_output_chars} chars; running as uid {os.geteuid()}")
    lab = Lab()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        ok = run_table(Sandbox(limits), lab, "Full sandbox")
        if not args.full_only:
            run_table(Sandbox(limits, audit_hook=False), lab,
                      "Audit hook off (operating-system layers only)")
    except RuntimeError as exc:
        print(f"no sandbox on this machine: {exc}")
        return 2
    finally:
        lab.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
