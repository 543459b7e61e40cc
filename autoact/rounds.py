"""Self-improvement rounds: the trained group synthesizes the next round's trajectories.

Round 1 is the pipeline as the paper runs it (`autoact.pipeline`). Round r ≥ 2 runs
the same stages in `WORKDIR/round-r/` with three differences: new questions (none
asked in an earlier round, unless `reuse_questions`), synthesis by the latest round's
trained group (its adapters, role prompts) instead of the Meta-Agent (while no round
has kept a trajectory there is no group, and the Meta-Agent synthesizes again), and
training on every round's kept data so far (from the base model by default, or
continuing the latest adapters on the data kept since).
Each round is resumable like any pipeline run; `rounds.json` and `rounds.md` hold the
per-round table (synthesis success, kept trajectories and pairs per role, the group's
valid-action and finish rates and its score) beside the zero-shot Meta-Agent, and a
plot (`rounds.png`). A round whose score falls more than `regression_margin` points
below the previous round's is flagged; `stop_on_regression` ends the loop there, and
the best round's adapters are named as the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from autoact.pipeline import run_pipeline, trained_roles
from autoact.presets import PipelineConfig
from core.errors import ConfigError
from core.roles import ROLES

ROUNDS_JSON, ROUNDS_MD, ROUNDS_PNG = "rounds.json", "rounds.md", "rounds.png"


@dataclass(frozen=True)
class RoundsConfig:
    rounds: int = 1
    continue_adapters: bool = False  # round r starts from round r-1's adapters and trains on its new data
    reuse_questions: bool = False  # rounds may ask questions an earlier round asked (default: never)
    stop_on_regression: bool = False
    regression_margin: float = 1.0  # points of the task's main metric (percent)


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def round_row(number: int, workdir: Path, run: dict[str, Any], metric: str) -> dict[str, Any]:
    """One line of the per-round table, read from the round's files."""
    stages = {s["name"]: s.get("counts") or {} for s in run.get("stages", [])}
    synth = stages.get("synthesize", {})
    stats = _json(workdir / "data" / "stats.json")
    autoact = _json(workdir / "eval" / "autoact" / "summary.json")
    diag = autoact.get("diagnostics") or {}
    return {
        "round": number, "synthesized": synth.get("trajectories"), "synthesis_success": synth.get(metric),
        "kept": stats.get("kept"), **{f"{r}_pairs": (stats.get("roles") or {}).get(r, {}).get("pairs") for r in ROLES},
        "valid_action_rate": diag.get("valid_action_rate"), "finish_rate": diag.get("finish_rate"),
        "score": autoact.get(metric), "n": autoact.get("n"), "adapters": str(workdir / "adapters"),
    }


def _latest_group(earlier: list[Path]) -> tuple[int | None, dict[str, Path]]:
    """The last of `earlier` rounds that trained adapters (its number), and its role → adapter dir."""
    for number in range(len(earlier), 0, -1):
        adapters = earlier[number - 1] / "adapters"
        if roles := trained_roles(adapters):
            return number, {r: adapters / r for r in roles}
    return None, {}


