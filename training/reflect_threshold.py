"""Where the reflect agent's scored verdict turns from right to wrong, chosen on synthesized verdicts.

A scored verdict is "right" when log p(right) - log p(wrong) (the margin) reaches a threshold,
0 by default. A small model's margins sit above 0 for nearly every answer, so it says right to
everything even when its margins rank right answers above wrong ones. Here the trained reflect
adapter scores verdict pairs (`kind: verdict`: right ones from kept trajectories, wrong ones from
wrong finishes), whose labels come from the self-instructed answers, never from evaluation data:
those differentiation held out of its training (`reflect.heldout.jsonl`, `differentiate --hold-out-verdicts`)
when there are any, else the pairs it was trained on (`reflect.jsonl`), whose margins are more
separated than new ones'. The threshold that best separates them (largest right-kept + wrong-caught - 1,
Youden's J) is written beside the adapter as `verdict_threshold.json`, with how many pairs it rests on
and whether they were held out; `autoact eval --group` then applies it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from agents.llm import CompletionModel
from agents.reflect import verdict_margin
from core.errors import ConfigError
from core.jsonl import iter_jsonl
from training.dataset import HELD_OUT_FILE

__all__ = ["THRESHOLD_FILE", "ThresholdFit", "fit_and_save", "fit_pairs", "fit_threshold", "load_threshold",
           "pair_margins", "save_threshold", "verdict_pairs"]

THRESHOLD_FILE = "verdict_threshold.json"
_VERDICTS = ("right]", "wrong]")


@dataclass(frozen=True)
class ThresholdFit:
    """The chosen threshold and how it separates the pairs it was chosen on."""

    threshold: float
    right_kept: float  # share of right-labelled pairs at or above the threshold
    wrong_caught: float  # share of wrong-labelled pairs below it
    n_right: int
    n_wrong: int
    right_kept_at_zero: float  # the same two shares with the default threshold, for comparison
    wrong_caught_at_zero: float
    held_out: bool = False  # the pairs were kept out of the adapter's training


def verdict_pairs(data_dir: Path, name: str = "reflect.jsonl") -> list[dict[str, Any]]:
    """The verdict pairs (`kind: verdict`, completion `right]` or `wrong]`) of a dataset's `reflect.jsonl`
    (or its file `name`)."""
    path = Path(data_dir) / name
    if not path.is_file():
        raise ConfigError(f"{path}: not found (the reflect pairs `autoact differentiate` writes)")
    pairs = []
    for lineno, p in iter_jsonl(path, "reflect pairs"):
        if not isinstance(p, dict) or p.get("kind") != "verdict":
            continue
        if p.get("completion") not in _VERDICTS or not str(p.get("prompt", "")).endswith("["):
            raise ConfigError(f"{path}:{lineno}: a verdict pair must end its prompt with 'Reflect[' and complete "
                              f"it with 'right]' or 'wrong]' (got {str(p.get('completion'))!r})")
        pairs.append(p)
    return pairs


def fit_pairs(data_dir: Path) -> tuple[list[dict[str, Any]], Path, bool]:
    """The verdict pairs to fit on, their file, and whether they were held out of training: the dataset's
    held-out pairs when they hold both verdicts, else its training pairs."""
    held = Path(data_dir) / HELD_OUT_FILE
    if held.is_file():
        pairs = verdict_pairs(data_dir, HELD_OUT_FILE)
        if {p["completion"] for p in pairs} >= set(_VERDICTS):
            return pairs, held, True
    return verdict_pairs(data_dir), Path(data_dir) / "reflect.jsonl", False


def pair_margins(model: CompletionModel, pairs: Iterable[Mapping[str, Any]]) -> list[tuple[float, bool]]:
    """(margin, labelled right) of each verdict pair, scored as the reflect agent scores its verdict."""
    return [(verdict_margin(model, str(p["prompt"])), p["completion"] == "right]") for p in pairs]


def _shares(scored: Sequence[tuple[float, bool]], t: float) -> tuple[float, float]:
    right = [m for m, r in scored if r]
    wrong = [m for m, r in scored if not r]
    return sum(m >= t for m in right) / len(right), sum(m < t for m in wrong) / len(wrong)


def fit_threshold(scored: Sequence[tuple[float, bool]]) -> ThresholdFit:
    """The threshold with the largest right-kept + wrong-caught (ties: the one nearest 0).

    Candidates are 0 and the midpoints between neighbouring distinct margins, so the threshold
    never sits on a pair's own margin.
    """
    n_right, n_wrong = sum(r for _, r in scored), sum(not r for _, r in scored)
    if not n_right or not n_wrong:
        raise ConfigError(f"a threshold needs right and wrong verdict pairs (got {n_right} right, {n_wrong} wrong)")
    values = sorted({m for m, _ in scored})
    candidates = [0.0, values[0] - 1.0, values[-1] + 1.0, *((a + b) / 2 for a, b in zip(values, values[1:]))]
    best = max(candidates, key=lambda t: (round(sum(_shares(scored, t)), 9), -abs(t)))
    kept, caught = _shares(scored, best)
    kept0, caught0 = _shares(scored, 0.0)
    return ThresholdFit(round(best, 4), round(kept, 4), round(caught, 4), n_right, n_wrong, round(kept0, 4),
                        round(caught0, 4))


def save_threshold(adapter_dir: Path, fit: ThresholdFit, source: str) -> Path:
    """Write `verdict_threshold.json` beside the reflect adapter."""
    path = Path(adapter_dir) / THRESHOLD_FILE
    path.write_text(json.dumps({**asdict(fit), "source": source}, indent=2) + "\n", encoding="utf-8")
    return path


def fit_and_save(model: CompletionModel, data_dir: Path, adapter_dir: Path,
                 chosen: tuple[list[dict[str, Any]], Path, bool] | None = None) -> ThresholdFit:
    """Score `data_dir`'s verdict pairs (`fit_pairs`, or `chosen`, what it returned) with `model`, the adapter
    in `adapter_dir` served; fit the threshold and write it beside the adapter."""
    pairs, path, held_out = chosen or fit_pairs(data_dir)
    fit = replace(fit_threshold(pair_margins(model, pairs)), held_out=held_out)
    save_threshold(adapter_dir, fit, source=f"{path} scored by {model.name}")
    return fit


def load_threshold(adapter_dir: Path) -> float | None:
    """The threshold fitted for the adapter in `adapter_dir` (a group's `reflect`, …), or None when none was."""
    path = Path(adapter_dir) / THRESHOLD_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["threshold"]
        return float(value)
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: no numeric 'threshold' ({err}); fit it again with `autoact calibrate-reflect`")
