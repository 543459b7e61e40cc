"""The split of a data file into evaluated rows and a training corpus, and the overlap count."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from training.overlap import page_titles, split_rows, training_overlap


WORDS = ["river", "castle", "album", "poet", "bridge", "comet", "opera", "glacier", "senate", "violin", "harbor",
         "desert", "novel", "temple", "canal", "island", "mayor", "forest", "tower", "league", "museum"]


def row(i: int, question: str = "", pages=("P{i}a", "P{i}b"), gold=("P{i}a",)) -> dict:
    return {"id": f"r{i}", "question": question or f"Which {WORDS[i]} is named after the {WORDS[-1 - i]}?",
            "answer": f"A{i}", "context": [[p.format(i=i), [f"{p.format(i=i)} is a page."]] for p in pages],
            "supporting_facts": [[g.format(i=i), 0] for g in gold]}


ROWS = [row(i) for i in range(10)]


def test_the_default_split_evaluates_the_first_part_and_trains_on_the_rest():
    split = split_rows(ROWS)
    assert [r["id"] for r in split.eval_rows] == [f"r{i}" for i in range(5)]
    assert [r["id"] for r in split.corpus_rows] == [f"r{i}" for i in range(5, 10)] and split.how == "split"
    assert len(split_rows(ROWS, share=0.3).corpus_rows) == 3
    assert training_overlap(split.corpus_rows, split.eval_rows) == {
        "evaluated_rows": 5, "training_rows": 5, "evaluated_pages": 10, "pages_shared": 0, "gold_pages_shared": 0,
        "questions_shared": 0}


def test_other_sources_of_the_corpus():
    other = [row(20)]
    assert split_rows(ROWS, corpus=other) == split_rows(ROWS, corpus=other)
    by_file = split_rows(ROWS, corpus=other)
    assert by_file.eval_rows == ROWS and by_file.corpus_rows == other and by_file.how == "corpus file"
    on_eval = split_rows(ROWS, train_on_eval=True)
    assert on_eval.eval_rows == on_eval.corpus_rows == ROWS
    # asked for: every page and question is shared, and the count says so
    assert training_overlap(on_eval.corpus_rows, on_eval.eval_rows) == {
        "evaluated_rows": 10, "training_rows": 10, "evaluated_pages": 20, "pages_shared": 20,
        "gold_pages_shared": 10, "questions_shared": 10}
    seeds_only = split_rows(ROWS, needs_corpus=False)
    assert seeds_only.eval_rows == ROWS and seeds_only.corpus_rows == [] and seeds_only.how == "none"


def test_a_file_too_small_to_split_or_a_bad_share_is_a_clear_error():
    with pytest.raises(ConfigError, match="cannot be split"):
        split_rows(ROWS[:1])
    for share in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="corpus share"):
            split_rows(ROWS, share=share)


def test_overlap_counts_shared_pages_gold_pages_and_near_duplicate_questions():
    evaluated = [row(1), row(2)]
    training = [
        {"question": "Which castle is named after the league?", "answer": "x"},  # row 1's question
        {"question": "which album is named after the tower", "answer": "y"},  # row 2's, normalised
        {"question": "Which album is named after the old tower?", "answer": "z"},  # near row 2's
        {"question": "When did the river flood the valley?", "answer": "1990",
         "context": [["P1a", ["P1a is a page."]], ["P2b", ["P2b is a page."]], ["Other", ["Other."]]]},
    ]
    o = training_overlap(training, evaluated)
    assert o["questions_shared"] == 3 and o["pages_shared"] == 2 and o["gold_pages_shared"] == 1
    assert o["evaluated_pages"] == 4 and o["training_rows"] == 4
    assert page_titles(evaluated, gold_only=True) == {"P1a", "P2a"}
