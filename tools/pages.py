"""Page sources: where Retrieve finds pages and Search finds snippets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Page:
    """A page's title and the sentences of its (first) paragraph."""

    title: str
    sentences: list[str]

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@runtime_checkable
class PageSource(Protocol):
    """Looks pages up by title."""

    def page(self, title: str) -> Page | None: ...

    def similar(self, title: str, k: int = 5) -> list[str]: ...


@runtime_checkable
class Searcher(Protocol):
    """Ranks pages for a free-text query, returning `(title, snippet)` pairs, best first."""

    def search(self, query: str, k: int = 3) -> list[tuple[str, str]]: ...


_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "no", "mt", "ft", "gen",
                  "col", "lt", "sgt", "capt", "prof", "rev", "inc", "co", "corp", "ltd", "e.g",
                  "i.e", "etc", "u.s", "u.k", "jan", "feb", "mar", "apr", "aug", "sept", "oct",
                  "nov", "dec"}


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences on `.`, `!` or `?` followed by a capitalised word.

    Initials ("J. R. R. Tolkien") and common abbreviations ("Dr.", "U.S.") do not end a sentence.
    """
    text = " ".join(text.split())
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        head = text[start:match.start()]
        last_word = head.rsplit(" ", 1)[-1].rstrip(".!?").lower()
        if head.endswith(".") and (len(last_word) == 1 or last_word in _ABBREVIATIONS):
            continue
        sentence = text[start:match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences
