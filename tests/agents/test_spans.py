"""Candidate spans of running text (agents/spans.py): names, dates, numbers and page titles."""

from __future__ import annotations

import pytest

from agents.spans import NUMBER, name_spans, number_spans, strip_title

# --- name_spans ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("He studied at the University of Warsaw in 1990.", ["University of Warsaw"]),
    ("Ludwig van Beethoven wrote music.", ["Ludwig van Beethoven"]),
    ("Leonardo da Vinci painted it.", ["Leonardo da Vinci"]),
    ("She banked at the Bank of the West.", ["Bank of the West"]),
    ("Jean-Paul Sartre met Anne-Marie Smith.", ["Jean-Paul Sartre", "Anne-Marie Smith"]),
    ("I saw Bob and Alice.", ["Bob", "Alice"]),
    ("München and Zürich are cities.", ["München", "Zürich"]),
    ("It was O'Brien.", ["O'Brien"]),
])
def test_name_spans_finds_multiword_and_single_capitalised_names(text, expected):
    assert name_spans(text) == expected


def test_capitalised_stopwords_are_never_names_on_their_own():
    assert name_spans("The. She. In. However, it was.") == []
    assert name_spans("In Paris they met.") == ["Paris"]


def test_a_leading_the_opens_a_span_only_mid_sentence_and_both_forms_are_given():
    """Mid-sentence "The Beatles" yields the span and the span without "The"; at a sentence start, not."""
    assert name_spans("The Beatles were a band.") == ["Beatles"]
    assert name_spans("She met The Beatles in London.") == ["The Beatles", "Beatles", "London"]


def test_sentence_ends_and_newlines_split_spans():
    assert name_spans("Albert Einstein. Marie Curie") == ["Albert Einstein", "Marie Curie"]
    assert name_spans("John Smith\nMary Jones") == ["John Smith", "Mary Jones"]


def test_a_trailing_join_word_is_not_part_of_the_span():
    assert name_spans("the University of Warsaw of") == ["University of Warsaw"]


def test_month_names_are_not_names_alone_but_may_follow_a_name_directly():
    assert name_spans("In July 5, 1989 Paris fell.") == ["Paris"]
    assert name_spans("Visited in May.") == ["Visited"]
    assert name_spans("We met John May there.") == ["John May"]


def test_trailing_period_of_a_span_is_dropped():
    assert name_spans("He moved to New York.") == ["New York"]
    assert name_spans("Paris. London.") == ["Paris", "London"]


def test_no_names_in_lowercase_or_empty_text():
    assert name_spans("") == []
    assert name_spans("all lowercase words here, 42 of them") == []


# --- number_spans -------------------------------------------------------------------------------

def test_number_spans_lists_dates_first_then_every_number():
    text = "It cost 1,024 dollars and 3.5 kg on July 5, 1989; also 5 May 2001 and Sept. 1999."
    assert number_spans(text) == ["July 5, 1989", "5 May 2001", "Sept. 1999",
                                  "1,024", "3.5", "5", "1989", "5", "2001", "1999"]


@pytest.mark.parametrize("text, dates", [
    ("born March 3 1901 here", ["March 3 1901"]),
    ("on 14 Feb. 1950", ["14 Feb. 1950"]),
    ("in December 1999.", ["December 1999"]),
    ("in Dec 1999, then", ["Dec 1999"]),
    ("the 1990s and May", []),
])
def test_number_spans_dates_in_their_written_forms(text, dates):
    found = number_spans(text)
    assert found[:len(dates)] == dates
    assert all(" " not in s for s in found[len(dates):])  # the rest are plain numbers


def test_numbers_with_thousands_separators_and_decimals_are_whole_spans():
    assert number_spans("1,234,567.89 and 42") == ["1,234,567.89", "42"]


def test_digits_inside_words_or_after_a_point_are_not_numbers():
    assert number_spans("v1.2 abc123 x1 .5") == []
    assert NUMBER.findall("room 12b or 7") == ["7"]


def test_no_numbers_in_plain_text():
    assert number_spans("no digits at all") == []


# --- strip_title --------------------------------------------------------------------------------

@pytest.mark.parametrize("title, expected", [
    ("Beowulf (2007 film)", "Beowulf"),
    ("  Mercury (planet)  ", "Mercury"),
    ("Paris", "Paris"),
    ("A (b) c", "A (b) c"),  # only a trailing disambiguation is removed
])
def test_strip_title_removes_a_trailing_disambiguation(title, expected):
    assert strip_title(title) == expected
