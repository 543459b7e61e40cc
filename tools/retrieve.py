"""Retrieve[entity]: the first paragraph of a page, or similar titles when there is none."""

from __future__ import annotations

from tools.base import ToolContext, ToolSpec
from tools.lookup import set_lookup_source
from tools.pages import PageSource

RETRIEVE_SPEC = ToolSpec(
    name="Retrieve",
    description="Returns the first paragraph of the encyclopedia page about an entity, or a list "
                "of similar page titles when no page has that exact name.",
    usage="Retrieve[entity], e.g. Retrieve[Milhouse Van Houten]",
)


def clean_argument(argument: str) -> str:
    """Drop surrounding spaces, quotes and stray brackets from an action argument."""
    return " ".join(argument.strip().strip("\"'[]").split())


class Retrieve:
    """Looks the entity up in a `PageSource`; a hit becomes the Lookup source."""

    def __init__(self, pages: PageSource, spec: ToolSpec = RETRIEVE_SPEC,
                 similar_k: int = 5) -> None:
        self.spec = spec
        self.pages = pages
        self.similar_k = similar_k

    def run(self, argument: str, ctx: ToolContext) -> str:
        entity = clean_argument(argument)
        if not entity:
            return "Retrieve needs an entity, e.g. Retrieve[Milhouse Van Houten]."
        page = self.pages.page(entity)
        if page is not None and page.sentences:
            set_lookup_source(ctx.memory, page.title, page.sentences)
            return page.text
        error = getattr(self.pages, "last_error", None)
        similar = self.pages.similar(entity, self.similar_k)
        error = error or getattr(self.pages, "last_error", None)
        if error and not similar:
            return f"Could not find [{entity}] ({error})."
        return f"Could not find [{entity}]. Similar: {similar}"
