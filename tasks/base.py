"""The task interface: one agent, a task object, a tool registry (no per-dataset agents)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence


class Task(ABC):
    """What the runtime and the evaluator need to know about a benchmark."""

    name: str
    #: what the task asks of an agent, in a sentence or two (shown to the Meta-Agent for tool selection)
    description: str
    #: fields every row must carry, with the type each must have
    required: Mapping[str, type | tuple[type, ...]]
    #: fields that reveal the answer; never shown to agents
    gold_fields: tuple[str, ...] = ("answer",)

    def validate(self, row: Any) -> str | None:
        """Return what is wrong with a row, or None when it is usable."""
        if not isinstance(row, dict):
            return f"expected a JSON object, got {type(row).__name__}"
        for key, kind in self.required.items():
            if key not in row:
                return f"missing field {key!r}"
            if not isinstance(row[key], kind):
                return f"field {key!r} should be {_kind_name(kind)}, got {type(row[key]).__name__}"
        return self.validate_more(row)

    def validate_more(self, row: dict) -> str | None:
        return None

    def inputs(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row as the agents may see it (gold fields removed)."""
        return {k: v for k, v in row.items() if k not in self.gold_fields and k != "supporting_facts"}

    def question_text(self, row: Mapping[str, Any]) -> str:
        return str(row["question"]).strip()

    def answer_choices(self, row: Mapping[str, Any]) -> list[str] | None:
        """Closed answer candidates for Finish, when the task has them."""
        return None

    @abstractmethod
    def gold(self, row: Mapping[str, Any]) -> str: ...

    @abstractmethod
    def score(self, prediction: str, row: Mapping[str, Any]) -> dict[str, float]:
        """Metric values of one prediction; must contain `self.reward_metric`."""

    @abstractmethod
    def group(self, row: Mapping[str, Any]) -> str:
        """The breakdown bucket of a row (difficulty level, grade band)."""

    #: metrics averaged in summaries
    metrics: tuple[str, ...]
    #: the metric recorded as an episode's reward (trajectory filtering keeps reward 1)
    reward_metric: str

    def summarize(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Overall and per-group means of the metrics over result rows."""
        def means(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {"n": len(items)}
            for m in self.metrics:
                out[m] = round(100 * sum(float(r.get(m) or 0) for r in items) / len(items), 2) if items else 0.0
            return out

        groups: dict[str, list[Mapping[str, Any]]] = {}
        for r in rows:
            groups.setdefault(str(r.get("group", "all")), []).append(r)
        summary = {"task": self.name, **means(rows)}
        summary["groups"] = {g: means(items) for g, items in sorted(groups.items())}
        summary["errors"] = sum(1 for r in rows if r.get("error"))
        summary["halted"] = sum(1 for r in rows if r.get("halted"))
        return summary


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"str": "a string", "list": "a list", "dict": "an object", "int": "an integer"}
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)
