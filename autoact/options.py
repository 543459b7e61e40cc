"""Command-line option types and options shared by several commands: bad values are refused by name."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

from core.errors import ConfigError


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `low`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    parse.__name__ = "whole number"
    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)


def finite_float(low: float = 0.0, *, inclusive: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number above `low` (or at least `low` when `inclusive`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {'at least' if inclusive else 'more than'} {low:g}, "
                                             f"got {value:g}")
        return value
    parse.__name__ = "number"
    return parse


def share(text: str) -> float:
    """An argparse type: a share of a whole, at least 0 and under 1."""
    value = finite_float(0.0, inclusive=True)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be under 1, got {value:g}")
    return value


def out_directory(path: str, option: str = "--out") -> Path:
    """`path` as an output directory; ConfigError when it names an existing file."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out}: a file is there; give a directory (it is created if missing)")
    return out


def out_file(path: str, option: str = "--out") -> Path:
    """`path` as an output file; ConfigError when it names a directory."""
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{option} {out}: a directory is there; give a file name (e.g. {out / 'rows.jsonl'})")
    return out


def add_timeout_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=finite_float(0.0, inclusive=True), default=300.0,
                   help="deadline of one model request in seconds, its retries included (0: no deadline); a row "
                        "whose request fails is recorded as an error and retried by the next run")
