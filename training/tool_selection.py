"""Tool selection: the Meta-Agent picks the tools a task needs from the pool (AutoAct stage 2).

Two ways to ask, like every closed choice in autoact:
- scored (default): for each tool, how much likelier ` yes` is than ` no` as the
  answer to "does this task need it?", calibrated by the same question asked
  with a content-free task ("N/A"; contextual calibration, Zhao et al. 2021).
  A small model says "no" to every tool by a similar margin (seen with the
  embedded model: -1.2 to -1.7 for all ten tools); the calibrated margin keeps
  only what the task description itself adds;
- free: the model writes a list, which `parse_selection` reads robustly.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Sequence

from agents.llm import CompletionModel
from core.errors import AutoactError
from prompts.builder import load_template, render_tools
from tools.base import ToolSpec

log = logging.getLogger(__name__)

_ITEM_SPLIT = re.compile(r"[\n,;]|\band\b|\bor\b", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:\(?\d+[.):]?\)?|[-*•+>]|tools?:|answer:|selected:)\s*", re.IGNORECASE)


class SelectionError(AutoactError):
    """The model named no tool of the pool."""


@dataclass
class Selection:
    chosen: list[ToolSpec]
    answer: str = ""  # what the model said (free mode) or a summary of the scores
    ignored: list[str] = field(default_factory=list)  # names it gave that are not in the pool
    scores: dict[str, float] = field(default_factory=dict)  # yes-minus-no margins (scored mode)
    fallback: str = ""  # set when the model picked nothing and a fallback rule chose: what happened and which rule


def _name_pattern(name: str) -> re.Pattern[str]:
    """`Image2Text` also as "image 2 text", "image-to-text", "IMAGE_TO_TEXT"; `KnowledgeGraph` as "knowledge graph"."""
    parts = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name) or [name]
    alts = ["(?:2|to)" if p == "2" else re.escape(p) for p in parts]
    return re.compile(r"(?<![A-Za-z0-9_])" + r"[\s_\-]*".join(alts) + r"(?![A-Za-z0-9_])", re.IGNORECASE)


def parse_selection(answer: str, pool: Sequence[str]) -> tuple[list[str], list[str]]:
    """Tool names of `pool` the answer mentions (in order, once each) and the unknown names it lists."""
    patterns = {name: _name_pattern(name) for name in pool}
    found: list[tuple[int, str]] = []
    for name, pattern in patterns.items():
        if match := pattern.search(answer):
            found.append((match.start(), name))
    chosen = [name for _, name in sorted(found)]
    unknown: list[str] = []
    for item in _ITEM_SPLIT.split(answer):
        item = _BULLET.sub("", item).split(":", 1)[0].strip(" .`*\"'[]()")
        if not item or any(p.search(item) for p in patterns.values()):
            continue
        if len(item.split()) == 1 and (re.fullmatch(r"[A-Z][A-Za-z0-9_]+", item) or "_" in item):
            unknown.append(item)  # a lone tool-like name the pool does not have
    return chosen, list(dict.fromkeys(unknown))


def selection_prompt(task_description: str, pool: Sequence[ToolSpec]) -> str:
    return load_template("select").substitute(task=task_description.strip(), tools=render_tools(pool))


NULL_TASK = "N/A"
FALLBACK_TOP_K = 3  # tools taken by margin when the model picks none and no built-in set is given


def yes_margins(model: CompletionModel, task_description: str, pool: Sequence[ToolSpec]) -> dict[str, float]:
    """log P(yes) - log P(no) for "does this task need tool X?", per tool."""
    prompt = selection_prompt(task_description, pool)
    margins = {}
    for spec in pool:
        yes, no = model.score(f"{prompt}\n\nDoes this task need the tool {spec.name}? Answer yes or no.\nAnswer:",
                              [" yes", " no"])
        margins[spec.name] = yes - no
    return margins


def select_tools(model: CompletionModel, task_description: str, pool: Sequence[ToolSpec],
                 scored: bool = True, calibrate: bool = True, max_tokens: int = 80, strict: bool = True,
                 fallback: Sequence[str] | None = None, top_k: int = FALLBACK_TOP_K) -> Selection:
    """Ask the model which tools of `pool` the task needs.

    When it picks none: with `strict`, SelectionError; otherwise a stated rule picks instead,
    and `Selection.fallback` says what happened and which rule (for the caller to show): the
    `fallback` names (a task's built-in set) when given, else, in scored mode, the `top_k`
    tools with the highest margins. Free mode without `fallback` has nothing to rank, so it
    fails anyway.
    """
    prompt = selection_prompt(task_description, pool)
    by_name = {spec.name: spec for spec in pool}
    if scored:
        margins = yes_margins(model, task_description, pool)
        if calibrate:
            null = yes_margins(model, NULL_TASK, pool)
            margins = {name: m - null[name] for name, m in margins.items()}
        margins = {name: round(m, 3) for name, m in margins.items()}
        chosen = [name for name, m in margins.items() if m > 0]
        what = "calibrated yes-minus-no log-likelihood" if calibrate else "yes-minus-no log-likelihood"
        summary = ", ".join(f"{n}: {m:+.2f}" for n, m in margins.items())
        selection = Selection([by_name[n] for n in chosen], f"{what}: {summary}", scores=margins)
        if chosen:
            return selection
        problem = f"the model answered 'no' for every tool ({what}: {summary})"
        ranked = sorted(margins, key=lambda n: -margins[n])[:top_k]
        return _fall_back(selection, problem, strict, fallback, by_name,
                          (ranked, f"the {len(ranked)} tools with the highest margins"))
    answer = model.generate(f"{prompt}\nList the names of the tools this task needs, one per line.\nNeeded tools:",
                            stop=["\n\n\n"], max_tokens=max_tokens)
    chosen, unknown = parse_selection(answer, list(by_name))
    for name in unknown:
        log.warning("tool %r named by the model is not in the pool; ignored", name)
    selection = Selection([by_name[n] for n in chosen], answer, ignored=unknown)
    if chosen:
        return selection
    problem = f"the model named no tool of the pool ({', '.join(by_name)}). Its answer was: {answer.strip()!r}"
    return _fall_back(selection, problem, strict, fallback, by_name, None)


def _fall_back(selection: Selection, problem: str, strict: bool, fallback: Sequence[str] | None,
               pool: dict[str, ToolSpec], ranked: tuple[list[str], str] | None) -> Selection:
    """The selection when the model picked nothing: an error, or the stated fallback rule."""
    names, rule = None, ""
    if fallback is not None:
        names, rule = [n for n in fallback if n in pool], "the task's built-in tool set"
    elif ranked is not None:
        names, rule = ranked
    if strict or not names:
        raise SelectionError(problem)
    selection.chosen = [pool[n] for n in names]
    selection.fallback = f"{problem}; used {rule} instead: {', '.join(names)}"
    return selection
