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

from typing import Literal, Sequence

from agents.llm import CompletionModel
from agents.spans import NUMBER, name_spans, number_spans, strip_title
from core.answers import normalize_answer

__all__ = ["ANSWER_CUE", "choose_answer", "extract_candidates", "scoring_prompt", "states_answer"]

ANSWER_CUE = "Answer:"
Norm = Literal["char", "none"]

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
    titles = [strip_title(t) for t, _ in pages]
    found = [[*name_spans(text), *number_spans(text)] for text in texts]
    norm_pages = [f" {normalize_answer(t)} " for t in texts]

    def in_page(span: str, k: int) -> bool:
        n = normalize_answer(span)
        return bool(n) and f" {n} " in norm_pages[k]

    spans = [s for group in found for s in group]
    both = [s for s in spans if len(pages) > 1 and all(in_page(s, k) for k in range(len(pages)))]
    second = [s for s in found[-1]] if kind == "bridge" and len(pages) > 1 else []
    names = [s for s in spans if not NUMBER.fullmatch(s)]
    numbers = [s for s in spans if NUMBER.fullmatch(s)]
    ordered = [*titles, *both, *(s for s in second if not NUMBER.fullmatch(s)), *names,
               *(s for s in second if NUMBER.fullmatch(s)), *numbers]
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
