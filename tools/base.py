"""The tool contract: a spec the prompts show, a per-call context, and the `Tool` protocol."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

from core.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FIELDS = ("name", "description", "usage")


@dataclass(frozen=True)
class ToolSpec:
    """How a tool is presented to the agents: DESIGN §2's `{name, description, usage}`."""

    name: str
    description: str
    usage: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "description": self.description, "usage": self.usage}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], where: str = "") -> "ToolSpec":
        """Validate one JSON object; `where` prefixes the error (e.g. "tools.json: entry 2")."""
        prefix = f"{where}: " if where else ""
        if not isinstance(obj, Mapping):
            raise ConfigError(f"{prefix}a tool spec must be an object with {', '.join(_FIELDS)}; "
                              f"got {type(obj).__name__}")
        missing = [key for key in _FIELDS if key not in obj]
        if missing:
            raise ConfigError(f"{prefix}tool spec is missing {', '.join(missing)}")
        for key in _FIELDS:
            if not isinstance(obj[key], str):
                raise ConfigError(f"{prefix}tool spec field {key!r} must be a string, "
                                  f"got {type(obj[key]).__name__}")
        name = obj["name"].strip()
        if not _NAME.match(name):
            raise ConfigError(f"{prefix}tool name {obj['name']!r} must be a word "
                              "(letters, digits, underscores; starting with a letter)")
        return cls(name=name, description=obj["description"].strip(), usage=obj["usage"].strip())


@dataclass
class ToolContext:
    """What a tool sees besides its argument: the task row and the episode's scratch memory.

    `memory` must stay JSON-serialisable; tools may read and update it in place (the toolbox
    hands each call its own copy).
    """

    row: Mapping[str, Any]
    memory: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Tool(Protocol):
    """A tool turns an argument into an observation string; it should not raise."""

    spec: ToolSpec

    def run(self, argument: str, ctx: ToolContext) -> str: ...
