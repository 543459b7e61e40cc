"""Behaviour diagnostics of an episode: what the agent did, beside whether its answer was right.

With a small base model every variant's final score sits near the floor, so what
shows learning is behaviour. Per episode (`episode_diagnostics`, stored on each
result row) and over a set of rows (`summarize_diagnostics`, in `summary.json`):

- evidence recall (HotpotQA rows with `supporting_facts`): the share of the gold
  supporting pages the episode retrieved, and whether it reached all of them. A
  page counts as retrieved when a `Retrieve` observation is that page's text
  (its first sentence appears in it), so a title spelled differently still counts;
- valid-action rate: actions whose step status (`graph.state.step_status`) is usable: they
  named one of the episode's tools (or Finish with an answer, or a Reflect verdict in its
  place), over all actions;
- finish rate: episodes that proposed an answer (a Finish with an argument);
- reflection outcome: of the reflections given, how many said right / wrong, and
  how many were correct (right on a correct answer, wrong on a wrong one;
  correct = the task's reward metric reaches 1 for the judged answer), and the 2×2 table of
  verdicts against right and wrong answers (`reflect_discrimination`): how many wrong answers
  it caught and how many right ones it let through;
- steps per episode, and tokens per episode per role (the server's usage counts, recorded by
  `agents.llm.TOKEN_USAGE` while the episode runs).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from agents.base import FINISH, REFLECT
from graph.state import UNUSABLE, step_status
from tasks.base import Task


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def gold_pages(row: Mapping[str, Any]) -> dict[str, str]:
    """Gold supporting page title → the first sentence of that page in the row's context."""
    titles = list(dict.fromkeys(str(f[0]) for f in row.get("supporting_facts") or [] if f))
    context = {str(t): s for t, s in row.get("context") or []}
    return {t: _norm(context[t][0]) if context.get(t) else "" for t in titles}


def evidence_recall(row: Mapping[str, Any], transcript: Sequence[Mapping[str, Any]]) -> tuple[float, bool] | None:
    """(share of gold pages retrieved, all of them retrieved), or None without supporting facts."""
    pages = gold_pages(row)
    if not pages:
        return None
    seen = [_norm(s.get("observation", "")) for s in transcript if s.get("action") == "Retrieve"]
    reached = [t for t, first in pages.items()
               if any((first and first[:120] in obs) or obs.startswith(_norm(t)) for obs in seen)]
    return len(reached) / len(pages), len(reached) == len(pages)


def _valid(step: Mapping[str, Any], tools: set[str] | None = None) -> bool:
    """A usable step (its status); with `tools`, a plan step must also name one of them or Finish."""
    if step_status(step) in UNUSABLE:
        return False
    return tools is None or step.get("node") == "reflect" or step.get("action") in tools | {FINISH}


def episode_diagnostics(task: Task, row: Mapping[str, Any], transcript: Sequence[Mapping[str, Any]],
                        tools: Iterable[str] | None = None) -> dict[str, Any]:
    """The diagnostics of one episode (added to its result row); `tools`: the episode's tool names."""
    names = set(tools) if tools is not None else None
    # every step is one attempted action, including one that did not parse
    out: dict[str, Any] = {"actions": len(transcript), "valid_actions": sum(_valid(s, names) for s in transcript)}
    proposed: str | None = None
    verdicts: list[dict[str, Any]] = []
    for step in transcript:
        if step.get("action") == FINISH and str(step.get("argument", "")).strip() and _valid(step):
            proposed = str(step["argument"])
        elif step.get("node") == "reflect" and step.get("action") == REFLECT and proposed is not None:
            verdict = step.get("argument")
            entry: dict[str, Any] = {"verdict": verdict}
            if isinstance(step.get("margin"), (int, float)):
                entry["margin"] = float(step["margin"])
            if "answer" in row and verdict in ("right", "wrong"):
                right = float(task.score(proposed, row).get(task.reward_metric) or 0.0) >= 1.0
                entry["correct"] = (verdict == "right") == right
            verdicts.append(entry)
    out["finished"] = proposed is not None
    out["reflections"] = verdicts
    if (recall := evidence_recall(row, transcript)) is not None:
        out["evidence_recall"], out["evidence_all"] = round(recall[0], 4), recall[1]
    return out


