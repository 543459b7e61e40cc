"""Filtering and differentiation (DESIGN.md §4): correct trajectories → prompt/completion pairs per role.

Every prompt is produced by the runtime's own `PromptBuilder` for that role,
so a pair's prompt is byte for byte what the role's agent is sent at that step;
the completion is what the agent's model is asked for there:

- plan: `Thought n:` → ` <thought>`; `… Action n:` → ` <ActionName>`
- tool: `… Action n: Name[` → `<argument>]`
- reflect: `Thought n:` → ` <thought>`; `… Action n: Reflect[` → `right]` / `wrong]`

Reflect negatives: a reward-filtered set teaches the reflect agent only
`right]` (nearly every kept trajectory finishes once and is judged right), so
it learns to accept everything. With `reflect_negatives` (the default), a
trajectory that finished with a wrong answer gives one more verdict pair: the
reflect step that judged its last Finish, completed with `wrong]`. Its thought,
plan and tool steps teach nothing (they are not reward-filtered) and are not
used. Negatives are capped at `negative_ratio` times the `right]` verdicts of
the kept trajectories, so the two verdicts stay balanced.

Held-out verdicts: with `hold_out` > 0, the reflect pairs of about that share of the questions
(each class of verdict in proportion; every pair of one question on the same side) are kept out of
`reflect.jsonl` and written to `reflect.heldout.jsonl`, on which `training.reflect_threshold` fits
the verdict threshold with margins the adapter was not trained on.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from agents.base import FINISH, REFLECT
from core.roles import ROLES
from graph.context import prompt_tools
from graph.state import UNUSABLE, step_status
from prompts.builder import PromptBuilder
from tools.base import ToolSpec

_TEXT_FIELDS = ("thought", "action", "argument", "observation")


@dataclass
class Differentiated:
    pairs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {r: [] for r in ROLES})
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason → count
    reflect: dict[str, int] = field(default_factory=dict)  # verdict pairs: right, wrong, negatives found and used
    held_out: list[dict[str, Any]] = field(default_factory=list)  # reflect pairs kept out of training


def _with_text(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The steps with every text field a string (absent or null: empty)."""
    return [{**s, **{k: s.get(k) or "" for k in _TEXT_FIELDS}} for s in steps]


def trajectory_pairs(question: str, steps: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec],
                     source: str = "") -> dict[str, list[dict[str, Any]]]:
    """The training pairs of one trajectory, per role, in step order."""
    out: dict[str, list[dict[str, Any]]] = {r: [] for r in ROLES}
    specs = prompt_tools(tools)
    builders = {role: PromptBuilder(role, specs) for role in ROLES}
    steps = _with_text(steps)
    for i, step in enumerate(steps):
        before, thought, action, argument = list(steps[:i]), step["thought"], step["action"], step["argument"]
        meta = {"source": source, "step": i + 1}
        role = "reflect" if step.get("node") == "reflect" else "plan"
        if role == "plan" and (not action or step_status(step) in ("invalid_action", "misplaced_reflect")):
            continue  # an unreadable action or a misplaced Reflect teaches nothing
        b = builders[role]
        if thought.strip():  # an empty thought is nothing to learn
            out[role].append({"prompt": b.thought(question, before), "completion": f" {thought}\n",
                              "kind": "thought", **meta})
        if role == "reflect":
            out["reflect"].append({"prompt": b.action(question, before, thought) + f" {REFLECT}[",
                                   "completion": f"{argument}]", "kind": "verdict", **meta})
            continue
        out["plan"].append({"prompt": b.action(question, before, thought), "completion": f" {action}",
                            "kind": "action", **meta})
        out["tool"].append({"prompt": builders["tool"].argument(question, before, thought, action),
                            "completion": f"{argument}]", "kind": "argument", **meta})
    return out


def negative_pair(question: str, steps: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec],
                  source: str = "") -> dict[str, Any] | None:
    """The `Reflect[wrong]` pair of a trajectory whose final answer was wrong, or None without one.

    The pair is the reflect step right after the trajectory's last Finish (the answer it ended
    with), its prompt as the reflect agent saw it there, completed with `wrong]`.
    """
    steps = _with_text(steps)
    finishes = [i for i, s in enumerate(steps) if s["action"] == FINISH and s["argument"].strip()
                and step_status(s) not in UNUSABLE]
    if not finishes or finishes[-1] + 1 >= len(steps):
        return None
    i = finishes[-1] + 1
    reflect = steps[i]
    if reflect.get("node") != "reflect" or reflect["action"] != REFLECT:
        return None
    builder = PromptBuilder("reflect", prompt_tools(tools))
    return {"prompt": builder.action(question, steps[:i], reflect["thought"]) + f" {REFLECT}[",
            "completion": "wrong]", "kind": "verdict", "negative": True, "source": source, "step": i + 1}


