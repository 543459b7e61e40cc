"""Self-instruct (AutoAct stage 1): grow a task's few seed examples into many synthetic ones.

Each round shows the model an instruction, the seeds and a few examples
generated so far, and asks for new ones. The answer is parsed leniently
(numbering, `Q:`/`A:` labels, missing labels, chatter around the items), then
every item is checked: well formed, short answer (HotpotQA), answer among the
options (ScienceQA), not an exact or near duplicate of a seed, of an accepted
row, or (grounded mode) of a corpus question. Accepted rows are appended to a
JSONL file one by one, so a run that stops can be resumed up to `n`.

Grounded mode (HotpotQA) shows one or two corpus paragraphs per round, picked
as a bridge pair (linked pages) or a comparison pair (pages about things of the
same kind), and asks for questions those pages answer. The corpus row's own
question and answer are never shown.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

from tqdm import tqdm

from agents.llm import CompletionModel
from autoact.errors import AutoactError, ConfigError, DataError
from evaluation.metrics import letter_index, normalize_answer
from prompts.builder import load_template
from tasks import get_task
from tasks.base import Task
from tools.image2text import ocr_texts
from training.dedup import DedupIndex

log = logging.getLogger(__name__)

CUE = "Question:"
NO_IMG = "no img"
LETTERS = "ABCDE"
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


@dataclass
class SelfInstructReport:
    task: str
    out_path: str
    accepted: int = 0  # rows added by this run
    total: int = 0  # rows in the output file at the end
    rejected: Counter = field(default_factory=Counter)  # reason → count
    rounds: int = 0
    stopped_reason: str = ""


class SelfInstructError(AutoactError):
    """Self-instruct could not reach `n`; `report` holds what it did."""

    def __init__(self, message: str, report: SelfInstructReport) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------- parsing

_MARKUP = re.compile(r"\*\*|__|`")
_NUMBER = re.compile(r"^\s*(?:#{1,3}\s*)?(?:(?:example|item|no\.)\s*)?(?:\(\d{1,3}\)|#?\d{1,3}[.):\]])(?:\s+|$)",
                     re.IGNORECASE)
_BULLET = re.compile(r"^\s*[-*•+]\s+")
_LABEL_NAMES = (r"question|q|correct answer|final answer|answer|ans|a|options?|choices|image caption|caption"
                r"|image text|text in (?:the )?image|ocr")
_LABEL = re.compile(rf"^(?P<name>{_LABEL_NAMES})\s*\d{{0,3}}\s*[:：]\s*", re.IGNORECASE)
_LABEL_LOOSE = re.compile(r"^(?P<name>question|answer|options?|choices)\s*\d{0,3}\s*[.)\-–—]\s+", re.IGNORECASE)
_INLINE_LABEL = re.compile(r"\s+(?=(?:answer|options?|choices|image caption|image text|ocr)\s*:)", re.IGNORECASE)
_INLINE_A = re.compile(r"\s+(?=A\s*:\s)")
_OPTION_LINE = re.compile(r"^\(?([A-Za-z])\s*[).:\]]\s*(.+)$")
_ANY_OPTION = re.compile(r"(?:^|(?<=\s))\(?([A-Z])[).:\]]\s+")
_PAREN_OPTION = re.compile(r"\(([A-Z])\)\s*")
_ANSWER_IS = re.compile(r"^\s*(?:so\s+)?(?:the\s+)?(?:correct\s+|final\s+|right\s+)?answer\s*(?:is|would be|:)\s*",
                        re.IGNORECASE)
_OTHER_LABEL = re.compile(r"^[A-Za-z][A-Za-z ]{0,24}:\s")
_LETTER_ONLY = re.compile(r"^\(?([A-Ea-e])\)?[.:)]?$")
_LETTER_TEXT = re.compile(r"^\(?([A-E])\)?\s*[.:)\-]?\s+(.+)$")
_OPTION_WORD = re.compile(r"^(?:option|choice)\s*\(?([A-E])\)?\.?$", re.IGNORECASE)
_YES_NO = re.compile(r"^(yes|no)\b(?:[\s,.!;:]|$)", re.IGNORECASE)
_EMPTY_VALUES = {"", "none", "n/a", "na", "no", "nothing", "no image", "no img", "no picture", "-", "[]", "null"}
_PLACEHOLDER_ANSWERS = {"", "n/a", "unknown", "none", "answer"}
_CANON = {"q": "question", "question": "question", "a": "answer", "ans": "answer", "answer": "answer",
          "correct answer": "answer", "final answer": "answer", "option": "options", "options": "options",
          "choices": "options", "caption": "caption", "image caption": "caption", "image text": "ocr", "ocr": "ocr"}


@dataclass
class _Draft:
    question: list[str] = field(default_factory=list)
    answer: str | None = None
    options: list[str] = field(default_factory=list)
    caption: str | None = None
    ocr: str | None = None
    in_options: bool = False
    guessed: bool = False  # the answer is an unlabelled line; a labelled one later replaces it

    @property
    def started(self) -> bool:
        return bool(self.question) or self.answer is not None


def _canon_label(name: str) -> str:
    name = " ".join(name.lower().split())
    return "ocr" if name.startswith("text in") else _CANON[name]


def _lines(text: str) -> Iterable[str]:
    for raw in text.splitlines():
        line = _MARKUP.sub("", raw).strip()
        line = re.sub(r"^>\s*", "", line)
        starts_q = bool(re.match(r"^(?:\d{1,3}[.)]\s*)?q\s*\d{0,3}\s*:", line, re.IGNORECASE))
        parts = _INLINE_LABEL.split(line)
        if starts_q:
            parts = [p for part in parts for p in _INLINE_A.split(part)]
        yield from (p.strip() for p in parts)


def _looks_like_question(line: str) -> bool:
    return line.rstrip().endswith("?") and len(line.split()) >= 4


def _drafts(text: str, multiple_choice: bool) -> list[_Draft]:
    """Split a generation into raw items; lines that belong to no item are dropped."""
    drafts: list[_Draft] = []

    def start() -> _Draft:
        drafts.append(_Draft())
        return drafts[-1]

    cur: _Draft | None = None
    for line in _lines(text):
        numbered = _NUMBER.match(line)
        if numbered:
            line = line[numbered.end():].strip()
            if cur is None or cur.started:
                cur = start()
        if not line:
            continue
        if multiple_choice and cur is not None and cur.question and cur.answer is None:
            opt = _OPTION_LINE.match(line)
            if opt and letter_index(opt.group(1)) == len(cur.options):
                cur.options.append(opt.group(2).strip())
                cur.in_options = True
                continue
            if cur.in_options and _BULLET.match(line):
                cur.options.append(_BULLET.sub("", line).strip())
                continue
        label = _LABEL.match(line) or _LABEL_LOOSE.match(line)
        if label:
            name, rest = _canon_label(label.group("name")), line[label.end():].strip()
            if name == "question":
                if cur is None or cur.started:
                    cur = start()
                if rest:
                    cur.question.append(rest)
            elif cur is None:
                continue  # an answer or option with no question: chatter
            elif name == "answer":
                if cur.guessed and cur.answer is not None:
                    cur.question.append(cur.answer)  # it was more question text after all
                    cur.answer = None
                if cur.answer is None:
                    cur.answer, cur.guessed = rest, False
                    cur.in_options = False
            elif name == "options":
                if rest:
                    cur.options.extend(split_options(rest)[1] or [rest])
                cur.in_options = not rest
            elif name == "caption":
                cur.caption = rest
                cur.in_options = False
            else:
                cur.ocr = rest
                cur.in_options = False
            continue
        # an unlabelled line
        if cur is not None and cur.guessed:
            if _looks_like_question(line):
                cur.guessed = False  # the next question: the guess stands
            else:  # a second unlabelled line: both were question text
                cur.question.append(cur.answer or "")
                cur.answer, cur.guessed = None, False
        if cur is None or cur.answer is not None:
            if _looks_like_question(line):
                cur = start()
                cur.question.append(line)
        elif not cur.question:
            cur.question.append(line)
        elif _ANSWER_IS.match(line):
            cur.answer = line
        elif not multiple_choice:
            if _OTHER_LABEL.match(line):
                continue  # "Explanation: ...", "Hint: ...": not part of the item
            if cur.question[-1].endswith("?"):
                cur.answer, cur.guessed = line, True  # "1. Who ...?\nJohn Smith": the label is missing
            else:
                cur.question.append(line)
        elif cur.options:
            if _LETTER_ONLY.match(line):
                cur.answer = line
        else:
            cur.question.append(line)
    return drafts


def split_options(text: str, parens_only: bool = False) -> tuple[str, list[str]]:
    """Text before the options, and the options, of `... (A) x (B) y`; letters must run A, B, C..."""
    pattern = _PAREN_OPTION if parens_only else _ANY_OPTION
    marks: list[re.Match[str]] = []
    for m in pattern.finditer(text):
        if letter_index(m.group(1)) == len(marks):
            marks.append(m)
    if not marks:
        return text, []
    bounds = [m.start() for m in marks[1:]] + [len(text)]
    options = [text[m.end():end].strip().rstrip(",;").strip() for m, end in zip(marks, bounds)]
    return text[:marks[0].start()].strip(), options


def _clean_answer(raw: str) -> str:
    text = raw.strip().strip("*\"'“”").strip()
    text = _ANSWER_IS.sub("", text).strip().strip("\"'“”").strip()
    if yes_no := _YES_NO.match(text):
        return yes_no.group(1).lower()
    if text.endswith(".") and not re.search(r"\b[A-Z]\.$|\b(?:Jr|Sr|St|Inc|Co|Ltd)\.$", text):
        text = text[:-1].rstrip()
    return text


def _answer_index(raw: str, options: Sequence[str]) -> int | None:
    """The option an answer names: its text, `B`, `(B)`, `B. text`, `option B`; None if unclear."""
    text = _ANSWER_IS.sub("", raw.strip().strip("*\"'“”")).strip()
    norms = [normalize_answer(o) for o in options]
    norm = normalize_answer(text)
    if norm and norm in norms:
        return norms.index(norm)
    m = _LETTER_ONLY.match(text) or _OPTION_WORD.match(text)
    if m:
        idx = letter_index(m.group(1))
        return idx if idx < len(options) else None
    m = _LETTER_TEXT.match(text)
    if m and letter_index(m.group(1)) < len(options):
        idx = letter_index(m.group(1))
        return idx if normalize_answer(m.group(2)) == norms[idx] else None
    return None


def _empty(value: str | None) -> bool:
    return value is None or value.strip().strip(".").lower() in _EMPTY_VALUES


def _ocr_value(raw: str | None, has_image: bool) -> str:
    if _empty(raw):
        return "[]" if has_image else NO_IMG
    assert raw is not None
    texts = ocr_texts(raw) if raw.lstrip().startswith("[") else [t.strip() for t in raw.split(";") if t.strip()]
    return repr(texts)


def _finish_hotpotqa(d: _Draft, max_answer_words: int) -> dict[str, Any] | str:
    question = " ".join(" ".join(d.question).split())
    if not question:
        return "no_question"
    if d.answer is None:
        return "no_answer"
    answer = _clean_answer(d.answer)
    if answer.lower().strip(" .…?") in _PLACEHOLDER_ANSWERS:
        return "no_answer"
    if not 4 <= len(question.split()) <= 80:
        return "bad_question"
    if len(answer.split()) > max_answer_words:
        return "answer_too_long"
    if normalize_answer(answer) == normalize_answer(question):
        return "bad_question"
    return {"question": question, "answer": answer}


def _finish_scienceqa(d: _Draft) -> dict[str, Any] | str:
    stem = "\n".join(d.question).strip()
    options = [" ".join(o.split()) for o in d.options]
    if not options:
        stem, options = split_options(stem, parens_only=True)
    if not stem or len(stem.split()) < 2:
        return "no_question"
    if d.answer is None or not d.answer.strip():
        return "no_answer"
    norms = [normalize_answer(o) for o in options]
    if not 2 <= len(options) <= 5 or not all(options) or len(set(norms)) < len(norms):
        return "bad_options"
    idx = _answer_index(d.answer, options)
    if idx is None:
        return "answer_not_in_options"
    has_image = not _empty(d.caption)
    return {
        "question": f"{stem}\nOptions: " + " ".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options)),
        "choices": options,
        "answer": LETTERS[idx],
        "caption": d.caption.strip() if has_image and d.caption else NO_IMG,
        "ocr": _ocr_value(d.ocr, has_image),
    }


def read_items(text: str, task_name: str, *, truncated: bool = False,
               max_answer_words: int = 10) -> list[dict[str, Any] | str]:
    """Every item of a generation: a parsed dict, or the reason it was dropped.

    The last item is `unfinished` when it has no (or an empty) answer, or when `truncated`
    (the model ran out of tokens) and the text does not end with a newline.
    """
    multiple_choice = task_name == "scienceqa"
    drafts = _drafts(text, multiple_choice)
    out: list[dict[str, Any] | str] = []
    drafts = [d for d in drafts if d.started]
    for i, d in enumerate(drafts):
        last = i == len(drafts) - 1
        if last and (not (d.answer or "").strip() or (truncated and not text.endswith("\n"))):
            out.append("unfinished")
            continue
        out.append(_finish_scienceqa(d) if multiple_choice else _finish_hotpotqa(d, max_answer_words))
    return out


def parse_hotpotqa_items(text: str, *, truncated: bool = False, max_answer_words: int = 10) -> list[dict[str, Any]]:
    """Well-formed `{question, answer}` items of a generation, in order."""
    return [it for it in read_items(text, "hotpotqa", truncated=truncated, max_answer_words=max_answer_words)
            if isinstance(it, dict)]


def parse_scienceqa_items(text: str, *, truncated: bool = False) -> list[dict[str, Any]]:
    """Well-formed `{question, choices, answer, caption, ocr}` items of a generation, in order."""
    return [it for it in read_items(text, "scienceqa", truncated=truncated) if isinstance(it, dict)]


# --------------------------------------------------------------------------- prompts

def _stem(question: str) -> str:
    return re.split(r"\n\s*Options?\s*:", question, maxsplit=1)[0].strip()


def render_example(row: Mapping[str, Any], task_name: str) -> str:
    """One example block as the prompt shows it (and as the parser reads it back)."""
    if task_name != "scienceqa":
        return f"Question: {row['question'].strip()}\nAnswer: {row['answer'].strip()}"
    choices, letter = row["choices"], row["answer"].strip()
    has_image = not _empty(row.get("caption"))
    texts = ocr_texts(row.get("ocr"))
    return "\n".join([
        f"Question: {_stem(row['question'])}",
        "Options: " + " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)),
        f"Image caption: {row['caption'].strip() if has_image else 'no image'}",
        f"Image text: {'; '.join(texts) if texts else 'none'}",
        f"Answer: {letter}. {choices[letter_index(letter)]}",
    ])


_HINTS = {
    "bridge": "The first page leads to the second: ask about the second page through what the first page "
              "says, so that both pages are needed.",
    "comparison": "Both pages are about the same kind of thing{kind}: ask a question that compares them (which "
                  "one is older, larger or first, or whether both share something), so that both pages are needed.",
    "single": "Ask about a fact stated on the page.",
}


def build_prompt(task_name: str, examples: Sequence[Mapping[str, Any]], count: int,
                 pages: Sequence[tuple[str, str]] = (), kind: str = "", what: str = "") -> str:
    """The round's prompt: instruction, examples, (grounded) pages and hint, then the `Question:` cue."""
    blocks = "\n\n".join(render_example(r, task_name) for r in examples)
    if pages:
        hint = _HINTS[kind].format(kind=f" ({what})" if what else "")
        text = load_template("self_instruct_grounded").substitute(
            examples=blocks, count=count, hint=hint,
            pages="\n\n".join(f"Page: {title}\n{body}" for title, body in pages))
    else:
        text = load_template(f"self_instruct_{task_name}").substitute(examples=blocks, count=count)
    return f"{text}\n\n{CUE}"


