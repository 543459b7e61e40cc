"""Scored answers for grounded self-instruct: the answer is a span of the shown pages, chosen by likelihood.

A weak model rarely writes a usable answer line, but it can rank a closed set
of choices. So in grounded mode the model only writes the question; the
answer is picked among candidate spans of the pages it was shown (titles,
capitalised names, numbers and dates, and yes/no for comparison pairs) by
`CompletionModel.score` on the prompt "pages + question + `Answer:`".

Length normalisation: `score` returns a log-likelihood per candidate (a sum
over its tokens for an `EndpointModel` with the default `score_norm="sum"`),
which favours short spans. `choose_answer` divides by the candidate's length
in characters by default (`norm="char"`): the token count is not known on the
client side, while characters are, and per-character log-probability is the
usual way to compare spans of unequal length (as in the lm-eval "acc_norm"
metric). Use `norm="none"` when the model already returns a per-token mean
(`score_norm="mean"`).
"""

from __future__ import annotations

import re
from typing import Literal, Sequence

from agents.llm import CompletionModel
from evaluation.metrics import normalize_answer

__all__ = ["ANSWER_CUE", "choose_answer", "extract_candidates", "scoring_prompt", "states_answer"]

ANSWER_CUE = "Answer:"
Norm = Literal["char", "none"]

_STOP = frozenset("""a an the this that these those it its he she his her they their them we our you your i
in on at of for from by with to as and or but if so after before when while during since until although
there here what which who whom whose where why how is was are were be been has had have do does did not
no yes also both however then thus one some many most all each""".split())
_JOIN = frozenset({"of", "the", "de", "da", "del", "della", "van", "von", "der", "la", "le", "du"})
_MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
          r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?")
_DATE = re.compile(rf"\b(?:{_MONTH}\s+\d{{1,2}},?\s+\d{{3,4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{3,4}}|{_MONTH}\s+\d{{3,4}})\b")
_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])\d+(?:\.\d+)?(?![\w])")
_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][\w'’.-]*[\w]|[A-Za-zÀ-ÖØ-öø-ÿ]")
_SENTENCE_END = re.compile(r"[.!?]\s*$")


def _strip_title(title: str) -> str:
    return re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()


_MONTHS = frozenset(re.findall(r"[A-Z][a-z]+", _MONTH))


def _joined(text: str, words: list[tuple[str, int, int]], k: int) -> bool:
    """Whether word `k` follows word `k - 1` with only a space or a hyphen between them."""
    gap = text[words[k - 1][2]:words[k][1]]
    return gap.strip() in ("", "-") and "\n" not in gap


def _is_cap(word: str) -> bool:
    return word[:1].isupper()


def _spans(text: str) -> list[str]:
    """Capitalised multi-word spans ("University of Warsaw") and single capitalised words.

    A capitalised stopword ("The", "She", "In") is never a candidate on its
    own; it may open a span only mid-sentence ("The Beatles" in running text).
    """
    out: list[str] = []
    words = [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text)]
    i = 0
    while i < len(words):
        word, start, _ = words[i]
        initial = not text[:start].strip() or bool(_SENTENCE_END.search(text[:start]))
        if not _is_cap(word) or (word.lower() in _STOP and (initial or word.lower() != "the")):
            i += 1
            continue
        j = last = i
        while True:
            k = j + 1
            while k < len(words) and words[k][0] in _JOIN and _joined(text, words, k):
                k += 1
            if k < len(words) and _joined(text, words, k) and _is_cap(words[k][0]) \
                    and words[k][0].lower() not in _STOP and (k == j + 1 or words[k][0] not in _MONTHS):
                j = last = k
            else:
                break
        span = text[words[i][1]:words[last][2]].rstrip(".")
        if last > i:
            out.append(span)
            if word.lower() == "the":
                out.append(text[words[i + 1][1]:words[last][2]].rstrip("."))
        elif word.lower() not in _STOP and word.rstrip(".") not in _MONTHS:
            out.append(span)
        i = last + 1
    return out