def differentiate(trajectories: Iterable[Mapping[str, Any]], tools: Sequence[ToolSpec],
                  min_reward: float = 1.0, max_trajectories: int | None = None,
                  unfiltered: bool = False, reflect_negatives: bool = True,
                  negative_ratio: float = 1.0, hold_out: float = 0.0) -> Differentiated:
    """Keep trajectories whose reward reaches `min_reward` (and that finished), cut them into pairs.

    `unfiltered` (the ablation without filtering) keeps every trajectory that ran without an
    error, whatever its answer, and whether or not it finished. A trajectory that repeats one kept
    before (`trajectory_key`: two samples of one question taking the same steps) is dropped.
    `reflect_negatives` (filtered data only): finished trajectories below `min_reward` give
    `Reflect[wrong]` pairs (`negative_pair`), at most `negative_ratio` per `right]` verdict kept.
    `hold_out`: the share of the reflect pairs set aside for fitting the verdict threshold (`hold_out_verdicts`).
    Every pair carries its trajectory's `question_id`.
    """
    result = Differentiated()
    seen: set[tuple] = set()
    negatives: list[dict[str, Any]] = []
    negative_keys: set[tuple] = set()
    for row in trajectories:
        reason = _drop_reason(row, min_reward, unfiltered)
        if reason == "reward below threshold" and reflect_negatives and not unfiltered \
                and (key := trajectory_key(row)) not in negative_keys:
            negative_keys.add(key)
            if pair := negative_pair(row["question"], row["transcript"], tools, str(row["id"])):
                negatives.append({**pair, "question_id": key[0]})
        if reason is None:  # several samples of a question may take the very same steps: keep one
            key = trajectory_key(row)
            reason = "duplicate trajectory" if key in seen else None
            seen.add(key)
        if reason is None and max_trajectories is not None and result.kept >= max_trajectories:
            reason = "over --max-trajectories"
        if reason:
            result.dropped[reason] += 1
            continue
        result.kept += 1
        question_id = trajectory_key(row)[0]
        for role, pairs in trajectory_pairs(row["question"], row["transcript"], tools, str(row["id"])).items():
            result.pairs[role].extend({**p, "question_id": question_id} for p in pairs)
    right, wrong = _verdict_counts(result.pairs["reflect"])
    used = negatives[:int(negative_ratio * right)]
    result.pairs["reflect"].extend(used)
    result.reflect = {"right": right, "wrong": wrong + len(used),
                      "negatives_found": len(negatives), "negatives_used": len(used)}
    if hold_out > 0:
        result.pairs["reflect"], result.held_out = hold_out_verdicts(result.pairs["reflect"], hold_out)
        held = _verdict_counts(result.held_out)
        result.reflect.update(held_out_right=held[0], held_out_wrong=held[1])
    return result


def _verdict_counts(pairs: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(right, wrong) verdict pairs among `pairs`."""
    verdicts = [p["completion"] for p in pairs if p.get("kind") == "verdict"]
    return verdicts.count("right]"), verdicts.count("wrong]")


def hold_out_verdicts(pairs: Sequence[dict[str, Any]],
                      share: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Reflect pairs → (to train on, held out): whole questions, taken in an order fixed by their ids, are held
    out while neither verdict's held-out count passes `share` of its total. When that leaves no right or no
    wrong verdict held out (too few pairs), nothing is held out."""
    if not 0 < share < 1:
        raise ValueError(f"the held-out share must be between 0 and 1 (got {share})")
    def question_of(p: Mapping[str, Any]) -> str:
        return str(p.get("question_id", p.get("source", "")))

    by_question: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        by_question.setdefault(question_of(p), []).append(p)
    total_right, total_wrong = _verdict_counts(pairs)
    held: set[str] = set()
    right = wrong = 0
    for question in sorted(by_question, key=lambda q: hashlib.sha256(q.encode()).hexdigest()):
        r, w = _verdict_counts(by_question[question])
        if (r or w) and right + r <= share * total_right and wrong + w <= share * total_wrong:
            held.add(question)
            right, wrong = right + r, wrong + w
    if not right or not wrong:
        return list(pairs), []
    side = [question_of(p) in held for p in pairs]
    return [p for p, h in zip(pairs, side) if not h], [p for p, h in zip(pairs, side) if h]


def trajectory_key(row: Mapping[str, Any]) -> tuple:
    """Two samples of one question (`question_id`, else the row's id) taking the same steps (node, thought,
    action, argument) are the same lesson; distinct questions never are."""
    steps = tuple((s.get("node"), s.get("thought") or "", s.get("action") or "", s.get("argument") or "")
                  for s in row.get("transcript") or [])
    return str(row.get("question_id", row.get("id"))), steps


def _drop_reason(row: Mapping[str, Any], min_reward: float, unfiltered: bool = False) -> str | None:
    if row.get("error"):
        return "error"
    if unfiltered:
        return None if row.get("transcript") else "empty transcript"
    if row.get("halted"):
        return "halted"
    if not row.get("transcript"):
        return "empty transcript"
    if float(row.get("reward") or 0.0) < min_reward:
        return "reward below threshold"
    if not any(s.get("action") == FINISH for s in row["transcript"]):
        return "no Finish"
    return None
