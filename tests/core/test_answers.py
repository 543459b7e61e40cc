"""Metrics against hand-computed values."""

import pytest

from core.answers import choose_option, exact_match, f1_score, normalize_answer


def test_normalization():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple, a pear") == "apple pear"


@pytest.mark.parametrize("pred,gold,em,f1", [
    ("Badr Hari", "Badr Hari", 1.0, 1.0),
    ("the Badr Hari.", "Badr Hari", 1.0, 1.0),
    ("Hari", "Badr Hari", 0.0, 2 * (1.0 * 0.5) / 1.5),          # p=1, r=1/2 -> 2/3
    ("Badr Hari kickboxer", "Badr Hari", 0.0, 2 * (2 / 3 * 1.0) / (2 / 3 + 1)),  # p=2/3, r=1 -> 0.8
    ("yes", "no", 0.0, 0.0),
    ("yes it is", "yes", 0.0, 0.0),   # yes/no rule: "yes it is" != "yes" -> F1 0, not 0.67
    ("no", "no", 1.0, 1.0),
    ("Manhattan", "yes", 0.0, 0.0),
    ("", "Paris", 0.0, 0.0),
])
def test_em_and_f1(pred, gold, em, f1):
    assert exact_match(pred, gold) == em
    assert f1_score(pred, gold) == pytest.approx(f1)


CHOICES = ["Harrisburg", "Dover", "Wilmington", "Georgetown"]


@pytest.mark.parametrize("pred,idx", [
    ("B", 1), ("(B)", 1), ("B.", 1), ("B. Dover", 1), ("Dover", 1), ("dover", 1),
    ("The answer is C", 2), ("Wilmingtn", 2), ("B. Wilmington", 2), ("", None), ("Zebra crossing", None),
])
def test_choose_option(pred, idx):
    assert choose_option(pred, CHOICES) == idx
