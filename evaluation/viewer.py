"""`autoact view`: one self-contained HTML page to browse what the agents did, offline.

`write_viewer(dirs)` reads pipeline runs, `autoact eval --out` directories or folders of them
(:func:`evaluation.run_loading.load_runs`) and writes `view.html`: the runs' reports (the
markdown of `report.md` with its plots inlined), an episode browser over every evaluation's
`results.jsonl` (filters, search, each step with its role, thought, action, argument,
observation and the scored candidates behind a closed choice), and a side-by-side view of
one question answered by two evaluations, the first step where they differ marked.

The page needs no server and no network (it works from ``file://``). Each evaluation's
episodes sit in their own ``<script type="application/json">`` block that the page parses
only when that evaluation is opened, and lists are drawn a page at a time, so runs of
thousands of episodes stay responsive. Long observations are cut at
:data:`OBSERVATION_CHARS` characters, with the cut stated.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.jsonl import read_appendable
from evaluation.run_loading import Run, load_runs

__all__ = ["OBSERVATION_CHARS", "VIEW_NAME", "episode_record", "viewer_data", "write_viewer"]

VIEW_NAME = "view.html"
OBSERVATION_CHARS = 1500
_TEMPLATE = Path(__file__).with_name("viewer_page.html")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _cut(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def episode_record(row: dict[str, Any], metric: str) -> dict[str, Any]:
    """The compact form of one `results.jsonl` row the page reads (short keys; see viewer_page.html)."""
    steps = []
    for step in row.get("transcript") or []:
        item = {"n": step.get("node") or "", "th": step.get("thought") or "", "a": step.get("action") or "",
                "arg": step.get("argument") or "", "o": _cut(step.get("observation"), OBSERVATION_CHARS)}
        if step.get("status") not in (None, "ok"):
            item["s"] = step["status"]
        if step.get("margin") is not None:
            item["m"] = round(float(step["margin"]), 3)
        if step.get("choices"):
            item["c"] = step["choices"]
        steps.append(item)
    tokens = sum(int(v.get("prompt_tokens", 0)) + int(v.get("completion_tokens", 0))
                 for v in (row.get("tokens") or {}).values() if isinstance(v, dict))
    value = row.get(metric)
    return {"id": str(row.get("id")), "q": row.get("question") or "", "gold": str(row.get("gold") or ""),
            "pred": str(row.get("prediction") or ""), "score": None if value is None else float(value),
            "ok": bool(value is not None and float(value) >= 1.0), "halted": bool(row.get("halted")),
            "err": row.get("error") or "", "steps": int(row.get("steps") or 0), "tok": tokens,
            "grp": str(row.get("group") or ""), "t": steps}


def _report_markdown(run: Run) -> str:
    """The run's report.md with its images inlined as data URIs ('' when it has none)."""
    path = run.directory / "report.md"
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        image = (path.parent / match.group(2)).resolve()
        if not image.is_file() or image.suffix.lower() != ".png":
            return match.group(0)
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    return _IMAGE.sub(inline, text)


def _render_markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text) if text else ""


def viewer_data(runs: Sequence[Run]) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    """The page's index (runs, evaluations, summaries, reports) and each evaluation's episodes, in order."""
    index: dict[str, Any] = {"runs": [], "evaluations": []}
    episodes: list[list[dict[str, Any]]] = []
    for run in runs:
        metric = run.task.metrics[0]
        index["runs"].append({"title": run.title or run.name, "task": run.task.name,
                              "report": _render_markdown(_report_markdown(run))})
        for evaluation in run.evaluations:
            results = evaluation.path / "results.jsonl"
            rows = [row for _, row in read_appendable(results)] if results.is_file() else []
            summary = evaluation.summary or {}
            score = summary.get(metric)
            interval = (summary.get("intervals") or {}).get(metric)
            index["evaluations"].append({
                "run": run.title or run.name, "label": evaluation.label, "metric": metric, "n": len(rows),
                "score": score, "interval": interval, "chance": summary.get("chance"),
                "path": str(evaluation.path)})
            episodes.append([episode_record(row, metric) for row in rows])
    return index, episodes


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def write_viewer(directories: Sequence[Path | str], out: Path | None = None) -> Path:
    """Write the page for these runs (default: `view.html` in the first one); return its path."""
    runs = load_runs(list(directories))
    out = Path(out) if out is not None else runs[0].directory / VIEW_NAME
    if out.is_dir():
        out = out / VIEW_NAME
    index, episodes = viewer_data(runs)
    blocks = "\n".join(f'<script type="application/json" id="episodes-{i}">{_script_json(items)}</script>'
                       for i, items in enumerate(episodes))
    page = _TEMPLATE.read_text(encoding="utf-8")
    page = page.replace("<!--INDEX-->", f'<script type="application/json" id="index">{_script_json(index)}</script>')
    page = page.replace("<!--EPISODES-->", blocks)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
