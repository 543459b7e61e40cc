"""The option-order check and shuffle of self-instructed multiple-choice items."""

from __future__ import annotations

import random
from collections import Counter

from training.option_order import OrderCheck, check_option_order, orders, scored_option, shuffle_options


class ContentModel:
    """Scores the option naming `liked` highest wherever it stands (or, with `position`, the option at a letter)."""

    def __init__(self, liked: str = "", position: str = "") -> None:
        self.liked, self.position, self.calls = liked, position, 0

    def score(self, prompt: str, candidates):
        self.calls += 1
        want = self.liked or f" {self.position}."
        return [0.0 if want in c else -1.0 for c in candidates]


def test_orders_are_distinct_shifts_first_and_never_the_original():
    rng = random.Random(0)
    assert orders(2, 3, rng) == [[1, 0]]  # two options have one other order
    four = orders(4, 5, rng)
    assert four[:3] == [[1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]]
    assert len({tuple(o) for o in four}) == 5 and [0, 1, 2, 3] not in four
    assert all(sorted(o) == [0, 1, 2, 3] for o in four)
    assert orders(3, 0, rng) == []


def test_agreement_is_the_share_of_other_orders_picking_the_same_content():
    options = ["frog", "camel", "whale"]
    render = lambda opts: "Options: " + ", ".join(opts) + "\nAnswer:"  # noqa: E731
    check = OrderCheck(permutations=2)
    content = ContentModel(liked="whale")
    assert check_option_order(content, render, options, 2, check, random.Random(0)) == 1.0
    assert content.calls == 2
    biased = ContentModel(position="A")  # frog at (A) first; the two shifts put camel, whale there
    assert check_option_order(biased, render, options, 0, check, random.Random(0)) == 0.0
    assert check_option_order(biased, render, options, 0, OrderCheck(permutations=0), random.Random(0)) == 1.0
    # a written answer is scored in its own order too: the biased model agrees there only
    assert check_option_order(biased, render, options, 0, check, random.Random(0), original=True) == 1 / 3


def test_scored_option_breaks_ties_to_the_first_and_normalises_by_length():
    class Fixed:
        def __init__(self, scores):
            self.scores = scores

        def score(self, prompt, candidates):
            return list(self.scores)

    assert scored_option(Fixed([-1.0, -1.0]), "Answer:", ["a", "b"], "none") == 0
    # " A. x" (5 chars) at -5 is -1 per char; " B. longer" (10 chars) at -6 is -0.6: B wins only normalised
    assert scored_option(Fixed([-5.0, -6.0]), "Answer:", ["x", "longer"], "char") == 1
    assert scored_option(Fixed([-5.0, -6.0]), "Answer:", ["x", "longer"], "none") == 0


def test_shuffle_keeps_the_answer_content_and_spreads_the_letters():
    item = {"question": "Which is a whale?\nOptions: (A) orca (B) cod (C) eel (D) carp", "choices":
            ["orca", "cod", "eel", "carp"], "answer": "A", "caption": "no img"}
    letters = Counter()
    for k in range(400):
        out = shuffle_options(item, random.Random(k))
        assert out["choices"][ord(out["answer"]) - 65] == "orca" and sorted(out["choices"]) == sorted(item["choices"])
        assert out["question"] == "Which is a whale?\nOptions: " + " ".join(
            f"({'ABCD'[i]}) {c}" for i, c in enumerate(out["choices"]))
        assert out["caption"] == "no img"
        letters[out["answer"]] += 1
    assert set(letters) == set("ABCD") and all(70 <= n <= 130 for n in letters.values())  # 100 expected each
