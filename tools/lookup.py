"""Lookup[keyword]: walk through the sentences of the last page or search result that mention it.

This module owns the episode-memory layout the Retrieve and Search tools fill in.
"""

from __future__ import annotations

from typing import Any, Sequence

from tools.base import ToolContext, ToolSpec

MEMORY_KEY = "lookup"
NOTHING_LOADED = "No page loaded yet; use Retrieve or Search first."
NO_MORE = "No more results."

LOOKUP_SPEC = ToolSpec(
    name="Lookup",
    description="Returns the next sentence that contains the keyword in the page last retrieved "
                "or the last search results; repeat the same keyword to see later matches.",
    usage="Lookup[keyword], e.g. Lookup[born in]",
)


def set_lookup_source(memory: dict[str, Any], title: str, sentences: Sequence[str]) -> None:
    """Make `sentences` what Lookup searches next, with its cursor at the start."""
    memory[MEMORY_KEY] = {"title": title, "sentences": [str(s) for s in sentences],
                          "keyword": None, "cursor": 0}


class Lookup:
    """Returns "(Result i / n) sentence" for successive matches of a case-insensitive keyword."""

    def __init__(self, spec: ToolSpec = LOOKUP_SPEC) -> None:
        self.spec = spec

    def run(self, argument: str, ctx: ToolContext) -> str:
        keyword = argument.strip().strip("\"'").strip()
        if not keyword:
            return "Lookup needs a keyword, e.g. Lookup[born in]."
        state = ctx.memory.get(MEMORY_KEY)
        if not isinstance(state, dict) or not isinstance(state.get("sentences"), list):
            return NOTHING_LOADED
        folded = keyword.casefold()
        if state.get("keyword") != folded:
            state["keyword"], state["cursor"] = folded, 0
        matches = [s for s in state["sentences"] if folded in str(s).casefold()]
        cursor = int(state.get("cursor") or 0)
        if cursor >= len(matches):
            return NO_MORE
        state["cursor"] = cursor + 1
        return f"(Result {cursor + 1} / {len(matches)}) {matches[cursor]}"
