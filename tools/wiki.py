"""Live Wikipedia pages through langchain-community's `WikipediaAPIWrapper`; failures become `None` plus a message.

The wrapper (with the `wikipedia` package underneath) answers searches: `run(query)` gives each
hit's title and summary. It has no call for one page by its exact title that keeps a
disambiguation page's options (its page fetch is private and drops them), so `page()` and
`similar()` ask the wrapper's own client, the `wikipedia` module it holds. langchain-community is
used here only, behind this class: the offline docstore (`tools.docstore`) stays the default.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from tools.pages import Page, split_sentences

_HIT = re.compile(r"^Page: (?P<title>[^\n]*)\nSummary: (?P<summary>.*)$", re.S)


class _Never(Exception):
    """Stands in for an exception class a fake `wikipedia` module does not define."""


class WikipediaSource:
    """A `PageSource` and `Searcher` over live Wikipedia.

    `page()` returns the first paragraph of the page's summary, split into sentences. A missing
    page or a disambiguation page gives `None`; the disambiguation options then answer
    `similar()`. Network and other unexpected errors also give `None` (or `[]`), and
    `last_error` says what went wrong until the next call.
    """

    def __init__(self, wrapper: Any | None = None, auto_suggest: bool = False,
                 snippet_sentences: int = 2) -> None:
        self._wrapper = wrapper
        self.auto_suggest = auto_suggest
        self.snippet_sentences = snippet_sentences
        self.last_error: str | None = None
        self._options: dict[str, list[str]] = {}

    @property
    def wrapper(self) -> Any:
        """The `WikipediaAPIWrapper` (made on first use: importing langchain-community takes a second)."""
        if self._wrapper is None:
            with warnings.catch_warnings():  # its sunset notice, on import: the README says why we use it anyway
                warnings.filterwarnings("ignore", message=".*langchain-community.*sunset", category=DeprecationWarning)
                from langchain_community.utilities.wikipedia import WikipediaAPIWrapper

            self._wrapper = WikipediaAPIWrapper(top_k_results=3, doc_content_chars_max=100_000)
        return self._wrapper

    @property
    def wikipedia(self) -> Any:
        """The wrapper's client: the `wikipedia` module."""
        return self.wrapper.wiki_client

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
        """Titles and the opening sentences of their summaries, from the wrapper's `run` (its first `k` hits)."""
        self.last_error = None
        wrapper = self.wrapper
        wrapper.top_k_results = k
        try:
            text = str(wrapper.run(query))
        except Exception as err:  # network, timeouts, odd API replies
            self.last_error = f"Wikipedia search failed: {type(err).__name__}: {err}"
            return []
        results: list[tuple[str, str]] = []
        for hit in re.split(r"\n\n(?=Page: )", text):
            match = _HIT.match(hit.strip())
            if match is None:  # "No good Wikipedia Search Result was found"
                continue
            paragraph = next((p for p in match["summary"].splitlines() if p.strip()), "")
            sentences = split_sentences(paragraph)
            if sentences:
                results.append((match["title"].strip(), " ".join(sentences[: self.snippet_sentences])))
        return results
