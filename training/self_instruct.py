"""Self-instruct (AutoAct stage 1): grow a task's few seed examples into many synthetic ones.

Each round shows the model an instruction, the seeds and a few examples
generated so far (`instruct_prompts`), and asks for new ones. The answer is
parsed leniently (`instruct_parsing`), and every item that is not an exact or
near duplicate of a seed, of an accepted row, or (grounded mode) of a corpus
question is appended to a JSONL file one by one, so a run that stops can be
resumed up to `n`.

Grounded mode (HotpotQA) shows one or two corpus paragraphs per round
(`grounding`) and asks for questions those pages answer. The corpus row's own
question and answer are never shown. By default (`answer_by="score"`) the
model writes only the questions, and each answer is the span of the shown
pages the model scores likeliest (`answer_scoring`): a weak model ranks closed
choices far better than it writes them. `answer_by="generate"` has the model
write the answer line too.

ScienceQA with `answer_by="score"` (the default) is guided (`guided_items`):
the model fills in one field at a time after labels we write, and the answer
is the option it scores likeliest. `answer_by="generate"` has it write whole
examples, parsed leniently. Either way each ScienceQA item is scored again with
its options in other orders and kept only when the model picks the same
option's content (`option_order`: a label, not a position preference); a kept
item's options are shuffled, so answer letters are uniform. The report counts
what each check removed and the agreement of the checked items.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tqdm import tqdm

from agents.llm import CompletionModel
from core import interrupt
from core.answers import letter_index, normalize_answer
from core.errors import AutoactError, ConfigError, DataError
from core.interrupt import WorkerPool
from core.jsonl import iter_jsonl, read_appendable
from core.locking import OutputLock
from tasks import get_task
from tasks.base import Task
from training.answer_scoring import (
    choose_answer,
    extract_candidates,
    scoring_prompt,
    states_answer,
)
from training.dedup import DedupIndex
from training.grounding import (
    Grounding,
    answer_supported,
    find_groundings,
    page_kind,
    page_text,
)
from training.guided_items import guided_scienceqa_item
from training.instruct_parsing import (
    LETTERS,
    NO_IMG,
    answer_index,
    parse_hotpotqa_items,
    parse_scienceqa_items,
    question_stem,
    read_items,
    read_questions,
    render_options,
    split_options,
)
from training.instruct_prompts import CUE, answer_scoring_text, build_prompt, render_example
from training.option_order import OrderCheck, check_option_order, shuffle_options

__all__ = [
    "CUE", "LETTERS", "NO_IMG", "Grounding", "SelfInstructConfig", "SelfInstructError", "SelfInstructReport",
    "build_prompt", "find_groundings", "load_output", "page_kind", "parse_hotpotqa_items", "parse_scienceqa_items",
    "read_items", "read_seeds", "render_example", "run_self_instruct", "split_options",
]

log = logging.getLogger(__name__)

#: per-item generation budget (tokens) when `max_tokens` is left at 0
_TOKENS_PER_ITEM = {"hotpotqa": 64, "scienceqa": 160}


@dataclass
class SelfInstructConfig:
    task: str = field(default="", metadata={"help": "task name; empty means the task passed to run_self_instruct"})
    n: int = field(default=200, metadata={"help": "stop when the output file holds this many rows"})
    per_round: int = field(default=10, metadata={"help": "new examples asked for in each round (ungrounded)"})
    examples_shown: int = field(default=3, metadata={
        "help": "generated examples sampled into each prompt, besides all the seeds"})
    max_empty_rounds: int = field(default=5, metadata={
        "help": "give up after this many rounds in a row that add nothing new"})
    max_tokens: int = field(default=0, metadata={
        "help": "generation budget per round; 0 sizes it from the number of examples asked for"})
    seed: int = field(default=0, metadata={"help": "random seed for example sampling and page choice"})
    near_duplicate: float = field(default=0.8, metadata={
        "help": "word-set Jaccard at or above which two questions are near duplicates"})
    similarity: float = field(default=0.9, metadata={
        "help": "character similarity (difflib ratio) at or above which two questions are near duplicates"})
    max_answer_words: int = field(default=10, metadata={"help": "longest HotpotQA answer kept, in words"})
    grounded: bool = field(default=False, metadata={
        "help": "ground each round in corpus paragraphs (HotpotQA; needs corpus rows)"})
    per_pair: int = field(default=2, metadata={"help": "questions asked for per grounding pair (grounded mode)"})
    max_page_chars: int = field(default=600, metadata={"help": "longest page text shown in grounded prompts"})
    answer_by: str = field(default="score", metadata={
        "help": "grounded mode: 'score' has the model write only questions and picks each answer among spans of "
                "the shown pages by the model's likelihood; 'generate' has the model write the answer too. "
                "ScienceQA: 'score' fills in one field at a time and scores the answer among the options; "
                "'generate' has the model write whole examples. Ungrounded HotpotQA always generates", "choices": ("generate", "score")})
    concurrency: int = field(default=1, metadata={
        "help": "rounds generated at once (a batching server decodes them together); rows are still taken "
                "in round order"})
    max_candidates: int = field(default=20, metadata={
        "help": "most candidate answer spans scored per question (answer_by='score')"})
    answer_norm: str = field(default="char", metadata={
        "help": "length normalisation of candidate scores (answer_by='score'): 'char' divides the "
                "log-likelihood by the span's length in characters; 'none' uses the scores as the model "
                "returns them (for a model that already returns a per-token mean)", "choices": ("char", "none")})
    permutations: int = field(default=3, metadata={
        "help": "ScienceQA: other option orders each item is scored in; it is kept only when the model picks the "
                "same option's content in at least min_agreement of them (a label, not a position preference); "
                "0 turns the check off"})
    min_agreement: float = field(default=1.0, metadata={
        "help": "ScienceQA: share of the other option orders that must pick the item's answer"})
    shuffle_options: bool = field(default=True, metadata={
        "help": "ScienceQA: put a kept item's options in a random order, so answer letters are uniform"})

    def order_check(self) -> OrderCheck:
        return OrderCheck(self.permutations, self.min_agreement, self.shuffle_options, self.answer_norm)  # type: ignore[arg-type]


@dataclass
class _Round:
    """One round's prompt and (grounded mode) the pages it shows."""

    prompt: str
    ground: Grounding | None = None
    pages: dict[str, list[str]] = field(default_factory=dict)
    shown_pages: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class SelfInstructReport:
    task: str
    out_path: str
    accepted: int = 0  # rows added by this run
    total: int = 0  # rows in the output file at the end
    rejected: Counter = field(default_factory=Counter)  # reason → count
    rounds: int = 0
    stopped_reason: str = ""
    agreement: list[float] = field(default_factory=list)  # ScienceQA: each checked item's option-order agreement
    answer_letters: Counter = field(default_factory=Counter)  # ScienceQA: the answer letters of the rows added

    def summary(self) -> dict[str, Any]:
        """The run's counts as a record keeps them: rows, rounds, each check's removals, agreement, letters."""
        out: dict[str, Any] = {"questions": self.total, "added": self.accepted, "rounds": self.rounds,
                               "rejected": sum(self.rejected.values()), "rejected_by": dict(self.rejected)}
        if self.agreement:
            out["order_checked"] = len(self.agreement)
            out["order_agreement"] = round(sum(self.agreement) / len(self.agreement), 4)
        if self.answer_letters:
            out["answer_letters"] = dict(sorted(self.answer_letters.items()))
        return out


