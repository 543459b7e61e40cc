"""Yardsticks for scores over questions: bootstrap intervals, paired tests, and how to word a difference.

Every score is a mean over questions of a per-question value (1/0 for a right answer, a token F1 in
[0, 1]), reported in percent. Its 95% interval is the percentile bootstrap over questions (the
questions are the sample). Two evaluations are compared on the questions both answered: McNemar's
exact test when the values are 1/0, a paired bootstrap of the mean difference otherwise. Every
draw is seeded, so the same results give the same intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 0


def mean_percent(values: Sequence[float]) -> float | None:
    return round(100 * sum(values) / len(values), 2) if values else None


def bootstrap_interval(values: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL,
                       seed: int = SEED) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the mean of `values`, in percent; None without values."""
    if not values:
        return None
    data = np.asarray(values, dtype=float)
    if np.all(data == data[0]):  # no spread: every resample has the same mean
        return round(100 * float(data[0]), 2), round(100 * float(data[0]), 2)
    return _percentiles(_resampled_means(data, resamples, seed), level)


def _resampled_means(data: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The means of `resamples` draws of len(data) values with replacement, seeded."""
    rng = np.random.default_rng(seed)
    return data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)


def _percentiles(means: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` interval of resampled means, in percent."""
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return round(100 * float(lo), 2), round(100 * float(hi), 2)


def mcnemar_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sided McNemar p-value for paired 1/0 outcomes (only the discordant pairs count)."""
    only_a = sum(1 for x, y in zip(a, b) if x >= 1 > y)
    only_b = sum(1 for x, y in zip(a, b) if y >= 1 > x)
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL,
                     seed: int = SEED) -> tuple[tuple[float, float], float]:
    """The interval of the mean of `b - a` (percent points) and a two-sided bootstrap p-value for no difference.

    The p-value is the share of resampled mean differences, centred on zero, at least as far from
    zero as the one observed.
    """
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if len(d) == 0:
        return (0.0, 0.0), 1.0
    observed = float(d.mean())
    if np.all(d == d[0]):
        return (round(100 * observed, 2), round(100 * observed, 2)), 1.0 if observed == 0 else 0.0
    means = _resampled_means(d, resamples, seed)
    p = float(np.mean(np.abs(means - observed) >= abs(observed) - 1e-12))
    return _percentiles(means, level), p


@dataclass(frozen=True)
class Comparison:
    """`other` against `reference` on the questions both answered, for one metric (points are percent)."""

    metric: str
    n: int  # paired questions
    reference: float | None  # mean of the reference on those questions
    other: float | None
    difference: float | None  # other - reference
    interval: tuple[float, float] | None  # of the difference
    p: float | None
    test: str  # "McNemar (exact)" or "paired bootstrap"

    @property
    def detectable(self) -> bool:
        """Whether the difference is outside the noise: p < 0.05 and the interval excludes zero."""
        return (self.p is not None and self.p < 0.05 and self.interval is not None
                and not self.interval[0] <= 0 <= self.interval[1])

    def verdict(self) -> str:
        """The difference in words, never more than the data carry."""
        if not self.n or self.difference is None:
            return "no questions in common"
        if not self.detectable:
            return f"no difference detectable at n={self.n}"
        return f"{'higher' if self.difference > 0 else 'lower'} (p={self.p:.3g}, n={self.n})"


def compare(metric: str, reference: Sequence[float], other: Sequence[float]) -> Comparison:
    """Compare two evaluations' per-question values of `metric`, in the same question order."""
    if len(reference) != len(other):
        raise ValueError("paired values must be as many on both sides")
    n = len(reference)
    if not n:
        return Comparison(metric, 0, None, None, None, None, None, "none")
    interval, p_boot = paired_bootstrap(reference, other)
    binary = all(v in (0.0, 1.0) for v in (*reference, *other))
    p = mcnemar_p(reference, other) if binary else p_boot
    ref, oth = mean_percent(reference), mean_percent(other)
    assert ref is not None and oth is not None
    return Comparison(metric, n, ref, oth, round(oth - ref, 2), interval, round(p, 4),
                      "McNemar (exact)" if binary else "paired bootstrap")
