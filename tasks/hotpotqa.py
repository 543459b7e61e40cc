"""HotpotQA: multi-hop questions over Wikipedia paragraphs, scored by EM and token F1."""

from __future__ import annotations

from typing import Any, Mapping

from core.answers import exact_match, f1_score
from tasks.base import Task, optional_fields


class HotpotQA(Task):
    name = "hotpotqa"
    description = ("Answer multi-hop questions about people, places, works and events: the answer is a short "
                   "phrase, found by combining facts from two encyclopedia pages.")
    required = {"id": (str, int), "question": str, "answer": str}
    metrics = ("em", "f1")
    reward_metric = "f1"

    def validate_more(self, row: dict) -> str | None:
        context = row.get("context", [])
        if not isinstance(context, list):
            return "field 'context' should be a list of [title, [sentence, ...]]"
        for i, item in enumerate(context):
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], list) and all(isinstance(s, str) for s in item[1])):
                return f"context[{i}] should be [title, [sentence, ...]]"
        facts = row.get("supporting_facts")
        if facts is not None and not (isinstance(facts, list) and all(_is_fact(f) for f in facts)):
            return "field 'supporting_facts' should be a list of [title, sentence number]"
        return optional_fields(row, {"level": str, "type": str})

    def gold(self, row: Mapping[str, Any]) -> str:
        return str(row["answer"])

    def score(self, prediction: str, row: Mapping[str, Any]) -> dict[str, float]:
        gold = self.gold(row)
        return {"em": exact_match(prediction, gold), "f1": f1_score(prediction, gold)}

    def group(self, row: Mapping[str, Any]) -> str:
        return str(row.get("level") or "unknown")

    def inputs(self, row: Mapping[str, Any]) -> dict[str, Any]:
        # The context paragraphs feed the docstore, not the prompt.
        return {k: v for k, v in super().inputs(row).items() if k != "context"}


def _is_fact(fact: Any) -> bool:
    """A supporting fact: `[page title, sentence number]`."""
    return isinstance(fact, list) and len(fact) == 2 and isinstance(fact[0], str) and isinstance(fact[1], int)
