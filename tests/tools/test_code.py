"""The Code tool: ordinary programs, and hostile ones that must stay contained.

Hostile snippets run twice where the machine allows: with every layer, and with the audit
hook off (the `os_layers` sandbox) to show that namespaces, the dropped uid and the rlimits
hold on their own.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tools.base import Tool, ToolContext
from tools.code import (
    CODE_SPEC,
    Code,
    Sandbox,
    SandboxLimits,
    SandboxResult,
    render_observation,
    strip_fences,
)

REPO = Path(__file__).resolve().parents[2]
WALL = 1.5
CTX = ToolContext(row={})


def _ready(sandbox: Sandbox) -> Sandbox:
    try:
        sandbox.launch()
    except RuntimeError as exc:
        pytest.skip(f"no sandbox on this machine: {exc}")
    return sandbox


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return _ready(Sandbox(SandboxLimits(wall_seconds=WALL)))


@pytest.fixture(scope="module")
def os_layers() -> Sandbox:
    """The same sandbox without the audit hook."""
    return _ready(Sandbox(SandboxLimits(wall_seconds=WALL), audit_hook=False))


@pytest.fixture(scope="module")
def code(sandbox: Sandbox) -> Code:
    return Code(sandbox=sandbox)


def run(sandbox: Sandbox, source: str) -> tuple[str, float]:
    started = time.monotonic()
    observation = Code(sandbox=sandbox).run(source, CTX)
    return observation, time.monotonic() - started


def _token() -> str:
    return "autoact_escape_" + secrets.token_hex(6)


def _survivors(token: str, before: set[int]) -> list[str]:
    """Processes started during the test: new children of ours, or any carrying `token`."""
    deadline = time.monotonic() + 3.0  # a dying PID namespace may take a moment
    while True:
        left = [f"{p.pid} {p.info['cmdline']}" for p in psutil.process_iter(["cmdline"])
                if token in " ".join(p.info["cmdline"] or [])]
        left += [f"child {c.pid}" for c in psutil.Process().children(recursive=True)
                 if c.pid not in before and c.is_running()
                 and c.status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


Watch = tuple[str, set[int]]  # a token to tag processes with, and our children before the test


@pytest.fixture
def process_watch() -> Iterator[Watch]:
    yield _token(), {c.pid for c in psutil.Process().children(recursive=True)}


# -- helpers without a subprocess ----------------------------------------------------------

def test_strip_fences_variants() -> None:
    assert strip_fences("```python\nprint(1)\n```") == "print(1)"
    assert strip_fences("Here:\n```py\n  x = 1\n  print(x)\n```\nthanks") == "x = 1\nprint(x)"
    assert strip_fences("```\nprint(2)\n") == "print(2)"
    assert strip_fences("`print(3)`") == "print(3)"
    assert strip_fences("  print(4)  ") == "print(4)"


def test_render_observation_bounds_and_statuses() -> None:
    limits = SandboxLimits(max_output_chars=100)
    long = render_observation(SandboxResult(stdout="a" * 1000, exit_code=0), limits)
    assert long.startswith("a" * 100) and "900 more characters cut" in long
    both = render_observation(SandboxResult(stdout="o" * 500, stderr="e" * 500 + "END",
                                            exit_code=1), limits)
    assert both.rstrip().endswith("[exit status 1]") and "END" in both and len(both) < 250
    assert render_observation(SandboxResult(exit_code=0), limits) == "(no output)"
    assert "timed out after 5 s" in render_observation(SandboxResult(timed_out=True), limits)
    assert "SIGXCPU" in render_observation(SandboxResult(signal=24), limits)
    assert render_observation(SandboxResult(error="boom"), limits) == "Code could not run: boom"


def test_code_is_a_tool_and_registered() -> None:
    from tools.registry import build_toolbox

    assert isinstance(Code(), Tool)
    assert "Code" in build_toolbox([CODE_SPEC]).names


def test_unusable_interpreter_becomes_an_observation() -> None:
    tool = Code(sandbox=Sandbox(python="/nonexistent/python3"))
    observation = tool.run("print(1)", CTX)
    assert observation.startswith("Code could not run:")


# -- ordinary programs ---------------------------------------------------------------------

def test_prints_arithmetic(code: Code) -> None:
    assert code.run("print(6 * 7)", CTX) == "42"


def test_multi_line_program_in_a_fence(code: Code) -> None:
    source = ("```python\ndef fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n"
              "        a, b = b, a + b\n    return a\n\nprint([fib(i) for i in range(10)])\n```")
    assert code.run(source, CTX) == "[0, 1, 1, 2, 3, 5, 8, 13, 21, 34]"


def test_exception_gives_traceback_and_status(code: Code) -> None:
    observation = code.run("x = 1\nprint('before')\nx / 0", CTX)
    assert observation.startswith("before\n[stderr]\nTraceback")
    assert 'File "<code>", line 3' in observation
    assert "ZeroDivisionError: division by zero" in observation
    assert observation.endswith("[exit status 1]")
    assert "<sandbox>" not in observation  # the bootstrap's frames are hidden


def test_syntax_error_exit_code_and_silence(code: Code) -> None:
    assert "SyntaxError" in code.run("print(", CTX)
    assert code.run("import sys; sys.exit(3)", CTX) == "[exit status 3]"
    assert code.run("x = 1", CTX) == "(no output)"
    assert "EOFError" in code.run("input()", CTX)  # stdin is empty
    assert code.run("import signal; signal.raise_signal(signal.SIGSEGV)", CTX) == \
        "[crashed (SIGSEGV)]"


def test_empty_argument(code: Code) -> None:
    assert code.run("   ", CTX).startswith("Code needs Python source")
    assert code.run("```python\n```", CTX).startswith("Code needs Python source")


def test_long_output_is_truncated(code: Code) -> None:
    observation = code.run("print('a' * 5000)", CTX)
    assert observation.startswith("a" * 1900)
    assert "3000 more characters cut" in observation
    assert len(observation) < 2100


def test_scratch_is_cwd_writable_and_removed(code: Code) -> None:
    observation = code.run("import os\nopen('notes.txt', 'w').write('kept')\n"
                           "print(os.getcwd())\nprint(open('notes.txt').read())", CTX)
    cwd, content = observation.splitlines()
    assert content == "kept"
    assert not os.path.exists(cwd) and not os.path.exists(os.path.dirname(cwd))


def test_stdlib_works_under_the_hook(code: Code) -> None:
    source = ("import json, decimal, sqlite3, tempfile, threading\n"
              "db = sqlite3.connect('local.db'); db.execute('create table t(x)')\n"
              "with tempfile.TemporaryFile() as fh: fh.write(b'x')\n"
              "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
              "print(json.dumps({'d': str(decimal.Decimal('0.1') * 3)}))\n"
              "print(len(open(json.__file__).read()) > 0)")
    assert code.run(source, CTX) == 'thread\n{"d": "0.3"}\nTrue'


def test_file_size_limit(code: Code) -> None:
    observation = code.run("open('big', 'wb').write(b'x' * (32 << 20))", CTX)
    assert "File too large" in observation or "No space left" in observation


# -- hostile programs ----------------------------------------------------------------------

def test_infinite_loop_is_killed_at_the_wall_limit(sandbox: Sandbox, process_watch: Watch) -> None:
    token, before = process_watch
    observation, seconds = run(sandbox, f"# {token}\nprint('start')\nwhile True:\n    pass")
    assert observation.startswith("start")  # output before the kill is kept
    assert f"timed out after {WALL:g} s" in observation
    assert seconds < WALL + 1.5
    assert _survivors(token, before) == []


def test_cpu_limit() -> None:
    sandbox = _ready(Sandbox(SandboxLimits(wall_seconds=5, cpu_seconds=1)))
    observation, seconds = run(sandbox, "while True:\n    pass")
    assert "CPU time limit exceeded (SIGXCPU)" in observation
    assert seconds < 4


FORK_BOMB = "import os\nwhile True:\n    os.fork()"
SPAWN_SPAM = ("import subprocess, sys\nfor _ in range(200):\n"
              "    subprocess.Popen([sys.executable, '-c',\n"
              "                      'import time; time.sleep(30)  # {token}'],\n"
              "                     start_new_session=True)\nprint('spawned')")


def test_fork_bomb_is_denied(sandbox: Sandbox, process_watch: Watch) -> None:
    token, before = process_watch
    observation, _ = run(sandbox, f"# {token}\n{FORK_BOMB}")
    assert "os.fork is not allowed" in observation
    observation, _ = run(sandbox, SPAWN_SPAM.format(token=token))
    assert "subprocess.Popen is not allowed" in observation and "spawned" not in observation
    assert _survivors(token, before) == []


def test_fork_bomb_without_the_hook(os_layers: Sandbox, process_watch: Watch) -> None:
    if not os_layers.launch().init:
        pytest.skip("needs a PID namespace to reap processes that left the process group")
    token, before = process_watch
    bomb = (f"import os\nwhile True:\n    try:\n        os.fork()\n"
            f"    except OSError:\n        pass  # {token}")
    observation, seconds = run(os_layers, bomb)
    assert "timed out" in observation and seconds < WALL + 2
    observation, _ = run(os_layers, SPAWN_SPAM.format(token=token))
    assert "BlockingIOError" in observation  # RLIMIT_NPROC
    assert _survivors(token, before) == []


@pytest.mark.parametrize("hook", [True, False])
def test_huge_allocation(sandbox: Sandbox, os_layers: Sandbox, hook: bool) -> None:
    observation, seconds = run(sandbox if hook else os_layers, "x = bytearray(10 * 1024 ** 3)")
    assert "MemoryError" in observation or "memory limit" in observation
    assert seconds < 3


@pytest.mark.parametrize("flood", ["print('x' * 10_000_000)",
                                   "while True:\n    print('y' * 1000)"])
def test_huge_output_is_bounded(code: Code, flood: str) -> None:
    started = time.monotonic()
    observation = code.run(flood, CTX)
    assert len(observation) < 2200 and "characters cut" in observation
    assert "output passed" in observation  # the child was stopped at the capture cap
    assert time.monotonic() - started < WALL + 1


@pytest.fixture
def exposed_dir() -> Iterator[Path]:
    """A world-writable directory in /tmp: the worst place to leave files."""
    path = Path(tempfile.mkdtemp(prefix="autoact_victim_", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


WRITE_OUT = ("import os\nfor path in {paths!r}:\n    try:\n"
             "        with open(path, 'w') as fh: fh.write('escaped')\n"
             "        print('wrote', path)\n"
             "    except OSError as exc:\n        print('blocked', type(exc).__name__)\n"
             "    try:\n        os.mkfifo(path + '.fifo'); print('made fifo')\n"
             "    except OSError as exc:\n        print('blocked', type(exc).__name__)")


@pytest.mark.parametrize("hook", [True, False])
def test_writes_outside_scratch_are_contained(sandbox: Sandbox, os_layers: Sandbox,
                                              hook: bool) -> None:
    box = sandbox if hook else os_layers
    launch = box.launch()
    paths = [f"/tmp/{_token()}", str(REPO / _token())]
    if not hook and not launch.init:  # without a mount namespace /tmp is writable to nobody
        paths = paths[1:] if launch.drop_to else []
    if not paths:
        pytest.skip("only the audit hook stops these writes here")
    try:
        observation, _ = run(box, WRITE_OUT.format(paths=paths))
        assert "wrote" not in observation and "made fifo" not in observation
        assert observation.count("blocked") == 2 * len(paths)
        for path in paths:
            assert not os.path.exists(path) and not os.path.exists(path + ".fifo")
    finally:
        for path in paths:
            for leftover in (path, path + ".fifo"):
                if os.path.lexists(leftover):
                    os.remove(leftover)


@pytest.mark.parametrize("hook", [True, False])
def test_deleting_outside_is_contained(sandbox: Sandbox, os_layers: Sandbox, exposed_dir: Path,
                                       hook: bool) -> None:
    box = sandbox if hook else os_layers
    if not hook and not box.launch().init:
        pytest.skip("a world-writable file is only protected by the hook without namespaces")
    victim = exposed_dir / "victim.txt"
    victim.write_text("precious")
    victim.chmod(0o666)
    source = (f"import os, shutil\npath = {str(victim)!r}\n"
              "for attempt in (lambda: os.remove(path), lambda: open(path, 'w').close(),\n"
              "                lambda: shutil.rmtree(os.path.dirname(path)),\n"
              "                lambda: os.rename(path, 'stolen')):\n"
              "    try:\n        attempt(); print('done')\n"
              "    except OSError as exc:\n        print('blocked', type(exc).__name__)")
    observation, _ = run(box, source)
    assert "done" not in observation and observation.count("blocked") == 4
    assert victim.read_text() == "precious"


def test_reading_outside_scratch_is_denied(code: Code, exposed_dir: Path) -> None:
    """Policy: only scratch, the import path and a few devices are readable under the hook."""
    secret = exposed_dir / "secret.txt"
    secret.write_text("topsecret-" + secrets.token_hex(4))
    secret.chmod(0o644)
    observation = code.run(f"print(open({str(secret)!r}).read())", CTX)
    assert "topsecret" not in observation and "is not allowed" in observation
    observation = code.run(f"import os; print(os.listdir({str(REPO)!r}))", CTX)
    assert "pyproject.toml" not in observation and "is not allowed" in observation


@pytest.fixture
def listeners() -> Iterator[dict[str, socket.socket]]:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix_dir = Path(tempfile.mkdtemp(prefix="autoact_sock_", dir="/tmp"))
    unix_dir.chmod(0o777)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(unix_dir / "s"))
    os.chmod(unix_dir / "s", 0o777)
    unix.listen(8)
    yield {"tcp": tcp, "udp": udp, "unix": unix}
    for sock in (tcp, udp, unix):
        sock.close()
    shutil.rmtree(unix_dir, ignore_errors=True)


NETWORK = ("import socket\n"
           "def tcp():\n    socket.create_connection(('127.0.0.1', {tcp}), timeout=1)\n"
           "def udp():\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
           "    s.sendto(b'x', ('127.0.0.1', {udp}))\n"
           "def unix():\n    s = socket.socket(socket.AF_UNIX)\n    s.settimeout(1)\n"
           "    s.connect({unix!r})\n"
           "def dns():\n    socket.getaddrinfo('example.com', 80)\n"
           "for name, attempt in [('tcp', tcp), ('udp', udp), ('unix', unix), ('dns', dns)]:\n"
           "    try:\n        attempt(); print(name, 'CONNECTED')\n"
           "    except OSError as exc:\n        print(name, 'blocked', type(exc).__name__)")


@pytest.mark.parametrize("hook", [True, False])
def test_network_is_unreachable(sandbox: Sandbox, os_layers: Sandbox,
                                listeners: dict[str, socket.socket], hook: bool) -> None:
    box = sandbox if hook else os_layers
    if not hook and not box.launch().init:
        pytest.skip("without namespaces only the audit hook blocks sockets")
    source = NETWORK.format(tcp=listeners["tcp"].getsockname()[1],
                            udp=listeners["udp"].getsockname()[1],
                            unix=listeners["unix"].getsockname())
    observation, _ = run(box, source)
    assert "CONNECTED" not in observation and observation.count("blocked") == 4
    for sock in listeners.values():
        readable, _, _ = select.select([sock], [], [], 0.1)
        assert readable == [], "the listener saw traffic from the sandbox"


@pytest.mark.parametrize("hook", [True, False])
def test_environment_secrets_do_not_leak(sandbox: Sandbox, os_layers: Sandbox, hook: bool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    box = sandbox if hook else os_layers
    if not hook and box.launch().drop_to is None:
        pytest.skip("without a uid drop only the audit hook guards /proc/<pid>/environ")
    secret = "hunter2-" + secrets.token_hex(4)
    monkeypatch.setenv("AUTOACT_TEST_SECRET", secret)  # what a child would inherit by default
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                              env=dict(os.environ))  # holds the secret in its /proc environ
    try:
        source = ("import os\nprint(sorted(os.environ))\n"
                  f"for pid in ({holder.pid}, {os.getpid()}, os.getppid(), 'self', 1):\n"
                  "    try:\n        data = open(f'/proc/{pid}/environ', 'rb').read()\n"
                  "        print(pid, 'read', data)\n"
                  "    except OSError as exc:\n        print(pid, 'blocked', type(exc).__name__)")
        observation, _ = run(box, source)
    finally:
        holder.kill()
        holder.wait()
    assert secret not in observation and "AUTOACT_TEST_SECRET" not in observation
    assert "['HOME', 'LANG', 'PATH', 'TMPDIR']" in observation
    assert f"{holder.pid} blocked" in observation and f"{os.getpid()} blocked" in observation
