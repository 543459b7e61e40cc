"""Lenient parsing of self-instruct generations into HotpotQA / ScienceQA items.

Copes with numbering, `Q:`/`A:` labels, missing labels and chatter around the
items, then checks each: well formed, short answer (HotpotQA), answer among the
options (ScienceQA). Pure functions: no model, files or task registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from core.answers import letter_index, normalize_answer
from tools.image2text import ocr_texts

NO_IMG = "no img"
LETTERS = "ABCDE"

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


def answer_index(raw: str, options: Sequence[str]) -> int | None:
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


def is_empty(value: str | None) -> bool:
    """Whether a caption/OCR value means "nothing" (`none`, `no image`, `[]`...)."""
    return value is None or value.strip().strip(".").lower() in _EMPTY_VALUES


def _ocr_value(raw: str | None, has_image: bool) -> str:
    if is_empty(raw):
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
    idx = answer_index(d.answer, options)
    if idx is None:
        return "answer_not_in_options"
    has_image = not is_empty(d.caption)
    return {
        "question": f"{stem}\nOptions: {render_options(options)}",
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


def render_options(options: Sequence[str]) -> str:
    """Options as a question shows them: `(A) first (B) second`."""
    return " ".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))


def question_stem(question: str) -> str:
    """A ScienceQA question without its `Options:` line."""
    return re.split(r"\n\s*Options?\s*:", question, maxsplit=1)[0].strip()


def read_questions(text: str, *, truncated: bool = False) -> list[str]:
    """Every question of a generation (HotpotQA), or the reason it was dropped; answer lines are ignored.

    For grounded self-instruct with scored answers: the model only writes
    questions. The last one is `unfinished` when the model ran out of tokens
    (`truncated`) mid-question: no newline at the end and no closing `?`.
    """
    drafts = [d for d in _drafts(text, False) if d.started]
    out: list[str] = []
    for i, d in enumerate(drafts):
        question = " ".join(" ".join(d.question).split())
        if not question:
            out.append("no_question")
            continue
        last = i == len(drafts) - 1
        if last and d.answer is None and truncated and not text.endswith("\n") and not question.endswith("?"):
            out.append("unfinished")
        elif not 4 <= len(question.split()) <= 80:
            out.append("bad_question")
        else:
            out.append(question)
    return out
