"""Tool-spec files (DESIGN §2): the graph's own actions, loading, saving and per-task defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from core.errors import ConfigError
from tools.base import ToolSpec
from tools.registry import GRAPH_ACTIONS, builtin_spec, registered_names

FINISH_SPEC = ToolSpec(
    name="Finish",
    description="Ends the task and gives the final answer.",
    usage="Finish[answer], e.g. Finish[Dover]",
)
REFLECT_SPEC = ToolSpec(
    name="Reflect",
    description="After Finish, judges whether the proposed answer is right or wrong.",
    usage="Reflect[right] or Reflect[wrong]",
)

TASK_TOOLS: dict[str, tuple[str, ...]] = {
    "hotpotqa": ("Retrieve", "Lookup", "Search"),
    "scienceqa": ("Image2Text",),
}


def default_tool_specs(task: str) -> list[ToolSpec]:
    """The built-in tool specs for a task ("hotpotqa" or "scienceqa"), without Finish/Reflect."""
    names = TASK_TOOLS.get(task.strip().lower())
    if names is None:
        raise ConfigError(f"no default tools for task {task!r}; known tasks: "
                          f"{', '.join(TASK_TOOLS)}")
    return [builtin_spec(name) for name in names]


def load_tool_specs(path: str | Path, known: Iterable[str] | None = None) -> list[ToolSpec]:
    """Read a JSON list of `{name, description, usage}`.

    Names must be registered tools (or Finish/Reflect); they are matched case-insensitively and
    returned in their registered spelling. Every problem is a ConfigError naming the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read tool specs: {err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from err
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a JSON list of tool specs, got {type(data).__name__}")
    allowed = list(known) if known is not None else registered_names() + list(GRAPH_ACTIONS)
    canonical = {name.casefold(): name for name in allowed}
    specs: list[ToolSpec] = []
    seen: set[str] = set()
    for index, obj in enumerate(data):
        where = f"{path}: entry {index}"
        spec = ToolSpec.from_json(obj, where=where)
        name = canonical.get(spec.name.casefold())
        if name is None:
            raise ConfigError(f"{where}: unknown tool {spec.name!r}; known tools: "
                              f"{', '.join(sorted(allowed))}")
        if name in seen:
            raise ConfigError(f"{where}: tool {name!r} is listed twice")
        seen.add(name)
        specs.append(ToolSpec(name=name, description=spec.description, usage=spec.usage))
    return specs


def save_tool_specs(path: str | Path, specs: Iterable[ToolSpec]) -> None:
    """Write specs as an indented JSON list (parent folders are created)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([s.to_json() for s in specs], indent=2, ensure_ascii=False)
                        + "\n", encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot write tool specs: {err}") from err
