"""Writing and reading differentiated datasets: `plan.jsonl`, `tool.jsonl`, `reflect.jsonl`, `stats.json`
(and `reflect.heldout.jsonl` when verdicts are held out)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from core.errors import DataError
from core.jsonl import iter_jsonl, read_json
from core.roles import ROLES
from evaluation.results import keep_latest
from training.differentiate import Differentiated


def read_trajectories(path: Path) -> list[dict[str, Any]]:
    """One row per question of a trajectories file (its answered row, else its latest attempt).

    A malformed line fails with FILE:LINE and the field at fault.
    """
    rows: dict[str, dict[str, Any]] = {}
    for lineno, row in iter_jsonl(path, "trajectories file"):
        if problem := trajectory_problem(row):
            raise DataError(f"{path}:{lineno}: {problem}")
        keep_latest(rows, row)
    return list(rows.values())


#: the reflect pairs held out of training for fitting the verdict threshold (`differentiate(hold_out=…)`)
HELD_OUT_FILE = "reflect.heldout.jsonl"
_STEP_TEXT = ("node", "thought", "action", "argument", "observation")


def trajectory_problem(row: Any) -> str | None:
    """What is wrong with a trajectory row (as `synthesize` writes them), or None."""
    if not isinstance(row, dict):
        return f"a trajectory row should be a JSON object, got {type(row).__name__}"
    missing = [k for k in ("id", "question", "transcript") if k not in row]
    if missing:
        return f"a trajectory row needs {', '.join(missing)}"
    if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool):
        return f"field 'id' should be a string or an integer, got {type(row['id']).__name__}"
    if not isinstance(row["question"], str):
        return f"field 'question' should be a string, got {type(row['question']).__name__}"
    if not isinstance(row["transcript"], list):
        return f"field 'transcript' should be a list of steps, got {type(row['transcript']).__name__}"
    for i, step in enumerate(row["transcript"], 1):
        if not isinstance(step, dict):
            return f"transcript step {i} should be an object, got {type(step).__name__}"
        for key in _STEP_TEXT:
            if step.get(key) is not None and not isinstance(step[key], str):
                return f"transcript step {i}: field {key!r} should be a string, got {type(step[key]).__name__}"
    reward = row.get("reward")
    if reward is not None and (isinstance(reward, bool) or not isinstance(reward, (int, float))):
        return f"field 'reward' should be a number, got {reward!r}"
    for key, kind in (("halted", bool), ("error", str)):
        if row.get(key) is not None and not isinstance(row[key], kind):
            return f"field {key!r} should be {'true or false' if kind is bool else 'a string'}, got {row[key]!r}"
    return None


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
    if not lengths:
        return {"min": 0, "mean": 0, "max": 0}
    return {"min": min(lengths), "mean": round(statistics.fmean(lengths), 1), "max": max(lengths)}


def read_dataset_stats(directory: Path) -> dict[str, Any]:
    """`stats.json` of a differentiated dataset; DataError naming the file when it is missing or malformed."""
    path = directory / "stats.json"
    stats = read_json(path, "dataset stats")
    if not isinstance(stats, dict) or not isinstance(stats.get("roles"), dict) or not all(
            isinstance(v, dict) for v in stats["roles"].values()):
        raise DataError(f"{path}: not the stats of a differentiated dataset (expected an object with 'roles')")
    return stats


def write_dataset(out_dir: Path, data: Differentiated, total: int, source: dict[str, Any],
                  count_tokens: Callable[[str], int]) -> dict[str, Any]:
    """Write one JSONL file per role and `stats.json`; returns the stats."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {"trajectories": total, "kept": data.kept, "dropped": dict(data.dropped),
                             "success_rate": round(data.kept / total, 4) if total else 0.0,
                             "reflect_verdicts": dict(data.reflect), "roles": {}}
    for role in ROLES:
        pairs = data.pairs[role]
        tmp = out_dir / f".{role}.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for pair in pairs:
                f.write(json.dumps(pair, ensure_ascii=False) + "\n")
        tmp.replace(out_dir / f"{role}.jsonl")
        stats["roles"][role] = {
            "pairs": len(pairs),
            "prompt_tokens": length_stats([count_tokens(p["prompt"]) for p in pairs]),
            "completion_tokens": length_stats([count_tokens(p["completion"]) for p in pairs]),
        }
    held_out = out_dir / HELD_OUT_FILE
    if data.held_out:
        tmp = out_dir / f".{HELD_OUT_FILE}.tmp"
        tmp.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in data.held_out), encoding="utf-8")
        tmp.replace(held_out)
    elif held_out.exists():
        held_out.unlink()  # a dataset written again without a held-out share keeps no stale one
    stats["held_out_pairs"] = len(data.held_out)
    stats["source"] = source
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats
