"""Live Wikipedia pages through the `wikipedia` package; failures become `None` plus a message."""

from __future__ import annotations

import importlib
from typing import Any

from tools.pages import Page, split_sentences


class _Never(Exception):
    """Stands in for an exception class a fake `wikipedia` module does not define."""


class WikipediaSource:
    """A `PageSource` and `Searcher` over live Wikipedia.

    `page()` returns the first paragraph of the page's summary, split into sentences. A missing
    page or a disambiguation page gives `None`; the disambiguation options then answer
    `similar()`. Network and other unexpected errors also give `None` (or `[]`), and
    `last_error` says what went wrong until the next call.
    """

    def __init__(self, module: Any | None = None, auto_suggest: bool = False,
                 snippet_sentences: int = 2) -> None:
        self._module = module
        self.auto_suggest = auto_suggest
        self.snippet_sentences = snippet_sentences
        self.last_error: str | None = None
        self._options: dict[str, list[str]] = {}

    @property
    def wikipedia(self) -> Any:
        if self._module is None:
            self._module = importlib.import_module("wikipedia")
        return self._module

    def page(self, title: str) -> Page | None:
        self.last_error = None
        title = title.strip()
        if not title:
            return None
        wk = self.wikipedia
        disambiguation = getattr(wk, "DisambiguationError", _Never)
        missing = getattr(wk, "PageError", _Never)
        try:
            found = wk.page(title, auto_suggest=self.auto_suggest, redirect=True)
            summary = str(found.summary)
            resolved = str(getattr(found, "title", title))
        except disambiguation as err:
            self._options[title.casefold()] = [str(o) for o in getattr(err, "options", [])]
            return None
        except missing:
            return None
        except Exception as err:  # network, timeouts, odd API replies
            self.last_error = f"Wikipedia request failed: {type(err).__name__}: {err}"
            return None
        paragraph = next((p for p in summary.splitlines() if p.strip()), "")
        sentences = split_sentences(paragraph)
        return Page(title=resolved, sentences=sentences) if sentences else None

    def similar(self, title: str, k: int = 5) -> list[str]:
        self.last_error = None
        options = self._options.get(title.strip().casefold())
        if options:
            return options[:k]
        try:
            return [str(t) for t in self.wikipedia.search(title, results=k)][:k]
        except Exception as err:
            self.last_error = f"Wikipedia search failed: {type(err).__name__}: {err}"
            return []

    def search(self, query: str, k: int = 3) -> list[tuple[str, str]]:
        """Titles from `wikipedia.search`, each with its summary's opening sentences."""
        self.last_error = None
        try:
            titles = [str(t) for t in self.wikipedia.search(query, results=k)][:k]
        except Exception as err:
            self.last_error = f"Wikipedia search failed: {type(err).__name__}: {err}"
            return []
        results: list[tuple[str, str]] = []
        errors: list[str] = []
        for title in titles:
            page = self.page(title)
            if page is not None:
                results.append((page.title, " ".join(page.sentences[: self.snippet_sentences])))
            elif self.last_error:
                errors.append(self.last_error)
        self.last_error = errors[0] if errors and not results else None
        return results