# --------------------------------------------------------------------------- grounding

@dataclass(frozen=True)
class Grounding:
    """The pages a round is grounded on, and the corpus row they come from."""

    titles: tuple[str, ...]
    kind: Literal["bridge", "comparison", "single"]
    row: int
    what: str = ""  # the shared kind of thing, for comparison pairs ("film", "city")


_KIND_PHRASE = re.compile(r"\b(?:is|was|are|were)\s+(?:an?|the|one of the)\s+([^,.;()]+)", re.IGNORECASE)
_KIND_STOP = re.compile(r"\s+(?:in|of|from|who|which|that|and|based|located|by|for|with|on|at|as"
                        r"|written|known|sung|born|made|set|\w+ed)\b.*$", re.IGNORECASE)


def page_kind(sentences: Sequence[str]) -> str:
    """The kind of thing a page is about, from its first sentence ("film", "city"); "" if unclear."""
    if not sentences:
        return ""
    m = _KIND_PHRASE.search(sentences[0])
    if not m:
        return ""
    words = _KIND_STOP.sub("", m.group(1)).split()
    return words[-1].lower() if words else ""


def _mentions(text: str, title: str) -> bool:
    name = re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()
    return len(name) >= 4 and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


def find_groundings(rows: Sequence[Mapping[str, Any]], per_row: int = 3) -> list[Grounding]:
    """Bridge and comparison page pairs of a HotpotQA-format corpus.

    A row's two supporting pages give its pair (of the row's type). Rows
    without them give bridge pairs where one page names the other's title, and
    comparison pairs of pages about the same kind of thing. Single pages are
    the fallback when no pair exists.
    """
    found: list[Grounding] = []
    for i, row in enumerate(rows):
        pages = {t: s for t, s in row.get("context") or [] if s}
        gold = list(dict.fromkeys(t for t, _ in row.get("supporting_facts") or [] if t in pages))
        kind = row.get("type")
        if len(gold) == 2 and kind in ("bridge", "comparison"):
            a, b = gold
            if kind == "bridge" and _mentions("".join(pages[a]), b) < _mentions("".join(pages[b]), a):
                a, b = b, a
            what = page_kind(pages[a]) if kind == "comparison" and page_kind(pages[a]) == page_kind(pages[b]) else ""
            found.append(Grounding((a, b), kind, i, what))
            continue
        titles = list(pages)
        bridges = [(a, b) for a in titles for b in titles if a != b and _mentions("".join(pages[a]), b)]
        found += [Grounding(p, "bridge", i) for p in bridges[:per_row]]
        by_kind: dict[str, list[str]] = {}
        for t in titles:
            if k := page_kind(pages[t]):
                by_kind.setdefault(k, []).append(t)
        pairs = [(k, ts[j], ts[j + 1]) for k, ts in by_kind.items() for j in range(0, len(ts) - 1, 2)]
        found += [Grounding((a, b), "comparison", i, k) for k, a, b in pairs[:per_row]]
    if not found:
        found = [Grounding((t,), "single", i) for i, row in enumerate(rows)
                 for t, s in row.get("context") or [] if s]
    return found


def _page_text(sentences: Sequence[str], limit: int) -> str:
    text = ""
    for s in sentences:
        if text and len(text) + len(s) > limit:
            break
        text += s
    return " ".join(text.split())[: max(limit, 1)]


def _supported(answer: str, text: str) -> bool:
    norm = normalize_answer(answer)
    return norm in ("yes", "no") or (bool(norm) and f" {norm} " in f" {normalize_answer(text)} ")


# --------------------------------------------------------------------------- files

def read_seeds(path: str | Path, task: Task) -> list[dict[str, Any]]:
    """Seed examples (`question`, `answer`, + `caption`/`ocr`), as rows the prompt can show."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such seeds file")
    seeds: list[dict[str, Any]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) \
                or not isinstance(row.get("answer"), str):
            raise DataError(f"{path}:{lineno}: a seed needs string fields 'question' and 'answer'")
        if task.name == "scienceqa":
            stem, choices = _stem(row["question"]), row.get("choices")
            if not isinstance(choices, list):
                options = re.split(r"\n\s*Options?\s*:", row["question"], maxsplit=1)
                choices = split_options(options[1])[1] if len(options) == 2 else []
            idx = _answer_index(row["answer"], choices) if len(choices) >= 2 else None
            if idx is None:
                raise DataError(f"{path}:{lineno}: a ScienceQA seed needs 'Options: (A) .. (B) ..' in its question "
                                f"(or 'choices') and an answer naming one of them")
            row = {**row, "question": stem + "\nOptions: " + " ".join(
                f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)), "choices": choices, "answer": LETTERS[idx]}
        seeds.append(row)
    if not seeds:
        raise DataError(f"{path}: no seed examples")
    return seeds


def load_output(path: Path, task: Task) -> list[dict[str, Any]]:
    """Rows already in the output file. A torn last line (an interrupted write) is cut off."""
    if not path.exists():
        return []
    data = path.read_bytes()
    rows: list[dict[str, Any]] = []
    offset = 0
    lines = data.split(b"\n")
    for lineno, raw in enumerate(lines, 1):
        last = lineno == len(lines)
        if raw.strip():
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                if last:
                    log.warning("%s:%d: cutting off a torn last line", path, lineno)
                    with path.open("r+b") as f:
                        f.truncate(offset)
                    return rows
                raise DataError(f"{path}:{lineno}: not valid JSON ({e})") from None
            if problem := task.validate(row):
                raise DataError(f"{path}:{lineno}: {problem} (task {task.name})")
            rows.append(row)
        offset += len(raw) + 1
    if data and not data.endswith(b"\n"):
        with path.open("ab") as f:
            f.write(b"\n")
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
    for name in ("n", "per_round", "max_empty_rounds", "max_answer_words", "per_pair", "max_page_chars"):
        if getattr(config, name) < 1:
            raise ConfigError(f"self-instruct: {name} must be at least 1, got {getattr(config, name)}")
    if config.examples_shown < 0 or config.max_tokens < 0:
        raise ConfigError("self-instruct: examples_shown and max_tokens must not be negative")
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
                      progress: bool = True) -> SelfInstructReport:
    """Generate rows until `out_path` holds `config.n`; resumes from what the file already has.

    The model should sample (temperature 0.7-1.0) for variety: for an
    `EndpointModel` set `EndpointConfig.temperature`. Grounded mode is on when
    `config.grounded` or `corpus_rows` is given. Raises SelfInstructError after
    `max_empty_rounds` rounds in a row add nothing.
    """
    config = config or SelfInstructConfig()
    task = get_task(task_name)
    name = task.name
    grounded = _check(config, task, corpus_rows)
    seeds = read_seeds(seeds_path, task)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    generated = load_output(out, task)
    report = SelfInstructReport(task=name, out_path=str(out), total=len(generated))

    index = DedupIndex(jaccard=config.near_duplicate, ratio=config.similarity)
    for row in [*seeds, *generated, *(corpus_rows or [])]:
        if isinstance(row.get("question"), str):
            index.add(_dedup_text(row))
    ids = {str(r["id"]) for r in generated}
    numbers = [int(m.group(1)) for i in ids if (m := re.fullmatch(rf"si-{name}-(\d+)", i))]
    next_number = max(numbers, default=-1) + 1

    rng = random.Random(f"{config.seed}:{len(generated)}")
    groundings = find_groundings(corpus_rows) if grounded and corpus_rows else []
    rng.shuffle(groundings)
    per_call = config.per_pair if grounded else config.per_round
    budget = config.max_tokens or max(128, per_call * _TOKENS_PER_ITEM[name])

    if len(generated) >= config.n:
        report.stopped_reason = f"{out} already holds {len(generated)} rows (n={config.n})"
        return report
    empty_rounds = 0
    bar = tqdm(total=config.n, initial=len(generated), desc=f"self-instruct {name}", unit="row",
               disable=not progress)
    with bar, out.open("a", encoding="utf-8") as f:
        while len(generated) < config.n:
            report.rounds += 1
            shown = [*seeds, *rng.sample(generated, min(config.examples_shown, len(generated)))]
            rng.shuffle(shown)
            ground: Grounding | None = None
            pages: dict[str, list[str]] = {}
            if groundings:
                ground = groundings[(report.rounds - 1) % len(groundings)]
                pages = {t: list(s) for t, s in corpus_rows[ground.row]["context"]}  # type: ignore[index]
                shown_pages = [(t, _page_text(pages[t], config.max_page_chars)) for t in ground.titles]
                prompt = build_prompt(name, shown, per_call, shown_pages, ground.kind, ground.what)
            else:
                prompt = build_prompt(name, shown, per_call)
            text = model.generate(prompt, stop=[], max_tokens=budget)
            truncated = len(text) >= 3 * budget
            added = 0
            for item in read_items(CUE + text, name, truncated=truncated, max_answer_words=config.max_answer_words):
                if isinstance(item, str):
                    report.rejected[item] += 1
                    continue
                if ground is not None and not _supported(
                        item["answer"], " ".join(" ".join(pages[t]) for t in ground.titles)):
                    report.rejected["answer_not_in_pages"] += 1
                    continue
                if verdict := index.check(_dedup_text(item)):
                    report.rejected[verdict] += 1
                    continue
                row = _make_row(name, item, ground, pages)
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
    report.stopped_reason = f"reached n={config.n}"
    return report


def _make_row(name: str, item: Mapping[str, Any], ground: Grounding | None,
              pages: Mapping[str, list[str]]) -> dict[str, Any]:
    if name == "scienceqa":
        return {**item, "metadata": {"has_image": item["caption"] != NO_IMG, "source": "self-instruct"}}
    row: dict[str, Any] = {"question": item["question"], "answer": item["answer"], "level": "synthetic"}
    if ground is None:
        row["type"] = _guess_type(item["question"], item["answer"])
        return row
    row["type"] = ground.kind
    row["grounding"] = list(ground.titles)
    order = [*ground.titles, *(t for t in pages if t not in ground.titles)]
    row["context"] = [[t, list(pages[t])] for t in order]
    return row
