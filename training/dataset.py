"""Writing and reading differentiated datasets: `plan.jsonl`, `tool.jsonl`, `reflect.jsonl`, `stats.json`."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from autoact.errors import DataError
from autoact.jsonl import iter_jsonl
from training.differentiate import ROLES, Differentiated


def read_trajectories(path: Path) -> list[dict[str, Any]]:
    """Rows of a trajectories file; a malformed line fails with FILE:LINE."""
    rows = []
    for lineno, row in iter_jsonl(path, "trajectories file"):
        missing = [k for k in ("id", "question", "transcript") if k not in row]
        if missing:
            raise DataError(f"{path}:{lineno}: a trajectory row needs {', '.join(missing)}")
        rows.append(row)
    return rows


def length_stats(lengths: Sequence[int]) -> dict[str, float]:
    if not lengths:
        return {"min": 0, "mean": 0, "max": 0}
    return {"min": min(lengths), "mean": round(statistics.fmean(lengths), 1), "max": max(lengths)}


def write_dataset(out_dir: Path, data: Differentiated, total: int, source: dict[str, Any],
                  count_tokens: Callable[[str], int]) -> dict[str, Any]:
    """Write one JSONL file per role and `stats.json`; returns the stats."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {"trajectories": total, "kept": data.kept, "dropped": dict(data.dropped),
                             "success_rate": round(data.kept / total, 4) if total else 0.0, "roles": {}}
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
    stats["source"] = source
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats
