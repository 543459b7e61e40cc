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
    #: whether answers are chosen among a row's options (then `answer_choices` and `chance` say more)
    closed_options: bool = False

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

    def chance(self, row: Mapping[str, Any]) -> dict[str, float]:
        """What answering without looking scores on this row, per way of guessing ({} for open answers)."""
        return {}

    @abstractmethod
    def group(self, row: Mapping[str, Any]) -> str:
        """The breakdown bucket of a row (difficulty level, grade band)."""

    #: metrics averaged in summaries
    metrics: tuple[str, ...]
    #: the metric recorded as an episode's reward (trajectory filtering keeps reward 1)
    reward_metric: str

    def summarize(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Overall and per-group means of the metrics over result rows (one per question).

        A row that ended in an error was not answered: it is counted in `errors`, not scored
        as a wrong answer. Each metric is the mean over the `answered` rows (None when there
        are none); `all_rows` holds the same metrics over all `n` rows with errors counted as
        wrong (a lower bound).
        """
        def means(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
            answered = [r for r in items if not r.get("error")]
            out: dict[str, Any] = {"n": len(items), "answered": len(answered), "errors": len(items) - len(answered)}
            for m in self.metrics:
                out[m] = _percent(answered, m)
            out["all_rows"] = {m: _percent(items, m) for m in self.metrics}
            return out

        summary = {"task": self.name, **means(rows)}
        summary["groups"] = {g: means(items) for g, items in group_rows(rows).items()}
        summary["halted"] = sum(1 for r in rows if r.get("halted"))
        return summary


def group_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Result rows by their `group` (rows without one: `all`), groups in sorted order."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r.get("group", "all")), []).append(r)
    return dict(sorted(groups.items()))


def _percent(rows: Sequence[Mapping[str, Any]], metric: str) -> float | None:
    """The mean of `metric` over `rows` in percent (an errored row scores 0); None for no rows."""
    if not rows:
        return None
    return round(100 * sum(0.0 if r.get("error") else float(r.get(metric) or 0) for r in rows) / len(rows), 2)


def optional_fields(row: Mapping[str, Any], kinds: Mapping[str, type | tuple[type, ...]]) -> str | None:
    """What is wrong with the optional fields of a row (absent or null is fine), or None."""
    for key, kind in kinds.items():
        if row.get(key) is not None and not isinstance(row[key], kind):
            return f"field {key!r} should be {_kind_name(kind)}, got {type(row[key]).__name__}"
    return None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"str": "a string", "list": "a list", "dict": "an object", "int": "an integer"}
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)
