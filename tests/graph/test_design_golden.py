"""Golden episodes of every design: the same transcripts, answers and prompts as when they were recorded.

The model is a pure function of its prompt (`HashedModel`), so an episode depends on every byte of
every prompt a design sends: a restructuring that changes behaviour changes the golden record.
Record anew, after a change meant to alter behaviour, with
`AUTOACT_RECORD_GOLDEN=1 python -m pytest tests/graph/test_design_golden.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import pytest

from tasks import get_task, read_rows
from tests.support.builders import DATA

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "designs.json"
ROWS = {"hotpotqa": DATA / "hotpotqa" / "easy.jsonl", "scienceqa": DATA / "scienceqa" / "grade1-4.jsonl"}
GENERATIONS = (
    "I should look up the first name in the question.", "Retrieve[Carmen]", "Fredville", "yes",
    "#E1 = Retrieve[Ed Wood]\n#E2 = Lookup[#E1 born]", "Retrieve, Lookup, Finish", "Finish[no]",
    "The answer is B.", "", "Reflect[wrong]", "Search[director] then Calculator[2+2]", "right",
    "Scott Derrickson", "Lookup[born]", "1995",
)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class HashedModel:
    """Generations and scores are a pure function of the prompt (and candidate); every prompt is logged."""

    name = "hashed"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, prompt: str, *, stop: Sequence[str], max_tokens: int) -> str:
        self.prompts.append(prompt)
        text = GENERATIONS[_digest(prompt) % len(GENERATIONS)]
        cut = min([text.index(s) for s in stop if s and s in text], default=len(text))
        return text[:cut]

    def score(self, prompt: str, candidates: Sequence[str]) -> list[float]:
        self.prompts.append(prompt + "\0" + "\0".join(candidates))
        return [-(_digest(prompt + "\0" + c) % 1000) / 100 for c in candidates]


DESIGNS = ("autoact", "autoact-free", "autoact-spans", "no-reflect", "fireact", "cot", "react", "reflexion",
           "rewoo", "bolaa", "chameleon", "direct", "majority", "chance")


def _seeds() -> list[dict]:
    lines = (DATA / "scienceqa" / "seeds.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def build(design: str, task: Any, model: HashedModel, rows: list[dict]) -> Any:
    """The design on `model`, through the project's own registry, as `autoact eval --agent` builds it."""
    from agents.base import AgentSettings
    from autoact.assembly import build_task_toolbox
    from graph.context import Limits
    from graph.designs import DesignInputs, build_design

    toolbox = build_task_toolbox(task, rows)
    settings = AgentSettings(scored=design != "autoact-free", scored_arguments=design == "autoact-spans")
    name = {"autoact-free": "autoact", "autoact-spans": "autoact", "no-reflect": "autoact"}.get(design, design)
    seeds = _seeds() if (design, task.name) == ("majority", "scienceqa") else None
    inputs = DesignInputs(task=task, toolbox=toolbox, plan=model, tool=model,
                          reflect=None if design == "no-reflect" else model, settings=settings,
                          limits=Limits(max_steps=4), train_rows=seeds)
    return build_design(name, inputs)


def episode(design: str, task_name: str, row: dict) -> dict[str, Any]:
    task = get_task(task_name)
    model = HashedModel()
    agent = build(design, task, model, read_rows(ROWS[task_name], task)[:3])
    result = agent.run(task.question_text(row), task.inputs(row))
    keys = ("node", "thought", "action", "argument", "observation")
    return {"answer": result.answer, "halted": result.halted, "halt_reason": result.halt_reason,
            "steps": [{k: s.get(k) for k in keys} for s in result.steps],
            "calls": len(model.prompts), "prompts": hashlib.sha256("\n\x1e".join(model.prompts).encode()).hexdigest()}


CASES = [(d, t, i) for d in DESIGNS for t in ("hotpotqa", "scienceqa") for i in range(3)
         if not (d == "autoact-spans" and t == "scienceqa") and not (d == "chance" and t == "hotpotqa")]


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    if os.environ.get("AUTOACT_RECORD_GOLDEN"):
        return {}
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_golden_cover_every_registered_design() -> None:
    from graph.designs import DESIGNS as REGISTERED
    assert set(REGISTERED) <= {d for d in DESIGNS}


@pytest.mark.parametrize("design, task_name, index", CASES, ids=[f"{d}-{t}-{i}" for d, t, i in CASES])
def test_design_episode_is_unchanged(golden: dict[str, Any], design: str, task_name: str, index: int) -> None:
    task = get_task(task_name)
    row = read_rows(ROWS[task_name], task)[index]
    got = episode(design, task_name, row)
    key = f"{design}/{task_name}/{row['id']}"
    if os.environ.get("AUTOACT_RECORD_GOLDEN"):
        record = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
        record[key] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    assert got == golden[key]
