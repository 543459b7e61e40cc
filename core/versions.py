"""Installed versions of the packages a run depends on, for the records runs write."""

from __future__ import annotations

import importlib.metadata as md
from typing import Iterable


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """`{package: version}` for each installed package of `packages` (missing ones are left out)."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out
