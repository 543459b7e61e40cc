"""Tools stay bounded whatever the argument: Calculator in time and size, Database in the size
of the values a query builds, and the Code tool says what it knows about a SIGKILL."""

from __future__ import annotations

import ast
import itertools
import json
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import calculator
from tools.base import ToolContext
from tools.calculator import _BINARY, _FUNCTIONS, _UNARY
from tools.code import (
    Code,
    MiB,
    Sandbox,
    SandboxLimits,
    SandboxResult,
    render_observation,
)
from tools.database import Database

CTX = ToolContext(row={})

# --- Calculator -------------------------------------------------------------------------------

# Huge and tiny ints, float extremes, infinities (1e309) and the small values around 0 and 1.
EXTREMES = ("10**999", "-10**999", "10**8", "-10**8", "1e308", "-1e308", "1e309", "-1e309",
            "0", "1", "-1", "2", "0.5", "-0.5")
OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
             ast.Mod: "%", ast.Pow: "**", ast.UAdd: "+", ast.USub: "-"}
# Checked first: the reported case, and rounding that must not change.
EXPECTED = {"round(1, -10**8)": "0", "round(10**999, -10**8)": "0", "round(-1, -1e308)": "0",
            "round(123456, -2)": "123500", "round(-123456, -3)": "-123000",
            "round(5 * 10**999, -1000)": "0", "round(6 * 10**998, -999)": "1" + "0" * 999,
            "round(2.675, 2)": "2.67", "round(1e308, -10**8)": "0", "round(1.5, 10**8)": "1.5",
            "round(2.5)": "2", "round(7, -1)": "10", "round(25, -1)": "20"}
PER_CALL_S = 1.0
SWEEP_TIMEOUT_S = 20.0  # the child is killed past this: one slow case may take minutes

# Runs in a child so that a call stuck in C (a huge int power holds the GIL) cannot hang the
# test run: it prints one JSON line per case as it goes.
SWEEP = """
import json, sys, time
from tools.base import ToolContext
from tools.calculator import Calculator
tool, ctx = Calculator(), ToolContext(row={})
for expression in json.load(sys.stdin):
    started = time.perf_counter()
    try:
        output, kind = tool.run(expression, ctx), 'returned'
    except BaseException as exc:
        output, kind = repr(exc), 'raised'
    if not isinstance(output, str):
        output, kind = repr(output), 'not a string'
    print(json.dumps([expression, kind, output, time.perf_counter() - started]), flush=True)
"""


def _calculator_cases() -> list[str]:
    """Every function with 0-2 arguments from EXTREMES (and 3, and very many), every
    operator on every pair of them."""
    cases = list(EXPECTED)
    for name in _FUNCTIONS:
        for count in (0, 1, 2):
            cases += [f"{name}({', '.join(args)})" for args in
                      itertools.product(EXTREMES, repeat=count)]
        cases.append(f"{name}(10**999, -10**8, 1e309)")
        cases.append(f"{name}({', '.join(['-10**8'] * 60)})")
    for op in _BINARY:
        cases += [f"({a}) {OPERATORS[op]} ({b})" for a, b in itertools.product(EXTREMES, repeat=2)]
    for op in _UNARY:
        cases += [f"{OPERATORS[op]}({a})" for a in EXTREMES]
    cases.append("2 ** 2 ** 2 ** 2 ** 2 ** 2")
    cases.append("round(" * 30 + "10**999" + ", -10**8)" * 30)
    return cases


def _run_sweep(cases: list[str]) -> list[tuple[str, str, str, float]]:
    root = Path(calculator.__file__).resolve().parents[1]  # the tools under test
    timed_out = False
    try:
        output = subprocess.run([sys.executable, "-c", SWEEP], input=json.dumps(cases).encode(),
                                capture_output=True, cwd=root, timeout=SWEEP_TIMEOUT_S,
                                check=True).stdout
    except subprocess.TimeoutExpired as exc:
        output, timed_out = exc.stdout or b"", True
    lines = output.decode().splitlines()
    if timed_out:
        pytest.fail(f"Calculator[{cases[len(lines)]}] did not return within "
                    f"{SWEEP_TIMEOUT_S:g} s ({len(lines)} of {len(cases)} cases done)")
    return [tuple(json.loads(line)) for line in lines]


def test_calculator_every_function_and_operator_is_bounded() -> None:
    cases = _calculator_cases()
    assert set(_FUNCTIONS) <= {case.split("(")[0] for case in cases}
    started = time.perf_counter()
    results = _run_sweep(cases)
    assert time.perf_counter() - started < 10
    assert [r[0] for r in results] == cases
    outputs = {expression: output for expression, _, output, _ in results}
    slow = [(e, f"{s:.2f} s") for e, _, _, s in results if s > PER_CALL_S]
    assert slow == []
    assert [(e, kind, out) for e, kind, out, _ in results if kind != "returned"] == []
    assert max(len(out) for out in outputs.values()) <= 1100  # 1000 digits and a sign, at most
    assert {e: outputs[e] for e in EXPECTED} == EXPECTED


# --- Database ---------------------------------------------------------------------------------

HUGE_VALUES = ["SELECT zeroblob(900000000)", "SELECT randomblob(900000000)",
               "SELECT length(zeroblob(2000000000))", "SELECT printf('%.*c', 900000000, 'x')",
               "SELECT format('%!.*c', 2000000000, 'é')",
               "SELECT length(replace(hex(zeroblob(1000)), '0', hex(zeroblob(450000))))"]