class SelfInstructError(AutoactError):
    """Self-instruct could not reach `n`; `report` holds what it did."""

    def __init__(self, message: str, report: SelfInstructReport) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------- files

def read_seeds(path: str | Path, task: Task) -> list[dict[str, Any]]:
    """Seed examples (`question`, `answer`, + `caption`/`ocr`), as rows the prompt can show."""
    path = Path(path)
    seeds: list[dict[str, Any]] = []
    for lineno, row in iter_jsonl(path, "seeds file"):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) \
                or not isinstance(row.get("answer"), str):
            raise DataError(f"{path}:{lineno}: a seed needs string fields 'question' and 'answer'")
        if task.name == "scienceqa":
            stem, choices = question_stem(row["question"]), row.get("choices")
            if not isinstance(choices, list):
                options = re.split(r"\n\s*Options?\s*:", row["question"], maxsplit=1)
                choices = split_options(options[1])[1] if len(options) == 2 else []
            idx = answer_index(row["answer"], choices) if len(choices) >= 2 else None
            if idx is None:
                raise DataError(f"{path}:{lineno}: a ScienceQA seed needs 'Options: (A) .. (B) ..' in its question "
                                f"(or 'choices') and an answer naming one of them")
            row = {**row, "question": f"{stem}\nOptions: {render_options(choices)}", "choices": choices,
                   "answer": LETTERS[idx]}
        seeds.append(row)
    if not seeds:
        raise DataError(f"{path}: no seed examples")
    return seeds


