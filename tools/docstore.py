"""An offline page store built from HotpotQA-format `context` paragraphs, with BM25 search."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from rank_bm25 import BM25Okapi

from core.errors import DataError
from tools.pages import Page

_WORD = re.compile(r"\w+")
_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)$")
_QUOTES = "\"'`\u2018\u2019\u201c\u201d\u00ab\u00bb"
STOPWORDS = frozenset(
    "a an and are as at be by for from has have he her his in is it its of on or she that the "
    "their they this to was were which who whom with what when where why how did does do".split()
)


def title_key(title: str) -> str:
    """Fold a title for tolerant lookup: case, accents, quotes, underscores, extra spaces."""
    text = unicodedata.normalize("NFKD", title.replace("_", " "))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = " ".join(text.split()).strip(_QUOTES + " ").casefold()
    return " ".join(text.split())


def tokenize(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Lowercase word tokens, stopwords removed."""
    return [word for word in _WORD.findall(text.lower()) if word not in stopwords]


def _base(key: str) -> str:
    """A folded title without a trailing disambiguation such as " (film)"."""
    return _DISAMBIGUATION.sub("", key).strip()


class Docstore:
    """Pages keyed by title; satisfies `PageSource` and `Searcher`."""

    def __init__(self, pages: Iterable[Page], snippet_chars: int = 200) -> None:
        self.snippet_chars = snippet_chars
        self._pages: dict[str, Page] = {}
        for page in pages:
            self._pages.setdefault(page.title, page)
        self._titles = list(self._pages)
        self._keys: dict[str, str] = {t: title_key(t) for t in self._titles}
        self._by_key: dict[str, str] = {}
        self._by_base: dict[str, list[str]] = defaultdict(list)
        self._by_word: dict[str, set[str]] = defaultdict(set)
        for title in self._titles:
            key = self._keys[title]
            self._by_key.setdefault(key, title)
            self._by_base[_base(key)].append(title)
            for word in _WORD.findall(key):
                self._by_word[word].add(title)
        self._vocabulary = list(self._by_word)
        corpus = [tokenize(f"{p.title} {p.text}") for p in self._pages.values()]
        self._bm25 = BM25Okapi(corpus) if corpus else None

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], source: str = "rows",
                  snippet_chars: int = 200) -> "Docstore":
        """Pool the `context` paragraphs of HotpotQA rows; a repeated title is kept once.

        `source` names the rows' origin (e.g. the file) in error messages.
        """
        pages: list[Page] = []
        for index, row in enumerate(rows, start=1):
            where = f"{source}: row {index}"
            if not isinstance(row, Mapping) or not isinstance(row.get("context"), list):
                raise DataError(f"{where}: expected a HotpotQA row with a 'context' list")
            for item in row["context"]:
                pages.append(_page_from_context(item, where))
        return cls(pages, snippet_chars=snippet_chars)

    @property
    def titles(self) -> list[str]:
        return list(self._titles)

    def page(self, title: str) -> Page | None:
        """Find a page by title, tolerating case, accents, quotes, underscores and spacing.

        A missing disambiguation ("Titanic" for "Titanic (film)") is filled in when only one
        page matches; an extra one ("Dover (town)" for "Dover") is dropped likewise.
        """
        if title in self._pages:
            return self._pages[title]
        key = title_key(title)
        if not key:
            return None
        if key in self._by_key:
            return self._pages[self._by_key[key]]
        base = _base(key)
        if base == key:
            candidates = self._by_base.get(key, [])
        else:
            candidates = [t for t in self._by_base.get(base, []) if self._keys[t] == base]
        return self._pages[candidates[0]] if len(candidates) == 1 else None

    def similar(self, title: str, k: int = 5) -> list[str]:
        """Up to `k` titles close to `title`: shared words or near spellings, closest first."""
        key = title_key(title)
        if not key or k <= 0:
            return []
        candidates: set[str] = set()
        for word in _WORD.findall(key):
            if word in STOPWORDS:
                continue
            for near in [word, *difflib.get_close_matches(word, self._vocabulary, 3, 0.8)]:
                candidates |= self._by_word.get(near, set())
        close = difflib.get_close_matches(key, list(self._by_key), n=k, cutoff=0.6)
        candidates |= {self._by_key[c] for c in close}

        def score(candidate: str) -> float:
            return difflib.SequenceMatcher(None, key, self._keys[candidate]).ratio()

        return sorted(candidates, key=lambda t: (-score(t), t))[:k]

    def search(self, query: str, k: int = 3) -> list[tuple[str, str]]:
        """BM25 over paragraphs (title included); returns `(title, snippet)` for positive scores."""
        tokens = tokenize(query)
        if self._bm25 is None or not tokens or k <= 0:
            return []
        scores = self._bm25.get_scores(tokens)
        ranked = sorted(range(len(self._titles)), key=lambda i: (-scores[i], i))
        hits = [i for i in ranked[:k] if scores[i] > 0]
        return [(self._titles[i], self._snippet(self._pages[self._titles[i]])) for i in hits]

    def _snippet(self, page: Page) -> str:
        """Leading whole sentences within `snippet_chars` (at least one, clipped if huge)."""
        chosen: list[str] = []
        used = 0
        for sentence in page.sentences:
            if chosen and used + 1 + len(sentence) > self.snippet_chars:
                break
            chosen.append(sentence)
            used += len(sentence) + (1 if used else 0)
        text = " ".join(chosen)
        if len(text) > self.snippet_chars:
            text = text[: self.snippet_chars].rsplit(" ", 1)[0] + " ..."
        return text


def _page_from_context(item: Any, where: str) -> Page:
    """One `[title, [sentence, ...]]` pair as a Page, sentences stripped, blanks dropped."""
    if (not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2
            or not isinstance(item[0], str) or not isinstance(item[1], list)
            or not all(isinstance(s, str) for s in item[1])):
        raise DataError(f"{where}: context entries must be [title, [sentence, ...]]; "
                        f"got {str(item)[:80]!r}")
    sentences = [s.strip() for s in item[1] if s.strip()]
    return Page(title=item[0].strip(), sentences=sentences)
