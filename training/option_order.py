"""Multiple-choice labels that follow content, not position: the option-order check and the shuffle.

A small model scoring lettered options prefers some positions whatever they
say (the embedded model's self-instructed answers were "D" in 15 of 31
items). A label it gives for that reason teaches a letter, not the subject.
So a self-instructed item is scored again with its options in other orders:
cyclic shifts first (each moves every option to a new letter), then random
orders. The item is kept when the option chosen in the original order is the
one chosen under at least `min_agreement` of the shuffles, and the share that
agreed is recorded. A kept item's options are then put in a random order, so
the answer letters of the generated data are uniform.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from agents.llm import CompletionModel
from core.answers import letter_index
from training.answer_scoring import Norm
from training.instruct_parsing import LETTERS, question_stem, render_options

__all__ = ["OrderCheck", "check_option_order", "orders", "scored_option", "shuffle_options"]


@dataclass(frozen=True)
class OrderCheck:
    """How self-instructed multiple-choice items are checked and reordered."""

    permutations: int = 3  # other option orders scored; 0 turns the check off
    min_agreement: float = 1.0  # share of those orders that must pick the same option
    shuffle: bool = True  # a kept item's options are put in a random order
    norm: Norm = "char"


def scored_option(model: CompletionModel, text: str, options: Sequence[str], norm: Norm = "char") -> int:
    """The index of the option the model finds likeliest after `text` (which ends with `Answer:`)."""
    candidates = [f" {LETTERS[i]}. {o}" for i, o in enumerate(options)]
    scores = model.score(text, candidates)
    if len(scores) != len(candidates):
        raise ValueError(f"the model returned {len(scores)} scores for {len(candidates)} options")
    if norm == "char":
        scores = [s / max(len(c), 1) for s, c in zip(scores, candidates)]
    return max(range(len(options)), key=lambda k: (scores[k], -k))


def orders(n: int, count: int, rng: random.Random) -> list[list[int]]:
    """Up to `count` distinct orders of `n` options other than the original: cyclic shifts, then random ones.

    `order[j]` is the original index of the option shown at position j.
    """
    found = [[(j + s) % n for j in range(n)] for s in range(1, n)][:count]
    if len(found) < count:
        rest = [list(p) for p in itertools.permutations(range(n)) if list(p) not in found and list(p) != list(range(n))]
        rng.shuffle(rest)
        found += rest[:count - len(found)]
    return found


def check_option_order(model: CompletionModel, render: Callable[[Sequence[str]], str], options: Sequence[str],
                       answer: int, check: OrderCheck, rng: random.Random, *, original: bool = False) -> float:
    """The share of other option orders under which the model still picks option `answer`.

    `render(options)` is the scoring text with the options in that order. `original`
    scores the given order too (for an answer the model wrote rather than scored).
    1.0 when there is no order to try (`check.permutations` is 0).
    """
    tried = orders(len(options), check.permutations, rng) if check.permutations else []
    if original and tried:
        tried = [list(range(len(options))), *tried]
    if not tried:
        return 1.0
    agreed = sum(order[scored_option(model, render([options[i] for i in order]), [options[i] for i in order],
                                     check.norm)] == answer for order in tried)
    return agreed / len(tried)


def shuffle_options(item: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """The item with its `choices` in a random order, the `Options:` line and the answer letter following."""
    choices = list(item["choices"])
    order = list(range(len(choices)))
    rng.shuffle(order)
    answer = order.index(letter_index(str(item["answer"]).strip()))
    shuffled = [choices[i] for i in order]
    question = f"{question_stem(str(item['question']))}\nOptions: {render_options(shuffled)}"
    return {**item, "question": question, "choices": shuffled, "answer": LETTERS[answer]}
