"""ScienceQA: multiple-choice science questions with an image caption and OCR, scored by accuracy."""

from __future__ import annotations

from typing import Any, Mapping

from core.answers import choose_option, letter_index
from tasks.base import Task, optional_fields

GRADE_BANDS = ((1, 4), (5, 8), (9, 12))


class ScienceQA(Task):
    name = "scienceqa"
    description = ("Answer multiple-choice science questions for school grades 1-12; many questions come "
                   "with an image (a picture, map or diagram) that holds information needed to choose.")
    required = {"id": (str, int), "question": str, "choices": list, "answer": str}
    metrics = ("correct",)
    closed_options = True
    reward_metric = "correct"

    def validate_more(self, row: dict) -> str | None:
        choices = row["choices"]
        if len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            return "field 'choices' should list at least two option strings"
        answer = row["answer"].strip()
        if len(answer) != 1 or not 0 <= letter_index(answer) < len(choices):
            return f"field 'answer' should be an option letter A-{chr(64 + len(choices))}, got {row['answer']!r}"
        return optional_fields(row, {"caption": str, "ocr": (str, list), "metadata": dict})

    def gold(self, row: Mapping[str, Any]) -> str:
        idx = letter_index(row["answer"].strip())
        return f"{row['answer'].strip()}. {row['choices'][idx]}"

    def answer_choices(self, row: Mapping[str, Any]) -> list[str]:
        return [f"{chr(65 + i)}. {c}" for i, c in enumerate(row["choices"])]

    def score(self, prediction: str, row: Mapping[str, Any]) -> dict[str, float]:
        chosen = choose_option(prediction, row["choices"])
        return {"correct": float(chosen is not None and chosen == letter_index(row["answer"].strip()))}

    def chance(self, row: Mapping[str, Any]) -> dict[str, float]:
        """A uniform guess among the options, and always answering the first option (A)."""
        return {"uniform": 1 / len(row["choices"]), "first_option": float(row["answer"].strip().upper() == "A")}

    def group(self, row: Mapping[str, Any]) -> str:
        grade = (row.get("metadata") or {}).get("grade")
        try:
            grade = int(str(grade).removeprefix("grade"))
        except (TypeError, ValueError):
            return "unknown"
        for lo, hi in GRADE_BANDS:
            if lo <= grade <= hi:
                return f"grade{lo}-{hi}"
        return "unknown"
