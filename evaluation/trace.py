"""Step traces: each node's update as a readable line and as a JSONL record."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.text import Text


def trace_event(node: str, update: dict[str, Any], step: int) -> dict[str, Any] | None:
    """A flat record of what `node` just did (None for updates with nothing to show)."""
    event: dict[str, Any] = {"node": node, "step": step}
    if node == "plan":
        if update.get("halted"):
            return {**event, "node": "halt", "reason": update.get("halt_reason")}
        pending = update.get("pending") or {}
        event.update(thought=pending.get("thought", ""), action=pending.get("action", ""))
        if pending.get("error"):
            event["error"] = pending["error"]
    elif node == "tool":
        pending = update.get("pending") or {}
        event.update(action=pending.get("action", ""), argument=pending.get("argument", ""))
    elif node in ("execute", "reflect"):
        steps = update.get("steps") or []
        if not steps:
            return None
        s = steps[-1]
        event.update(action=s.get("action", ""), argument=s.get("argument", ""),
                     observation=s.get("observation", ""))
        if node == "reflect":
            event["thought"] = s.get("thought", "")
    elif node == "halt":
        event.update(reason=update.get("halt_reason"), answer=update.get("answer"))
    else:
        return None
    return event


@dataclass
class Tracer:
    """Prints events as they happen and/or appends them to a JSONL file; thread-safe."""

    console: Console | None = None
    jsonl: Path | None = None
    _file: TextIO | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.jsonl is not None:
            self.jsonl.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.jsonl.open("a", encoding="utf-8")

    def emit(self, event: dict[str, Any], episode: str | None = None) -> None:
        with self._lock:
            if self._file is not None:
                record = {"episode": episode, **event} if episode else event
                self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
                self._file.flush()
            if self.console is not None:
                self.console.print(Text.from_markup(format_event(event, episode)), highlight=False)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_STYLE = {"plan": "cyan", "tool": "magenta", "execute": "green", "reflect": "yellow", "halt": "red"}


def format_event(event: dict[str, Any], episode: str | None = None) -> str:
    node = event["node"]
    head = f"[{_STYLE.get(node, 'white')}]{escape(f'[{episode}] ') if episode else ''}" \
           f"step {event['step']} {node:<7}[/]"
    if node == "plan":
        text = f"Thought: {event.get('thought', '')}  →  Action: {event.get('action') or '?'}"
        if event.get("error"):
            text += f"  ({event['error']})"
    elif node == "tool":
        text = f"{event.get('action')}[{event.get('argument', '')}]"
    elif node == "halt":
        text = f"halted ({event.get('reason')}); answer: {event.get('answer')!r}"
    else:
        text = f"{event.get('action')}[{event.get('argument', '')}] → {event.get('observation', '')}"
        if event.get("thought"):
            text = f"Thought: {event['thought']}  →  " + text
    return f"{head} {escape(text)}"
