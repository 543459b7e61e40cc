"""Filtering and differentiation (DESIGN.md §4): correct trajectories → prompt/completion pairs per role.

Every prompt is produced by the runtime's own `PromptBuilder` for that role,
so a pair's prompt is byte for byte what the role's agent is sent at that step;
the completion is what the agent's model is asked for there:

- plan: `Thought n:` → ` <thought>`; `… Action n:` → ` <ActionName>`
- tool: `… Action n: Name[` → `<argument>]`
- reflect: `Thought n:` → ` <thought>`; `… Action n: Reflect[` → `right]` / `wrong]`
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from agents.base import FINISH, REFLECT
from core.roles import ROLES
from graph.context import prompt_tools
from graph.state import step_status
from prompts.builder import PromptBuilder
from tools.base import ToolSpec

_TEXT_FIELDS = ("thought", "action", "argument", "observation")


@dataclass
class Differentiated:
    pairs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {r: [] for r in ROLES})
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason → count


def trajectory_pairs(question: str, steps: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec],
                     source: str = "") -> dict[str, list[dict[str, Any]]]:
    """The training pairs of one trajectory, per role, in step order."""
    out: dict[str, list[dict[str, Any]]] = {r: [] for r in ROLES}
    specs = prompt_tools(tools)
    builders = {role: PromptBuilder(role, specs) for role in ROLES}
    steps = [{**s, **{k: s.get(k) or "" for k in _TEXT_FIELDS}} for s in steps]  # absent or null: empty
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


def differentiate(trajectories: Iterable[Mapping[str, Any]], tools: Sequence[ToolSpec],
                  min_reward: float = 1.0, max_trajectories: int | None = None,
                  unfiltered: bool = False) -> Differentiated:
    """Keep trajectories whose reward reaches `min_reward` (and that finished), cut them into pairs.

    `unfiltered` (the ablation without filtering) keeps every trajectory that ran without an
    error, whatever its answer, and whether or not it finished. A trajectory that repeats one kept
    before (`trajectory_key`: two samples of one question taking the same steps) is dropped.
    """
    result = Differentiated()
    seen: set[tuple] = set()
    for row in trajectories:
        reason = _drop_reason(row, min_reward, unfiltered)
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
        for role, pairs in trajectory_pairs(row["question"], row["transcript"], tools, str(row["id"])).items():
            result.pairs[role].extend(pairs)
    return result


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
