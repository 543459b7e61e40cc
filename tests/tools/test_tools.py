"""Tests for the tools package: page sources, the built-in tools, the toolbox and spec files."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import wikipedia

from core.errors import ConfigError, DataError
from tools import (
    FINISH_SPEC,
    REFLECT_SPEC,
    Docstore,
    Toolbox,
    ToolContext,
    ToolResources,
    ToolSpec,
    WikipediaSource,
    build_toolbox,
    default_tool_specs,
    load_tool_specs,
    ocr_texts,
    save_tool_specs,
    split_sentences,
)
from tools.toolbox import TRUNCATION_MARKER

EASY = Path(__file__).resolve().parents[2].parent / "shared/data/hotpotqa/easy.jsonl"

ROWS: list[dict[str, Any]] = [
    {"id": "1", "question": "q1", "context": [
        ["Milhouse Van Houten", ["Milhouse Mussolini Van Houten is a fictional character.",
                                 " He appears in The Simpsons.",
                                 " Milhouse was named after Richard Nixon.",
                                 " Nixon's middle name was Milhous."]],
        ["Titanic (1997 film)", ["Titanic is a 1997 disaster film by James Cameron."]],
        ["Dover", ["Dover is the capital of Delaware.", " It is in Kent County."]],
    ]},
    {"id": "2", "question": "q2", "context": [
        ["Dover", ["A different paragraph that must be ignored."]],
        ["Marie Curie", ["Marie Curie was a physicist and chemist.",
                         " She was the first woman to win a Nobel Prize."]],
        ["Richard Nixon", ["Richard Milhous Nixon was the 37th president of the United States."]],
    ]},
]


@pytest.fixture
def store() -> Docstore:
    return Docstore.from_rows(ROWS)


@pytest.fixture
def box(store: Docstore) -> Toolbox:
    specs = default_tool_specs("hotpotqa") + default_tool_specs("scienceqa")
    return build_toolbox(specs, ToolResources(pages=store, searcher=store))


# --- docstore -------------------------------------------------------------------------------

def test_docstore_merges_duplicate_titles_once(store: Docstore) -> None:
    assert store.titles.count("Dover") == 1
    assert store.page("Dover").sentences == ["Dover is the capital of Delaware.",
                                             "It is in Kent County."]


@pytest.mark.parametrize("query", ["milhouse van houten", "  Milhouse_Van_Houten ",
                                   "'Milhouse Van Houten'", '"MILHOUSE  van houten"'])
def test_docstore_title_tolerance(store: Docstore, query: str) -> None:
    assert store.page(query).title == "Milhouse Van Houten"


def test_docstore_disambiguation_suffix(store: Docstore) -> None:
    assert store.page("Titanic").title == "Titanic (1997 film)"
    assert store.page("Dover (town)").title == "Dover"
    assert store.page("Titanic (1953 film)") is None


def test_docstore_similar_and_bad_rows(store: Docstore) -> None:
    assert store.similar("Milhous Van Houton")[0] == "Milhouse Van Houten"
    assert "Richard Nixon" in store.similar("Nixon")
    with pytest.raises(DataError, match=r"easy.jsonl: row 1"):
        Docstore.from_rows([{"context": [["only a title"]]}], source="easy.jsonl")
    with pytest.raises(DataError, match="row 2"):
        Docstore.from_rows([ROWS[0], {"question": "no context"}])


def test_docstore_search_ranks_obvious_page_first(store: Docstore) -> None:
    hits = store.search("first woman Nobel Prize")
    assert hits[0][0] == "Marie Curie"
    assert "Nobel" in hits[0][1]
    assert store.search("the of and") == []
    assert Docstore([]).search("anything") == []


def test_split_sentences_keeps_initials_and_abbreviations() -> None:
    assert split_sentences('J. R. R. Tolkien met Dr. Smith in the U.S. Army. He said "Hi." Bye!') \
        == ["J. R. R. Tolkien met Dr. Smith in the U.S. Army.", 'He said "Hi."', "Bye!"]


# --- Retrieve / Lookup / Search ---------------------------------------------------------------

def test_retrieve_hit_loads_page_for_lookup(box: Toolbox) -> None:
    obs, memory = box.run("Retrieve", "Milhouse_van_houten", {}, {})
    assert obs.startswith("Milhouse Mussolini Van Houten is a fictional character.")
    assert memory["lookup"]["title"] == "Milhouse Van Houten"


def test_retrieve_miss_lists_similar(box: Toolbox) -> None:
    obs, memory = box.run("Retrieve", "Milhous", {}, {})
    assert obs.startswith("Could not find [Milhous]. Similar: [")
    assert "Milhouse Van Houten" in obs
    assert memory == {}


def test_lookup_walks_forward_and_ends(box: Toolbox) -> None:
    _, memory = box.run("Retrieve", "Milhouse Van Houten", {}, {})
    first, memory = box.run("Lookup", "nixon", {}, memory)
    second, memory = box.run("Lookup", "Nixon", {}, memory)
    end, memory = box.run("Lookup", "nixon", {}, memory)
    assert first == "(Result 1 / 2) Milhouse was named after Richard Nixon."
    assert second == "(Result 2 / 2) Nixon's middle name was Milhous."
    assert end == "No more results."
    restart, _ = box.run("Lookup", "Simpsons", {}, memory)
    assert restart == "(Result 1 / 1) He appears in The Simpsons."


def test_retrieve_resets_lookup_cursor(box: Toolbox) -> None:
    _, memory = box.run("Retrieve", "Milhouse Van Houten", {}, {})
    _, memory = box.run("Lookup", "nixon", {}, memory)
    _, memory = box.run("Retrieve", "Milhouse Van Houten", {}, memory)
    obs, _ = box.run("Lookup", "nixon", {}, memory)
    assert obs.startswith("(Result 1 / 2)")


def test_lookup_without_page(box: Toolbox) -> None:
    assert box.run("Lookup", "anything", {}, {})[0] == \
        "No page loaded yet; use Retrieve or Search first."


def test_search_output_and_lookup_after_search(box: Toolbox) -> None:
    obs, memory = box.run("Search", "first woman to win a Nobel Prize", {}, {})
    assert obs.startswith("[1] Marie Curie: Marie Curie was a physicist")
    found, _ = box.run("Lookup", "nobel", {}, memory)
    assert found == "(Result 1 / 1) She was the first woman to win a Nobel Prize."
    assert box.run("Search", "zzz qqq", {}, {})[0] == "No results for [zzz qqq]."


# --- Image2Text -------------------------------------------------------------------------------

OCR = ("[([[411, 19], [493, 19], [493, 37], [411, 37]], 'grizzly bear', 0.99), "
       "([[183, 197], [251, 197], [251, 213], [183, 213]], \"Arctic fox's den\", 0.89)]")


def test_image2text_caption_and_ocr(box: Toolbox) -> None:
    row = {"caption": "A painting of a horse and a cow.", "ocr": OCR}
    obs, _ = box.run("Image2Text", "image", row, {})
    assert obs == ("Caption: A painting of a horse and a cow. "
                   "Text in the image: grizzly bear; Arctic fox's den.")
    assert box.run("Image2Text", "", {"caption": "A map.", "ocr": "[]"}, {})[0] == \
        "Caption: A map. No text in the image."


@pytest.mark.parametrize("row", [{"caption": "no img", "ocr": "no img"}, {}, {"caption": ""}])
def test_image2text_no_image(box: Toolbox, row: dict[str, Any]) -> None:
    assert box.run("Image2Text", "image", row, {})[0] == "There is no image for this question."


def test_ocr_texts_is_robust() -> None:
    assert ocr_texts(OCR) == ["grizzly bear", "Arctic fox's den"]
    assert ocr_texts(OCR[:-8]) == ["grizzly bear", "Arctic fox's den"]  # cut off mid-list
    assert ocr_texts("__import__('os').system('echo hi')") == ["os", "echo hi"]  # never run
    assert ocr_texts("42") == [] and ocr_texts("[]") == [] and ocr_texts(None) == []
    assert ocr_texts([[[0, 0], "already parsed", 0.5], "plain"]) == ["already parsed", "plain"]


# --- Toolbox --------------------------------------------------------------------------------

class _Boom:
    spec = ToolSpec("Boom", "Always fails.", "Boom[x]")

    def run(self, argument: str, ctx: ToolContext) -> str:
        ctx.memory["touched"] = True
        raise RuntimeError("kaput")


class _Long:
    spec = ToolSpec("Long", "Talks a lot.", "Long[x]")

    def run(self, argument: str, ctx: ToolContext) -> str:
        ctx.memory.setdefault("calls", []).append(argument)
        return "word\n" * 100


def test_toolbox_unknown_tool_lists_names(box: Toolbox) -> None:
    obs, memory = box.run("retrieve", "x", {}, {"a": 1})
    assert obs.startswith("There is no tool named retrieve; valid tools: Retrieve, Lookup")
    assert memory == {"a": 1}
    assert box.names == ["Retrieve", "Lookup", "Search", "Image2Text"]
    assert [s.name for s in box.specs] == box.names and box.get("Lookup") is not None


def test_toolbox_tool_exception_becomes_observation() -> None:
    obs, memory = Toolbox([_Boom()]).run("Boom", "x", {}, {"kept": 1})
    assert obs == "Tool Boom failed: RuntimeError: kaput"
    assert memory == {"kept": 1}


def test_toolbox_truncates_and_never_mutates_memory() -> None:
    original = {"calls": ["earlier"]}
    obs, memory = Toolbox([_Long()], max_observation_chars=50).run("Long", "now", {}, original)
    assert len(obs) == 50 and obs.endswith(TRUNCATION_MARKER) and "\n" not in obs
    assert memory == {"calls": ["earlier", "now"]}
    assert original == {"calls": ["earlier"]}
    with pytest.raises(ConfigError, match="two tools"):
        Toolbox([_Long(), _Long()])


# --- spec files and registry ------------------------------------------------------------------

def test_specs_round_trip_and_override(tmp_path: Path, store: Docstore) -> None:
    custom = ToolSpec("Retrieve", "My own words.", "Retrieve[X]")
    path = tmp_path / "sub" / "tools.json"
    save_tool_specs(path, [custom, FINISH_SPEC, REFLECT_SPEC])
    loaded = load_tool_specs(path)
    assert loaded == [custom, FINISH_SPEC, REFLECT_SPEC]
    toolbox = build_toolbox(loaded, ToolResources(pages=store))
    assert toolbox.names == ["Retrieve"] and toolbox.specs == [custom]
    assert all(s.to_json().keys() == {"name", "description", "usage"}
               for s in default_tool_specs("HotpotQA"))


def test_load_tool_specs_errors(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text('[\n  {"name": "Retrieve",\n}\n]', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tools\.json:3:1: invalid JSON"):
        load_tool_specs(path)
    path.write_text(json.dumps([{"name": "Teleport", "description": "d", "usage": "u"}]))
    with pytest.raises(ConfigError, match=r"tools\.json: entry 0: unknown tool 'Teleport'; "
                                          r"known tools: .*Image2Text.*Retrieve"):
        load_tool_specs(path)
    path.write_text(json.dumps([FINISH_SPEC.to_json(), {"name": "Lookup", "usage": "u"}]))
    with pytest.raises(ConfigError, match=r"tools\.json: entry 1: .*missing description"):
        load_tool_specs(path)
    path.write_text(json.dumps({"name": "Lookup"}))
    with pytest.raises(ConfigError, match="expected a JSON list"):
        load_tool_specs(path)
    with pytest.raises(ConfigError, match="missing.json"):
        load_tool_specs(tmp_path / "missing.json")
    path.write_text(json.dumps([{"name": "lookup", "description": "d", "usage": "u"}]))
    assert load_tool_specs(path)[0].name == "Lookup"


def test_build_toolbox_needs_resources() -> None:
    with pytest.raises(ConfigError, match="tool Retrieve needs a page source"):
        build_toolbox(default_tool_specs("hotpotqa"), ToolResources())
    with pytest.raises(ConfigError, match="tool Search needs a searcher"):
        build_toolbox(default_tool_specs("hotpotqa"), ToolResources(pages=Docstore([])))
    with pytest.raises(ConfigError, match="known tasks"):
        default_tool_specs("gsm8k")


# --- live Wikipedia, faked -----------------------------------------------------------------------

PAGES = {
    "Milhouse Van Houten": "Milhouse Van Houten is a character. He is Bart's friend.\n\nMore text.",
}


def _fake_page(title: str, auto_suggest: bool = True, redirect: bool = True) -> Any:
    if title == "Mercury":
        raise wikipedia.DisambiguationError("Mercury", ["Mercury (planet)", "Mercury (element)"])
    if title == "Offline":
        raise ConnectionError("network unreachable")
    if title not in PAGES:
        raise wikipedia.PageError(title)
    return SimpleNamespace(title=title, summary=PAGES[title])


def _fake_search(query: str, results: int = 10) -> list[str]:
    if query == "Offline":
        raise ConnectionError("network unreachable")
    return ["Milhouse Van Houten", "Milhouse (disambiguation)"][:results]


@pytest.fixture
def wiki(monkeypatch: pytest.MonkeyPatch) -> WikipediaSource:
    monkeypatch.setattr(wikipedia, "page", _fake_page)
    monkeypatch.setattr(wikipedia, "search", _fake_search)
    return WikipediaSource()


def test_wikipedia_source_page_and_misses(wiki: WikipediaSource) -> None:
    wrapper = type(wiki.wrapper)
    assert (wrapper.__module__, wrapper.__name__) == ("langchain_community.utilities.wikipedia", "WikipediaAPIWrapper")
    assert wiki.wikipedia is wikipedia  # pages come from the wrapper's own client
    page = wiki.page("Milhouse Van Houten")
    assert page.sentences == ["Milhouse Van Houten is a character.", "He is Bart's friend."]
    assert wiki.page("Nobody") is None and wiki.last_error is None
    assert wiki.similar("Nobody", 1) == ["Milhouse Van Houten"]
    assert wiki.page("Mercury") is None
    assert wiki.similar("Mercury") == ["Mercury (planet)", "Mercury (element)"]
    assert wiki.page("Offline") is None and "network unreachable" in wiki.last_error
    assert wiki.search("milhouse", 2) == [("Milhouse Van Houten",
                                           "Milhouse Van Houten is a character. He is Bart's friend.")]


def test_wikipedia_backed_tools(wiki: WikipediaSource) -> None:
    toolbox = build_toolbox(default_tool_specs("hotpotqa"),
                            ToolResources(pages=wiki, searcher=wiki))
    assert toolbox.run("Retrieve", "Mercury", {}, {})[0] == \
        "Could not find [Mercury]. Similar: ['Mercury (planet)', 'Mercury (element)']"
    obs, _ = toolbox.run("Retrieve", "Offline", {}, {})
    assert obs.startswith("Could not find [Offline] (Wikipedia") and "unreachable" in obs
    assert "unreachable" in toolbox.run("Search", "Offline", {}, {})[0]
    _, memory = toolbox.run("Retrieve", "Milhouse Van Houten", {}, {})
    assert toolbox.run("Lookup", "bart", {}, memory)[0] == "(Result 1 / 1) He is Bart's friend."


# --- shared data, when present ----------------------------------------------------------------

@pytest.mark.skipif(not EASY.exists(), reason="shared HotpotQA data not present")
def test_shared_easy_split_supporting_pages_are_found() -> None:
    rows = [json.loads(line) for line in EASY.read_text(encoding="utf-8").splitlines() if line]
    docstore = Docstore.from_rows(rows, source=str(EASY))
    for row in rows[:20]:
        for title, _ in row["supporting_facts"]:
            assert docstore.page(title.lower()) is not None
    top = [docstore.search(row["question"], k=3) for row in rows]
    gold_in_top = sum(any(t in {f[0] for f in row["supporting_facts"]} for t, _ in hits)
                      for row, hits in zip(rows, top))
    assert gold_in_top >= 0.8 * len(rows)
