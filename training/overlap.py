"""What training saw of what evaluation asks: the split of a data file and the overlap of pages and questions.

Grounded self-instruct (HotpotQA) shows pages of a corpus, and synthesis looks
facts up in them. When that corpus is the evaluation file, training is built
from the very documents the evaluation questions are about. So a run takes its
corpus from elsewhere: a second file, or (`split_rows`) the other part of the
data file, the evaluation keeping the first part. `training_overlap` counts what
the training inputs still share with the evaluated rows (page titles, gold
pages, questions equal or near to an evaluation question), so a report can
state it: 0 by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from core.errors import ConfigError
from training.dedup import DedupIndex

__all__ = ["Split", "page_titles", "split_rows", "training_overlap"]


@dataclass(frozen=True)
class Split:
    """The evaluated rows, the rows training may draw on, and how they were chosen."""

    eval_rows: list[dict[str, Any]]
    corpus_rows: list[dict[str, Any]]
    how: str  # "corpus file", "split", "evaluation rows (asked for)" or "none"


def split_rows(rows: Sequence[dict[str, Any]], *, corpus: Sequence[dict[str, Any]] | None = None,
               share: float = 0.5, train_on_eval: bool = False, needs_corpus: bool = True) -> Split:
    """The evaluation and training parts of a data file's `rows`.

    With a `corpus` (a second file) the rows are all evaluated; with `train_on_eval` the
    evaluation rows are the corpus too (overlap on purpose); otherwise the last `share` of the
    rows are the corpus and the first part is evaluated. A task that draws no corpus from its
    rows (`needs_corpus` false: ScienceQA's self-instruct reads only its seeds) evaluates them all.
    """
    rows = list(rows)
    if corpus is not None:
        return Split(rows, list(corpus), "corpus file")
    if not needs_corpus:
        return Split(rows, [], "none")
    if train_on_eval:
        return Split(rows, rows, "evaluation rows (asked for)")
    if not 0 < share < 1:
        raise ConfigError(f"the corpus share of the data file must lie in (0, 1), got {share}")
    cut = len(rows) - round(len(rows) * share)
    if cut < 1 or cut >= len(rows):
        raise ConfigError(f"a data file of {len(rows)} rows cannot be split into an evaluation part and a "
                          "self-instruct corpus; give a corpus file")
    return Split(rows[:cut], rows[cut:], "split")


def page_titles(rows: Sequence[Mapping[str, Any]], *, gold_only: bool = False) -> set[str]:
    """Titles of the pages the rows carry (`context`), or only their gold pages (`supporting_facts`)."""
    if gold_only:
        return {str(f[0]) for r in rows for f in r.get("supporting_facts") or [] if f}
    return {str(p[0]) for r in rows for p in r.get("context") or [] if p}


def training_overlap(training: Sequence[Mapping[str, Any]], evaluated: Sequence[Mapping[str, Any]],
                     jaccard: float = 0.8, ratio: float = 0.9) -> dict[str, int]:
    """What the `training` rows (self-instructed questions, with the pages they carry, and any corpus) share
    with the `evaluated` rows: page titles, the evaluation's gold pages, and questions that repeat or nearly
    repeat an evaluation question (the self-instruct dedup's criteria)."""
    train_pages, eval_pages = page_titles(training), page_titles(evaluated)
    gold = page_titles(evaluated, gold_only=True)
    index = DedupIndex(jaccard=jaccard, ratio=ratio)
    for row in evaluated:
        index.add(str(row.get("question", "")))
    questions = sum(index.check(str(r["question"])) is not None for r in training if isinstance(r.get("question"), str))
    return {"evaluated_rows": len(evaluated), "training_rows": len(training), "evaluated_pages": len(eval_pages),
            "pages_shared": len(train_pages & eval_pages), "gold_pages_shared": len(train_pages & gold),
            "questions_shared": questions}
