"""Task definitions: how rows are validated, shown to agents, scored and grouped."""

from tasks.base import Task
from tasks.data import read_rows
from tasks.registry import TASKS, get_task

__all__ = ["Task", "TASKS", "get_task", "read_rows"]
