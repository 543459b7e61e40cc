"""The import direction of the house: each package imports only packages on lower floors, and no
module imports itself back through others (deferred imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The floors, from the ground up; a package may import its own modules and any package on a lower floor.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),  # errors, JSONL, versions, answer normalisation, hardware probes, interrupts, locks, roles
    ("tools", "tasks", "serving"),  # what agents act with, what they are asked, the models behind them
    ("prompts",),  # every prompt template and the one builder that renders them
    ("agents",),  # the role agents and the endpoint client
    ("graph",),  # the agent protocol, the group graph, every design and the design registry
    ("evaluation",),  # the evaluation loop, diagnostics, summaries and reports
    ("training",),  # self-instruct, tool selection, synthesis, differentiation, LoRA training
    ("autoact",),  # the roof: stage functions, the pipeline, rounds and the command line
    ("benchmarks",),
)
FLOOR = {package: floor for floor, packages in enumerate(LAYERS) for package in packages}


def _modules() -> dict[str, Path]:
    found = {}
    for package in FLOOR:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of this project's packages in the file, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` imports the module pkg.mod when there is one
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        out.extend((node.lineno, name) for name in names if name.split(".")[0] in FLOOR)
    return out


def test_every_package_of_the_tree_has_a_floor() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"benchmarks"}
    assert packages - {"tests"} == set(FLOOR), "add the new package to LAYERS"


def test_imports_point_down_only() -> None:
    upward = []
    for module, path in MODULES.items():
        here = FLOOR[module.split(".")[0]]
        for line, name in _imports(path):
            there = FLOOR[name.split(".")[0]]
            if name.split(".")[0] != module.split(".")[0] and there >= here:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {name} (floor {there} >= {here})")
    assert not upward, "\n".join(upward)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_back() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {name if name in MODULES else name.rsplit(".", 1)[0] for _, name in _imports(path)}
        graph[module] = {t for t in targets if t in MODULES and t != module and not module.startswith(f"{t}.")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


@pytest.mark.parametrize("source, upward", [
    ("from evaluation.runner import evaluate\n", True),  # tools importing evaluation: upward
    ("from core.errors import ConfigError\n", False),
    ("def f():\n    import training.lora\n", True),  # a deferred import counts as well
])
def test_the_walk_sees_imports_wherever_they_stand(tmp_path: Path, source: str, upward: bool) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    floors = [FLOOR[name.split(".")[0]] for _, name in _imports(probe)]
    assert (max(floors) > FLOOR["tools"]) is upward


def test_a_cycle_is_found() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