@pytest.fixture
def database(tmp_path: Path) -> Database:
    path = tmp_path / "cities.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE city (name TEXT, population INTEGER)")
        conn.executemany("INSERT INTO city VALUES (?, ?)", [("Paris", 2_100_000),
                                                            ("Lyon", 520_000)])
    conn.close()
    return Database(path)


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))


@pytest.fixture
def little_memory() -> Iterator[None]:
    """This process may map only 512 MiB more, as on a busy host: a query that builds a
    huge value then fails to allocate instead of taking seconds and gigabytes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + 512 * MiB
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.usefixtures("little_memory")
def test_database_huge_values_are_refused_not_raised(database: Database) -> None:
    for sql in HUGE_VALUES:
        started = time.perf_counter()
        observation = database.run(sql, CTX)
        assert observation.startswith("SQL error: string or blob too big"), (sql, observation)
        assert f"limited to {database.max_value_bytes} bytes" in observation
        assert time.perf_counter() - started < 1, sql
    many = "SELECT " + ", ".join([f"zeroblob({database.max_value_bytes})"] * 200)  # 800 MiB
    observation = database.run(many, CTX)
    assert observation.startswith("SQL error:") and "memory" in observation
    assert "\n" not in observation
    assert database.run("SELECT name FROM city ORDER BY population DESC LIMIT 1", CTX) == \
        "name;\nParis"
    assert database.run("SELECT printf('%05d|%.3c|%s', 42, 'ab', name) FROM city "
                        "WHERE name = 'Lyon'", CTX).endswith("00042|aaa|Lyon")


# --- Code: how a SIGKILL is worded ------------------------------------------------------------

SELF_KILL = "import signal\nprint('before')\nsignal.raise_signal(signal.SIGKILL)"
FILL_THEN_SELF_KILL = ("chunks = []\ntry:\n    while True:\n"
                       "        chunks.append(b'x' * (4 << 20))\n"
                       "except MemoryError:\n    pass\n" + SELF_KILL)  # dies near the limit
IGNORE_SIGXCPU = ("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
                  "while True:\n    pass")
GROW = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))"


def _code(init: bool, limits: SandboxLimits) -> Code:
    """The Code tool with an init (PID 1 of namespaces) that reaps the child, or without."""
    sandbox = Sandbox(limits, namespaces=init)
    try:
        launch = sandbox.launch()
    except RuntimeError as exc:
        pytest.skip(f"no sandbox on this machine: {exc}")
    if launch.init != init:
        pytest.skip("no PID namespace here, so no init")
    return Code(sandbox=sandbox)


def test_sigkill_wording_follows_the_usage() -> None:
    limits = SandboxLimits()  # 512 MiB, 6 s of CPU

    def line(cpu: float | None = None, peak_mib: int | None = None, exact: bool = True) -> str:
        peak = None if peak_mib is None else peak_mib * MiB
        result = SandboxResult(signal=9, cpu_seconds=cpu, peak_memory_bytes=peak,
                               peak_memory_exact=exact)
        return render_observation(result, limits)

    assert line(0.0, 12) == ("[killed by SIGKILL; not by a limit of the sandbox "
                             "(peak memory 12 MiB of 512 MiB, CPU 0.0 s)]")
    assert "near the memory limit (peak memory 480 MiB of 512 MiB" in line(0.5, 480)
    assert "peak memory at most 45 MiB" in line(0.0, 45, exact=False)
    inherited = line(0.0, 3000, exact=False)  # what a big parent passed on over exec
    assert "memory limit" not in inherited and "peak memory unknown" in inherited
    assert "CPU time limit exceeded (SIGKILL after 7.0 s" in line(7.0, 20)
    assert line() == "[killed (SIGKILL)]"


@pytest.mark.parametrize("init", [True, False], ids=["init", "no-init"])
def test_self_sigkill_is_not_blamed_on_memory(init: bool) -> None:
    code = _code(init, SandboxLimits(wall_seconds=5))
    observation = code.run(SELF_KILL, CTX)
    assert observation.startswith("before\n[killed by SIGKILL")
    assert "memory limit" not in observation
    if init:  # the init forked the child itself, so its peak is its own
        assert "; not by a limit of the sandbox (peak memory " in observation
    observation = code.run(FILL_THEN_SELF_KILL, CTX)
    assert "SIGKILL" in observation
    assert "near the memory limit (peak memory " in observation or \
        (not init and "peak memory unknown" in observation)  # a parent past 410 MiB hides it


@pytest.mark.parametrize("init", [True, False], ids=["init", "no-init"])
def test_cpu_limit_is_still_reported(init: bool) -> None:
    code = _code(init, SandboxLimits(wall_seconds=10, cpu_seconds=1))
    assert code.run("while True:\n    pass", CTX) == "[CPU time limit exceeded (SIGXCPU)]"
    observation = code.run(IGNORE_SIGXCPU, CTX)  # runs on to the hard limit, one second later
    assert observation.startswith("[CPU time limit exceeded (SIGKILL after 2.")
    assert "memory" not in observation


@pytest.mark.parametrize("init", [True, False], ids=["init", "no-init"])
def test_memory_limit_is_still_reported(init: bool) -> None:
    code = _code(init, SandboxLimits(wall_seconds=5))
    for source in (GROW, "x = bytearray(10 * 1024 ** 3)"):
        observation = code.run(source, CTX)
        assert "MemoryError" in observation and observation.endswith("[exit status 1]")