def run_rounds(config: PipelineConfig, rounds: RoundsConfig,
               on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or continue) `rounds.rounds` rounds; one round is exactly `run_pipeline(config)`."""
    if rounds.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {rounds.rounds}")
    if rounds.rounds == 1:
        return run_pipeline(config, on_stage)
    from tasks import get_task
    metric = get_task(config.task).reward_metric
    root = Path(config.workdir)
    root.mkdir(parents=True, exist_ok=True)
    table: list[dict[str, Any]] = []
    zero_shot = None
    stopped = ""
    for number in range(1, rounds.rounds + 1):
        workdir = root / f"round-{number}"
        cfg = replace(config, workdir=workdir)
        synthesizer = "Meta-Agent"
        if number > 1:
            earlier = [root / f"round-{k}" for k in range(1, number)]
            latest, group = _latest_group(earlier)
            if latest is not None:
                synthesizer = f"round {latest}'s group"
            # with no trained group yet (no round kept a trajectory), the Meta-Agent synthesizes again
            after = earlier[latest:] if latest is not None else earlier
            cont = rounds.continue_adapters and latest is not None
            cfg = replace(cfg, synth_adapters=group or None, zero_shot_eval=False,
                          avoid_questions=[] if rounds.reuse_questions else [d / "questions.jsonl" for d in earlier],
                          extra_training_data=[d / "data" for d in (after if cont else earlier)],
                          init_adapters=root / f"round-{latest}" / "adapters" if cont else None)
        if on_stage:
            on_stage(f"round {number} of {rounds.rounds}")
        run = run_pipeline(cfg, on_stage)
        if number == 1:
            zero_shot = _json(workdir / "eval" / "zero-shot" / "summary.json").get(metric)
        row = round_row(number, workdir, run, metric)
        row["synthesized_by"] = synthesizer
        prev_score = table[-1]["score"] if table else None
        row["regression"] = (prev_score is not None and row["score"] is not None
                             and row["score"] < prev_score - rounds.regression_margin)
        table.append(row)
        _write(root, config, rounds, table, zero_shot, metric, stopped)
        if row["regression"] and rounds.stop_on_regression:
            stopped = f"round {number} scored {row['score']} < round {number - 1}'s {prev_score} − margin"
            break
    return _write(root, config, rounds, table, zero_shot, metric, stopped)


def _write(root: Path, config: PipelineConfig, rounds: RoundsConfig, table: list[dict[str, Any]],
           zero_shot: float | None, metric: str, stopped: str) -> dict[str, Any]:
    scored = [r for r in table if r["score"] is not None]
    best = max(scored, key=lambda r: (r["score"], -r["round"]), default=None)
    data = {"task": config.task, "preset": config.preset, "rounds": rounds.rounds, "metric": metric,
            "continue_adapters": rounds.continue_adapters, "reuse_questions": rounds.reuse_questions,
            "stop_on_regression": rounds.stop_on_regression,
            "regression_margin": rounds.regression_margin, "zero_shot": zero_shot, "table": table,
            "best_round": best["round"] if best else None, "best_adapters": best["adapters"] if best else None,
            "stopped": stopped}
    (root / ROUNDS_JSON).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    _write_markdown(root, data)
    return data


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _write_markdown(root: Path, data: dict[str, Any]) -> None:
    from evaluation.report_plots import new_figure

    metric = data["metric"]
    cols = ["round", "synthesized_by", "synthesized", "synthesis_success", "kept", "plan_pairs", "tool_pairs", "reflect_pairs",
            "valid_action_rate", "finish_rate", "score", "regression"]
    lines = [f"# Self-improvement rounds ({data['task']}, preset {data['preset']})", "",
             f"Task metric: {metric} (percent). Meta-Agent zero-shot: {_cell(data['zero_shot'])}. "
             f"Synthesis success is the synthesized trajectories' {metric} on the round's own questions (kept "
             f"are those exactly right); valid actions, finished "
             f"and the score are the round's trained group on the evaluation file.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in cols) + " |" for row in data["table"]]
    lines += ["", f"Best round: {data['best_round']} ({data['best_adapters']})." if data["best_round"] else
              "No round has a score yet."]
    if data["stopped"]:
        lines += ["", f"Stopped early: {data['stopped']}."]
    rows = [r for r in data["table"] if r["score"] is not None]
    if rows:
        fig = new_figure(6.0, 3.5)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([r["round"] for r in rows], [r["score"] for r in rows], marker="o", label="AutoAct group")
        ax.plot([r["round"] for r in rows], [r["synthesis_success"] or 0 for r in rows], marker="s",
                linestyle="--", label="synthesis success")
        if data["zero_shot"] is not None:
            ax.axhline(data["zero_shot"], color="grey", linestyle=":", label="Meta-Agent zero-shot")
        ax.set_xlabel("round")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_xticks([r["round"] for r in rows])
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(root / ROUNDS_PNG, format="png")
        lines += ["", f"![rounds]({ROUNDS_PNG})"]
    (root / ROUNDS_MD).write_text("\n".join(lines) + "\n", encoding="utf-8")
