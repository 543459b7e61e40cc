"""The token estimate (core/tokens.py) used where no tokenizer is at hand."""

from __future__ import annotations

import pytest

from core.tokens import CHARS_PER_TOKEN, ESTIMATE_NAME, estimate_tokens, estimated_count


def test_estimate_is_characters_over_the_ratio():
    assert CHARS_PER_TOKEN == 3.5
    assert estimate_tokens("x" * 35) == pytest.approx(10.0)
    assert estimate_tokens("") == 0.0
    assert estimate_tokens("abcd", chars_per_token=2.0) == pytest.approx(2.0)


def test_estimated_count_rounds_and_is_at_least_one():
    assert estimated_count("") == 1 and estimated_count("a") == 1
    assert estimated_count("x" * 35) == 10
    assert estimated_count("x" * 37) == 11  # 10.57 rounds up
    assert isinstance(estimated_count("x" * 36), int)


def test_estimate_name_mentions_the_ratio():
    assert ESTIMATE_NAME == "estimated (chars/3.5)"
    assert f"{CHARS_PER_TOKEN:g}" in ESTIMATE_NAME
