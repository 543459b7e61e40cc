"""The learning curve: groups trained on nested subsets of one pool of kept trajectories.

`pipeline --curve 25,50,100,200` cuts, for each size k below the number kept, the first k
kept trajectories of the run's one synthesized pool into `data-curve/k` (the same filter,
`differentiate --max-trajectories k`), trains `adapters-curve/k/ROLE`, serves them as
`curveK-ROLE` beside the group, and evaluates them on the run's evaluation questions. With the
zero-shot Meta-Agent (0 kept) and AutoAct (all kept), `run.json`'s `curve` lists the points and
the report plots score against kept trajectories with intervals: whether more data would help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from autoact.ablations import Variant
from autoact.assembly import RoleModels
from core.roles import ROLES

__all__ = ["curve_dirs", "curve_points", "curve_variants", "served_curve"]


def curve_dirs(workdir: Path, size: int) -> tuple[Path, Path]:
    """The data and adapter directories of the curve's point `size`."""
    return workdir / "data-curve" / str(size), workdir / "adapters-curve" / str(size)


def served_curve(workdir: Path, sizes: Sequence[int], trained: Callable[[Path], list[str]]) -> dict[str, Path]:
    """The curve's adapters that finished training, by served name (`curveK-ROLE`)."""
    return {f"curve{k}-{r}": curve_dirs(workdir, k)[1] / r for k in sizes for r in trained(curve_dirs(workdir, k)[1])}


def curve_variants(base: str, sizes: Sequence[int], served: dict[str, Path]) -> list[Variant]:
    """One evaluation per curve point with at least one trained role (an untrained role is the base model)."""
    out = []
    for k in sizes:
        names = [f"curve{k}-{r}" for r in ROLES]
        if any(n in served for n in names):
            out.append(Variant(f"curve-{k}", f"AutoAct ({k} kept)",
                               RoleModels(*(n if n in served else base for n in names))))
    return out


def curve_points(sizes: Sequence[int], kept: int, evaluations: dict[str, str]) -> list[dict[str, object]]:
    """The curve's points in order of kept trajectories: zero-shot (0), each size, AutoAct (all kept)."""
    points: list[dict[str, object]] = []
    if "Meta-Agent zero-shot" in evaluations:
        points.append({"kept": 0, "evaluation": "Meta-Agent zero-shot"})
    points += [{"kept": k, "evaluation": f"AutoAct ({k} kept)"} for k in sorted(sizes)
               if f"AutoAct ({k} kept)" in evaluations]
    if "AutoAct" in evaluations:
        points.append({"kept": kept, "evaluation": "AutoAct"})
    return points
