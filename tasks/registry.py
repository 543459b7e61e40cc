"""Tasks by name."""

from __future__ import annotations

from core.errors import ConfigError
from tasks.base import Task
from tasks.hotpotqa import HotpotQA
from tasks.scienceqa import ScienceQA

TASKS: dict[str, Task] = {t.name: t for t in (HotpotQA(), ScienceQA())}


def get_task(name: str) -> Task:
    try:
        return TASKS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
