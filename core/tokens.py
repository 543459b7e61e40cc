"""The token estimate used where no tokenizer is at hand (context budgets, dataset stats)."""

from __future__ import annotations

CHARS_PER_TOKEN = 3.5  # English prose in a BPE vocabulary of SmolLM2's size; an estimate, not a count
ESTIMATE_NAME = f"estimated (chars/{CHARS_PER_TOKEN:g})"  # how stats name counts made by `estimated_count`


def estimate_tokens(text: str, chars_per_token: float = CHARS_PER_TOKEN) -> float:
    """About how many tokens `text` is."""
    return len(text) / chars_per_token


def estimated_count(text: str) -> int:
    """`estimate_tokens` as a whole count of at least 1 (for length statistics)."""
    return max(1, round(estimate_tokens(text)))