def _numbers(text: str) -> list[str]:
    dates = [m.group(0).rstrip(".,") for m in _DATE.finditer(text)]
    return dates + [m.group(0) for m in _NUMBER.finditer(text)]


def extract_candidates(pages: Sequence[tuple[str, str]], kind: str = "bridge", question: str = "",
                       limit: int = 20) -> list[str]:
    """Candidate answer spans of the shown `pages` (title, text), best first, at most `limit`.

    Order: page titles; spans found in both pages (or, for a bridge pair, in
    the second page, where a bridge question's answer lives); the other
    spans; then numbers and dates; "yes"/"no" for comparison pairs (always
    kept). Deduplicated by normalised form; a candidate equal to the
    `question` itself is never offered.
    """
    texts = [text for _, text in pages]
    titles = [_strip_title(t) for t, _ in pages]
    found = [[*_spans(text), *_numbers(text)] for text in texts]
    norm_pages = [f" {normalize_answer(t)} " for t in texts]

    def in_page(span: str, k: int) -> bool:
        n = normalize_answer(span)
        return bool(n) and f" {n} " in norm_pages[k]

    spans = [s for group in found for s in group]
    both = [s for s in spans if len(pages) > 1 and all(in_page(s, k) for k in range(len(pages)))]
    second = [s for s in found[-1]] if kind == "bridge" and len(pages) > 1 else []
    names = [s for s in spans if not _NUMBER.fullmatch(s)]
    numbers = [s for s in spans if _NUMBER.fullmatch(s)]
    ordered = [*titles, *both, *(s for s in second if not _NUMBER.fullmatch(s)), *names,
               *(s for s in second if _NUMBER.fullmatch(s)), *numbers]
    tail = ["yes", "no"] if kind == "comparison" else []
    seen = {normalize_answer(question)} if question else set()
    out: list[str] = []
    for cand in ordered:
        key = normalize_answer(cand)
        if not key or key in seen or key in ("yes", "no"):
            continue
        seen.add(key)
        out.append(cand.strip())
    room = max(limit - len(tail), 0)
    return out[:room] + tail


def scoring_prompt(pages: Sequence[tuple[str, str]], question: str) -> str:
    """The prompt candidates are scored on: the shown pages, the question and the `Answer:` cue."""
    shown = "\n\n".join(f"Page: {title}\n{body}" for title, body in pages)
    return f"{shown}\n\nQuestion: {question.strip()}\n{ANSWER_CUE}"


def choose_answer(model: CompletionModel, prompt: str, candidates: Sequence[str],
                  norm: Norm = "char") -> tuple[str, float]:
    """The candidate the model finds likeliest after `prompt`, and its (normalised) score.

    Each candidate is scored with a leading space (" Tarnow" after "Answer:").
    `norm="char"` divides each log-likelihood by the candidate's length in
    characters (see the module docstring); `"none"` takes the scores as they
    come. Ties go to the earlier candidate. Raises ValueError with no candidates.
    """
    if not candidates:
        raise ValueError("choose_answer needs at least one candidate")
    scores = model.score(prompt, [f" {c}" for c in candidates])
    if len(scores) != len(candidates):
        raise ValueError(f"the model returned {len(scores)} scores for {len(candidates)} candidates")
    if norm == "char":
        scores = [s / max(len(c), 1) for s, c in zip(scores, candidates)]
    best = max(range(len(candidates)), key=lambda k: (scores[k], -k))
    return candidates[best], float(scores[best])


def states_answer(question: str, answer: str, kind: str = "") -> bool:
    """Whether the question already contains its answer (a useless question).

    A choice question of a comparison pair ("Which is older, X or Y?") names
    its answer as one of the alternatives; that is allowed.
    """
    q, a = normalize_answer(question), normalize_answer(answer)
    if not a or f" {a} " not in f" {q} ":
        return False
    return not (kind == "comparison" and " or " in f" {question.lower()} ")
