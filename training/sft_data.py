"""Supervised fine-tuning data: prompt/completion pairs → token ids with the loss on the completion only.

The prompt is tokenized on its own, exactly as the serving worker tokenizes a
completion request's prompt, and the completion's tokens follow it: that is
the token sequence the model produces at inference (it continues the prompt's
tokens), so training and serving agree token for token. Labels are -100 on
every prompt token. A pair longer than `max_length` loses the start of its
prompt, never its completion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from core.errors import DataError
from core.jsonl import iter_jsonl

IGNORE_INDEX = -100

__all__ = ["IGNORE_INDEX", "PairCollator", "encode_pair", "load_pairs"]


def load_pairs(path: str | Path) -> list[dict[str, str]]:
    """`{prompt, completion}` rows of a role's JSONL file; a bad line fails with FILE:LINE."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: training data file not found")
    pairs: list[dict[str, str]] = []
    for lineno, row in iter_jsonl(path, "training data"):
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) \
                or not isinstance(row.get("completion"), str):
            raise DataError(f"{path}:{lineno}: a training pair needs string fields 'prompt' and 'completion'")
        if not row["completion"]:
            raise DataError(f"{path}:{lineno}: empty completion (nothing to learn)")
        pairs.append({"prompt": row["prompt"], "completion": row["completion"]})
    if not pairs:
        raise DataError(f"{path}: no training pairs")
    return pairs


def encode_pair(tokenizer: Any, prompt: str, completion: str, max_length: int) -> dict[str, Any]:
    """`input_ids`, `labels` (-100 on the prompt), `attention_mask` and whether the prompt was cut."""
    prompt_ids = list(tokenizer(prompt).input_ids)
    completion_ids = list(tokenizer(completion, add_special_tokens=False).input_ids)
    completion_ids = completion_ids[:max_length]
    room = max_length - len(completion_ids)
    truncated = len(prompt_ids) > room
    if truncated:
        prompt_ids = prompt_ids[len(prompt_ids) - room:] if room > 0 else []
    ids = prompt_ids + completion_ids
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
            "attention_mask": [1] * len(ids), "truncated": truncated}


@dataclass
class PairCollator:
    """Pads a batch of encoded pairs on the right (labels with -100)."""

    pad_token_id: int

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> "torch.Tensor":
            return torch.tensor([list(f[key]) + [value] * (width - len(f[key])) for f in features])

        return {"input_ids": pad("input_ids", self.pad_token_id), "labels": pad("labels", IGNORE_INDEX),
                "attention_mask": pad("attention_mask", 0)}
