"""Search[query]: the best-matching pages' titles and opening lines from a searcher."""

from __future__ import annotations

from tools.base import ToolContext, ToolSpec
from tools.lookup import set_lookup_source
from tools.pages import Searcher, split_sentences
from tools.retrieve import clean_argument

SEARCH_SPEC = ToolSpec(
    name="Search",
    description="Searches the document collection and returns the titles and opening lines of "
                "the few pages that best match the query.",
    usage="Search[query], e.g. Search[first woman to win a Nobel Prize]",
)


class Search:
    """Formats the top `k` hits as "[1] Title: snippet ..."; their sentences become the Lookup source."""

    def __init__(self, searcher: Searcher, spec: ToolSpec = SEARCH_SPEC, k: int = 3) -> None:
        self.spec = spec
        self.searcher = searcher
        self.k = k

    def run(self, argument: str, ctx: ToolContext) -> str:
        query = clean_argument(argument)
        if not query:
            return "Search needs a query, e.g. Search[first woman to win a Nobel Prize]."
        hits = self.searcher.search(query, self.k)
        if not hits:
            error = getattr(self.searcher, "last_error", None)
            return f"No results for [{query}]" + (f" ({error})." if error else ".")
        sentences = [s for _, snippet in hits for s in split_sentences(snippet)]
        set_lookup_source(ctx.memory, f"Search[{query}]", sentences)
        return " ".join(f"[{i}] {title}: {snippet}" for i, (title, snippet) in enumerate(hits, 1))