def load_output(path: Path, task: Task) -> list[dict[str, Any]]:
    """Rows already in the output file (a torn last line from an interrupted write is cut off)."""
    rows: list[dict[str, Any]] = []
    for lineno, row in read_appendable(path):
        if problem := task.validate(row):
            raise DataError(f"{path}:{lineno}: {problem} (task {task.name})")
        rows.append(row)
    return rows


def _dedup_text(row: Mapping[str, Any]) -> str:
    return str(row["question"])


def _shorten(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _guess_type(question: str, answer: str) -> str:
    norm_a = normalize_answer(answer)
    if norm_a in ("yes", "no"):
        return "comparison"
    if " or " in f" {question.lower()} " and norm_a and norm_a in normalize_answer(question):
        return "comparison"
    return "bridge"


# --------------------------------------------------------------------------- the loop

def _check(config: SelfInstructConfig, task: Task, corpus_rows: Sequence[Mapping[str, Any]] | None) -> bool:
    if config.task and get_task(config.task).name != task.name:
        raise ConfigError(f"self-instruct config is for task {config.task!r} but was run for {task.name!r}")
    for name in ("n", "per_round", "max_empty_rounds", "max_answer_words", "per_pair", "max_page_chars",
                 "max_candidates"):
        if getattr(config, name) < 1:
            raise ConfigError(f"self-instruct: {name} must be at least 1, got {getattr(config, name)}")
    if config.permutations < 0 or not 0 <= config.min_agreement <= 1:
        raise ConfigError("self-instruct: permutations must not be negative and min_agreement must lie in [0, 1]")
    if config.examples_shown < 0 or config.max_tokens < 0:
        raise ConfigError("self-instruct: examples_shown and max_tokens must not be negative")
    if config.answer_by not in ("generate", "score"):
        raise ConfigError(f"self-instruct: answer_by must be 'generate' or 'score', got {config.answer_by!r}")
    if config.answer_norm not in ("char", "none"):
        raise ConfigError(f"self-instruct: answer_norm must be 'char' or 'none', got {config.answer_norm!r}")
    if not (0 < config.near_duplicate <= 1 and 0 < config.similarity <= 1):
        raise ConfigError("self-instruct: near_duplicate and similarity must lie in (0, 1]")
    grounded = config.grounded or corpus_rows is not None
    if grounded and task.name != "hotpotqa":
        raise ConfigError(f"grounded self-instruct needs a HotpotQA-format corpus; task {task.name!r} has none")
    if grounded and not corpus_rows:
        raise ConfigError("grounded self-instruct needs corpus rows (HotpotQA format, with 'context')")
    return grounded


def run_self_instruct(model: CompletionModel, task_name: str, seeds_path: str | Path, out_path: str | Path,
                      config: SelfInstructConfig | None = None,
                      corpus_rows: Sequence[Mapping[str, Any]] | None = None,
                      progress: bool = True, avoid: Sequence[str] = (),
                      held_out: Sequence[str] = ()) -> SelfInstructReport:
    """Generate rows until `out_path` holds `config.n`; resumes from what the file already has.

    The model should sample (temperature 0.7-1.0) for variety: for an
    `EndpointModel` set `EndpointConfig.temperature`. Grounded mode is on when
    `config.grounded` or `corpus_rows` is given. Raises SelfInstructError after
    `max_empty_rounds` rounds in a row add nothing. Questions in `avoid` (an earlier round's) count
    as duplicates, so they are never generated again. A question that repeats (or nearly repeats) one
    in `held_out` (the questions to be evaluated) is dropped as `eval_duplicate` / `eval_near_duplicate`,
    so no evaluation question enters training.
    """
    config = config or SelfInstructConfig()
    task = get_task(task_name)
    grounded = _check(config, task, corpus_rows)
    seeds = read_seeds(seeds_path, task)
    interrupt.reset()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with OutputLock(out, "examples file"):  # one writer: a second run on the same file is refused
        return _generate_rows(model, task, seeds, out, config, grounded, corpus_rows, progress, avoid, held_out)


def _generate_rows(model: CompletionModel, task: Task, seeds: list[dict[str, Any]], out: Path,
                   config: SelfInstructConfig, grounded: bool, corpus_rows: Sequence[Mapping[str, Any]] | None,
                   progress: bool, avoid: Sequence[str], held_out: Sequence[str]) -> SelfInstructReport:
    """The self-instruct loop over an output file this process holds."""
    name = task.name
    generated = load_output(out, task)
    report = SelfInstructReport(task=name, out_path=str(out), total=len(generated))

    index = DedupIndex(jaccard=config.near_duplicate, ratio=config.similarity)
    for row in [*seeds, *generated, *(corpus_rows or []), *({"question": q} for q in avoid)]:
        if isinstance(row.get("question"), str):
            index.add(_dedup_text(row))
    evaluated = DedupIndex(jaccard=config.near_duplicate, ratio=config.similarity)
    for question in held_out:
        evaluated.add(question)

    def repeats(text: str) -> str | None:
        """Why a new question may not be kept: it repeats a known one, or an evaluation question (`eval_…`)."""
        if verdict := index.check(text):
            return verdict
        return f"eval_{verdict}" if (verdict := evaluated.check(text)) else None
    ids = {str(r["id"]) for r in generated}
    numbers = [int(m.group(1)) for i in ids if (m := re.fullmatch(rf"si-{name}-(\d+)", i))]
    next_number = max(numbers, default=-1) + 1

    rng = random.Random(f"{config.seed}:{len(generated)}")
    groundings = find_groundings(corpus_rows) if grounded and corpus_rows else []
    rng.shuffle(groundings)
    per_call = config.per_pair if grounded else config.per_round
    scored = grounded and config.answer_by == "score"
    guided = name == "scienceqa" and config.answer_by == "score"
    budget = config.max_tokens or max(128, per_call * _TOKENS_PER_ITEM[name])

    if len(generated) >= config.n:
        report.stopped_reason = f"{out} already holds {len(generated)} rows (n={config.n})"
        return report
    started = 0  # rounds prepared so far

    def prepare() -> _Round:
        """The next round's prompt and grounding (main thread: the rng's order stays reproducible)."""
        nonlocal started
        started += 1
        shown = [*seeds, *rng.sample(generated, min(config.examples_shown, len(generated)))]
        rng.shuffle(shown)
        if groundings:
            ground = groundings[(started - 1) % len(groundings)]
            pages = {t: list(s) for t, s in corpus_rows[ground.row]["context"]}  # type: ignore[index]
            shown_pages = [(t, page_text(pages[t], config.max_page_chars)) for t in ground.titles]
            return _Round(build_prompt(name, shown, per_call, shown_pages, ground.kind, ground.what,
                                       questions_only=scored), ground, pages, shown_pages)
        return _Round(build_prompt(name, shown, 1 if guided else per_call))

    def generate(r: _Round) -> tuple[str, list[dict[str, Any] | str], list[float]]:
        """The round's model calls (worker thread): its raw text, its items or rejection reasons, and (ScienceQA)
        each checked item's option-order agreement."""
        if guided:
            items = [guided_scienceqa_item(model, r.prompt, config.answer_norm)  # type: ignore[arg-type]
                     for _ in range(per_call)]
            text = " | ".join(i if isinstance(i, str) else i["question"] for i in items)
        else:
            text = model.generate(r.prompt, stop=[], max_tokens=budget)
            truncated = len(text) >= 3 * budget
            if r.ground is not None and scored:
                return text, _scored_items(model, CUE + text, truncated, r.shown_pages, r.ground.kind, config,
                                           repeats), []
            items = read_items(CUE + text, name, truncated=truncated, max_answer_words=config.max_answer_words)
        if name != "scienceqa":
            return text, items, []
        checked = [_order_checked(model, r.prompt, item, config) for item in items]
        return text, [item for item, _ in checked], [a for _, a in checked if a is not None]

    empty_rounds = 0
    bar = tqdm(total=config.n, initial=len(generated), desc=f"self-instruct {name}", unit="row",
               disable=not progress)
    # Up to `concurrency` rounds are in flight (the batched worker decodes them together); their
    # results are taken in the order the rounds were started, so dedup, ids and the file stay in order.
    pool = WorkerPool(max(1, config.concurrency), "self-instruct")
    pending: deque[tuple[_Round, Future]] = deque()
    try:
        with bar, out.open("a", encoding="utf-8") as f:
            while len(generated) < config.n:
                while len(pending) < max(1, config.concurrency):
                    r = prepare()
                    pending.append((r, pool.submit(generate, r)))
                r, future = pending.popleft()
                text, items, agreement = future.result()
                report.rounds += 1
                report.agreement += agreement
                added = 0
                for item in items:
                    if isinstance(item, str):
                        report.rejected[item] += 1
                        continue
                    if r.ground is not None and not answer_supported(
                            item["answer"], " ".join(" ".join(r.pages[t]) for t in r.ground.titles)):
                        report.rejected["answer_not_in_pages"] += 1
                        continue
                    if verdict := repeats(_dedup_text(item)):
                        report.rejected[verdict] += 1
                        continue
                    row = _make_row(name, item, r.ground, r.pages)
                    while (row_id := f"si-{name}-{next_number:05d}") in ids:
                        next_number += 1
                    row = {"id": row_id, **row}
                    if problem := task.validate(row):
                        report.rejected["invalid"] += 1
                        log.debug("self-instruct: dropping %s: %s", row_id, problem)
                        continue
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    f.flush()
                    ids.add(row_id)
                    index.add(_dedup_text(row))
                    generated.append(row)
                    if name == "scienceqa":
                        report.answer_letters[row["answer"]] += 1
                    added += 1
                    report.accepted += 1
                    bar.update(1)
                    if len(generated) >= config.n:
                        break
                report.total = len(generated)
                bar.set_postfix(accepted=report.accepted, rejected=sum(report.rejected.values()))
                empty_rounds = 0 if added else empty_rounds + 1
                if empty_rounds >= config.max_empty_rounds:
                    report.stopped_reason = f"{empty_rounds} rounds in a row added nothing"
                    raise SelfInstructError(
                        f"self-instruct for {name} gave up after {empty_rounds} rounds in a row that added no new "
                        f"example ({len(generated)}/{config.n} rows in {out}; rejected so far: "
                        f"{dict(report.rejected) or 'none'}). The model's last output was: "
                        f"{_shorten(text)!r}" + ("" if text.strip() else " (empty)")
                        + ". Try sampling at a higher temperature, a stronger model, or other seeds.", report)
    except KeyboardInterrupt:  # rounds in flight are abandoned; every row written so far is whole and kept
        interrupt.stop()
        report.stopped_reason = "interrupted"
        raise interrupt.Interrupted(
            f"interrupted: {len(generated)} of {config.n} examples are in {out} ({report.accepted} new this run); "
            "run the same command again to continue") from None
    finally:
        pool.shutdown(cancel=True)
    report.stopped_reason = f"reached n={config.n}"
    return report


def _order_checked(model: CompletionModel, prompt: str, item: dict[str, Any] | str,
                   config: SelfInstructConfig) -> tuple[dict[str, Any] | str, float | None]:
    """A ScienceQA item after the option-order check and the shuffle (`option_order`), and its agreement.

    An item whose answer the model does not pick again in at least `min_agreement` of the other
    option orders is `position_bias`. The shuffle's order depends on the seed and the question only.
    """
    check = config.order_check()
    if isinstance(item, str):
        return item, None
    rng = random.Random(f"{config.seed}:{item['question']}")
    agreement = None
    if check.permutations:
        agreement = check_option_order(model, lambda options: answer_scoring_text(prompt, item, options),
                                       item["choices"], letter_index(item["answer"]), check, rng,
                                       original=item.get("answer_source") != "scored")  # a written answer
        if agreement < check.min_agreement:
            return "position_bias", agreement
        item = {**item, "answer_agreement": round(agreement, 4)}
    return (shuffle_options(item, rng) if check.shuffle else item), agreement


def _scored_items(model: CompletionModel, text: str, truncated: bool, pages: Sequence[tuple[str, str]],
                  kind: str, config: SelfInstructConfig,
                  repeats: Callable[[str], str | None]) -> list[dict[str, Any] | str]:
    """The round's questions with scored answers (answer_by="score"), or the reason each was dropped.

    Duplicates are dropped before scoring (it costs a model call); a question
    whose likeliest answer it already states is `question_contains_answer`.
    """
    out: list[dict[str, Any] | str] = []
    for question in read_questions(text, truncated=truncated):
        if question in ("no_question", "unfinished", "bad_question"):
            out.append(question)
            continue
        if verdict := repeats(question):
            out.append(verdict)
            continue
        candidates = extract_candidates(pages, kind, question, limit=config.max_candidates)
        if not candidates:
            out.append("no_candidates")
            continue
        answer, _ = choose_answer(model, scoring_prompt(pages, question), candidates,
                                  norm=config.answer_norm)  # type: ignore[arg-type]
        if states_answer(question, answer, kind):
            out.append("question_contains_answer")
        elif len(answer.split()) > config.max_answer_words:
            out.append("answer_too_long")
        else:
            out.append({"question": question, "answer": answer, "answer_source": "scored"})
    return out


def _make_row(name: str, item: Mapping[str, Any], ground: Grounding | None,
              pages: Mapping[str, list[str]]) -> dict[str, Any]:
    if name == "scienceqa":
        return {**item, "metadata": {"has_image": item["caption"] != NO_IMG, "source": "self-instruct"}}
    row: dict[str, Any] = {"question": item["question"], "answer": item["answer"], "level": "synthetic"}
    if "answer_source" in item:
        row["answer_source"] = item["answer_source"]
    if ground is None:
        row["type"] = _guess_type(item["question"], item["answer"])
        return row
    row["type"] = ground.kind
    row["grounding"] = list(ground.titles)
    order = [*ground.titles, *(t for t in pages if t not in ground.titles)]
    row["context"] = [[t, list(pages[t])] for t in order]
    return row
