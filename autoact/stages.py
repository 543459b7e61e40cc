"""The stages that both the command line and the pipeline run, written once, taking plain values.

- `differentiate_file`: a trajectories file → `plan/tool/reflect.jsonl` and `stats.json` in a directory;
- `train_roles`: one LoRA adapter per role from the role files of one or more dataset directories;
- building an agent is `autoact.assembly.build_agent`, evaluating one `evaluation.runner.evaluate`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from core.roles import ALL, ROLES
from core.tokens import ESTIMATE_NAME, estimated_count
from prompts.builder import prompts_version
from tools.base import ToolSpec
from training.dataset import read_trajectories, write_dataset
from training.differentiate import differentiate
from training.lora import TrainConfig, TrainReport, train_adapter


def differentiate_file(trajectories: Path, out: Path, tools: Sequence[ToolSpec], *, min_reward: float = 1.0,
                       max_trajectories: int | None = 200, unfiltered: bool = False,
                       reflect_negatives: bool = True, negative_ratio: float = 1.0, hold_out: float = 0.0,
                       count: Callable[[str], int] = estimated_count, count_name: str = ESTIMATE_NAME,
                       source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Keep the right trajectories of `trajectories`, cut them into role pairs in `out`; returns the stats."""
    rows = read_trajectories(trajectories)
    data = differentiate(rows, tools, min_reward, max_trajectories, unfiltered=unfiltered,
                         reflect_negatives=reflect_negatives, negative_ratio=negative_ratio, hold_out=hold_out)
    extra = {k: v for k, v in (source or {}).items() if k != "trajectories"}  # the file read is the file named
    record = {"trajectories": str(trajectories), **extra, "prompts_version": prompts_version(),
              "min_reward": min_reward, "max_trajectories": max_trajectories, "unfiltered": unfiltered,
              "reflect_negatives": reflect_negatives and not unfiltered, "negative_ratio": negative_ratio,
              "hold_out_verdicts": hold_out, "token_counts": count_name}
    return write_dataset(out, data, len(rows), record, count)


def _has_pairs(path: Path) -> bool:
    return path.is_file() and bool(path.read_bytes().strip())


def role_files(role: str, data_dirs: Sequence[Path]) -> list[Path]:
    """The non-empty pair files of `role` (`all`: of every role) in each dataset directory, in order."""
    roles = ROLES if role == ALL else (role,)
    return [f for d in data_dirs for f in (Path(d) / f"{r}.jsonl" for r in roles) if _has_pairs(f)]


def train_roles(roles: Sequence[str], data_dirs: Sequence[Path], out: Path, base: Path, config: TrainConfig, *,
                resume: bool = False, overwrite: bool = False, progress: bool = True,
                init_from: Path | None = None,
                on_start: Callable[[str, list[Path], Path], None] | None = None) -> dict[str, TrainReport | None]:
    """Train `out/ROLE` for each role on its files; a role without pairs maps to None (nothing trained).

    `init_from`: continue each role's adapter found there instead of starting a fresh LoRA.
    """
    reports: dict[str, TrainReport | None] = {}
    for role in roles:
        files = role_files(role, data_dirs)
        if not files:
            reports[role] = None
            continue
        init = init_from / role if init_from and (init_from / role).is_dir() else None
        if on_start:
            on_start(role, files, out / role)
        reports[role] = train_adapter(files, out / role, base, replace(config, init_adapter=str(init) if init else None),
                                      resume=resume, overwrite=overwrite, progress=progress)
    return reports