def reflect_discrimination(judged: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The reflect agent's verdicts against the truth of the answers it judged: the 2×2 table and its two rates.

    `reflect_table[answer][verdict]` counts verdicts ("right"/"wrong") on right and on wrong
    answers; `wrong_caught_rate` is the share of wrong answers judged wrong, `right_kept_rate`
    the share of right answers judged right. Agreement alone hides an agent that always says right.
    """
    table = {answer: {"said right": 0, "said wrong": 0} for answer in ("right answers", "wrong answers")}
    for v in judged:
        answer_right = (v["verdict"] == "right") == bool(v["correct"])
        table["right answers" if answer_right else "wrong answers"][f"said {v['verdict']}"] += 1

    def rate(answer: str, verdict: str) -> float | None:
        whole = sum(table[answer].values())
        return round(100 * table[answer][verdict] / whole, 2) if whole else None

    out = {"reflect_table": table, "wrong_caught_rate": rate("wrong answers", "said wrong"),
           "right_kept_rate": rate("right answers", "said right")}
    if (auc := margin_auc(judged)) is not None:
        out["verdict_auc"] = auc
    return out


def margin_auc(judged: Sequence[Mapping[str, Any]]) -> float | None:
    """How well the scored verdict's margin separates right answers from wrong ones, whatever the threshold.

    The chance that a right answer's margin (log p(right) - log p(wrong)) is above a wrong answer's,
    ties counting half (the area under the ROC curve, Mann-Whitney): 0.5 is no discrimination, so no
    threshold or calibration can make the verdicts useful; 1.0 separates them completely. None without
    margins on both sides.
    """
    right, wrong = [], []
    for v in judged:
        if "margin" in v:
            answer_right = (v["verdict"] == "right") == bool(v["correct"])
            (right if answer_right else wrong).append(float(v["margin"]))
    if not right or not wrong:
        return None
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return round(wins / (len(right) * len(wrong)), 4)


def summarize_diagnostics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rates over result rows that carry `diagnostics` (percentages, like the task metrics)."""
    diags = [r["diagnostics"] for r in rows if isinstance(r.get("diagnostics"), dict)]

    def pct(part: float, whole: float) -> float | None:
        return round(100 * part / whole, 2) if whole else None

    actions = sum(d["actions"] for d in diags)
    verdicts = [v for d in diags for v in d["reflections"]]
    judged = [v for v in verdicts if "correct" in v]
    recalls = [d["evidence_recall"] for d in diags if "evidence_recall" in d]
    out: dict[str, Any] = {
        "episodes": len(diags),
        "valid_action_rate": pct(sum(d["valid_actions"] for d in diags), actions),
        "finish_rate": pct(sum(d["finished"] for d in diags), len(diags)),
        "reflections": len(verdicts),
        "reflect_right_rate": pct(sum(v["verdict"] == "right" for v in verdicts), len(verdicts)),
        "reflect_wrong_rate": pct(sum(v["verdict"] == "wrong" for v in verdicts), len(verdicts)),
        "reflection_accuracy": pct(sum(v["correct"] for v in judged), len(judged)),
        **reflect_discrimination(judged),
        "steps_per_episode": round(sum(r.get("steps") or 0 for r in rows) / len(rows), 2) if rows else None,
    }
    usages = [r["tokens"] for r in rows if isinstance(r.get("tokens"), dict)]
    if usages:  # mean tokens per episode and role, from the server's usage counts
        roles = sorted({role for u in usages for role in u})
        out["tokens_per_episode"] = {
            role: {k: round(sum(u.get(role, {}).get(k, 0) for u in usages) / len(usages), 1)
                   for k in ("prompt_tokens", "completion_tokens")} for role in roles}
    if recalls:
        out["evidence_recall"] = pct(sum(recalls), len(recalls))
        out["evidence_all_rate"] = pct(sum(d["evidence_all"] for d in diags if "evidence_all" in d), len(recalls))
    return out
