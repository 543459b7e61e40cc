"""Intervals and paired tests (evaluation/statistics.py) against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.statistics import (
    bootstrap_interval,
    compare,
    mcnemar_p,
    mean_percent,
    paired_bootstrap,
)


def test_mean_percent():
    assert mean_percent([1, 0, 1, 1]) == 75.0 and mean_percent([]) is None


def test_bootstrap_interval_is_the_percentile_interval_of_resampled_means():
    values = [1, 0, 0, 1, 1, 0, 1, 1, 1, 0]
    rng = np.random.default_rng(0)  # the module's draw, done by hand
    means = np.asarray(values, float)[rng.integers(0, 10, size=(2000, 10))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert bootstrap_interval(values) == (round(100 * lo, 2), round(100 * hi, 2))
    assert bootstrap_interval(values) == bootstrap_interval(values)  # seeded: the same every time


def test_bootstrap_interval_widths_shrink_with_n_and_cover_the_mean():
    small = bootstrap_interval([1, 0] * 3)
    large = bootstrap_interval([1, 0] * 60)
    assert small[0] <= 50 <= small[1] and large[0] <= 50 <= large[1]
    assert large[1] - large[0] < small[1] - small[0]
    # the normal approximation at n=120, p=0.5 is ±8.9 points: the bootstrap is close to it
    assert abs((large[1] - large[0]) / 2 - 100 * 1.96 * math.sqrt(0.25 / 120)) < 1.5


def test_bootstrap_interval_edge_cases():
    assert bootstrap_interval([]) is None
    assert bootstrap_interval([1, 1, 1]) == (100.0, 100.0)
    assert bootstrap_interval([0.5]) == (50.0, 50.0)


def test_mcnemar_exact_p_from_the_discordant_pairs():
    # discordant: a right only 1, b right only 5 → p = 2 * P(X <= 1), X ~ Bin(6, 1/2) = 2 * 7/64
    a = [1, 0, 0, 0, 0, 0, 1]
    b = [0, 1, 1, 1, 1, 1, 1]
    assert mcnemar_p(a, b) == pytest.approx(2 * 7 / 64)
    assert mcnemar_p([*a, 1], [*b, 0]) == pytest.approx(2 * (1 + 7 + 21) / 128)  # 2 against 5
    assert mcnemar_p([1, 0], [1, 0]) == 1.0  # no discordant pair
    assert mcnemar_p([1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]) == pytest.approx(2 / 64)
    assert mcnemar_p([1, 0, 1], [0, 1, 0]) == 1.0  # capped at 1


def test_paired_bootstrap_of_a_constant_difference():
    interval, p = paired_bootstrap([0.2, 0.4, 0.6], [0.3, 0.5, 0.7])
    assert interval == (10.0, 10.0) and p == 0.0
    assert paired_bootstrap([0.2, 0.4], [0.2, 0.4]) == ((0.0, 0.0), 1.0)


def test_compare_uses_mcnemar_for_right_wrong_and_words_the_noise():
    c = compare("correct", [0, 1, 0, 0, 1], [1, 1, 0, 1, 1])
    assert (c.n, c.reference, c.other, c.difference, c.test) == (5, 40.0, 80.0, 40.0, "McNemar (exact)")
    assert c.p == pytest.approx(0.5)  # 2 discordant pairs, both for b: 2 * 1/4
    assert not c.detectable and c.verdict() == "no difference detectable at n=5"


def test_compare_detects_a_difference_outside_the_noise():
    reference = [0] * 30 + [1] * 10
    other = [1] * 30 + [1] * 10
    c = compare("correct", reference, other)
    assert c.difference == 75.0 and c.p < 1e-6 and c.interval[0] > 0
    assert c.detectable and c.verdict().startswith("higher (p=")
    worse = compare("correct", other, reference)
    assert worse.verdict().startswith("lower")


def test_compare_on_continuous_scores_uses_the_paired_bootstrap():
    c = compare("f1", [0.5, 0.2, 0.0, 0.4], [0.6, 0.2, 0.1, 0.5])
    assert c.test == "paired bootstrap" and c.difference == 7.5
    assert compare("f1", [], []).verdict() == "no questions in common"
    with pytest.raises(ValueError):
        compare("f1", [1.0], [])
