"""Tool names → factories, and building a task's Toolbox from its specs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.errors import ConfigError
from tools.base import Tool, ToolSpec
from tools.calculator import CALCULATOR_SPEC, Calculator
from tools.code import CODE_SPEC, Code
from tools.database import DATABASE_SPEC, Database
from tools.image2text import IMAGE2TEXT_SPEC, Image2Text
from tools.knowledge_graph import KNOWLEDGE_GRAPH_SPEC, KnowledgeGraph
from tools.lookup import LOOKUP_SPEC, Lookup
from tools.pages import PageSource, Searcher
from tools.retrieve import RETRIEVE_SPEC, Retrieve
from tools.search import SEARCH_SPEC, Search
from tools.table_verbalizer import TABLE_VERBALIZER_SPEC, TableVerbalizer
from tools.text2image import TEXT2IMAGE_SPEC, Text2Image
from tools.toolbox import Toolbox

#: Actions the graph handles itself; their specs may appear in a tool file but build no tool.
GRAPH_ACTIONS = ("Finish", "Reflect")


@dataclass
class ToolResources:
    """What tools may need at build time.

    `database`: a SQLite file (Database); `triples`: a triple file (KnowledgeGraph);
    `image_dir`: where Text2Image saves its PNGs (a fresh temp dir per toolbox when None).
    """

    pages: PageSource | None = None
    searcher: Searcher | None = None
    database: Path | None = None
    triples: Path | None = None
    image_dir: Path | None = None


ToolFactory = Callable[[ToolSpec, ToolResources], Tool]


@dataclass(frozen=True)
class _Entry:
    factory: ToolFactory
    spec: ToolSpec


_REGISTRY: dict[str, _Entry] = {}


def register_tool(name: str, factory: ToolFactory, spec: ToolSpec | None = None,
                  replace: bool = False) -> None:
    """Register `factory(spec, resources) -> Tool` under `name`; `spec` is its default text."""
    if name in GRAPH_ACTIONS:
        raise ConfigError(f"{name} is handled by the graph and cannot be registered as a tool")
    if name in _REGISTRY and not replace:
        raise ConfigError(f"a tool named {name!r} is already registered")
    default = spec or ToolSpec(name=name, description=f"The {name} tool.", usage=f"{name}[input]")
    if default.name != name:
        raise ConfigError(f"spec name {default.name!r} does not match registered name {name!r}")
    _REGISTRY[name] = _Entry(factory, default)


def unregister_tool(name: str) -> None:
    """Forget tool `name` (a no-op when it is not registered)."""
    _REGISTRY.pop(name, None)


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def builtin_spec(name: str) -> ToolSpec:
    """The registered default spec of tool `name`."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown tool {name!r}; known tools: {', '.join(registered_names())}")
    return _REGISTRY[name].spec


def build_toolbox(specs: list[ToolSpec], resources: ToolResources | None = None,
                  max_observation_chars: int = 600) -> Toolbox:
    """Instantiate the tools named in `specs` (their text overrides the defaults).

    Finish and Reflect specs are skipped: the graph handles those actions.
    """
    resources = resources or ToolResources()
    tools: list[Tool] = []
    for spec in specs:
        if spec.name in GRAPH_ACTIONS:
            continue
        entry = _REGISTRY.get(spec.name)
        if entry is None:
            raise ConfigError(f"unknown tool {spec.name!r}; "
                              f"known tools: {', '.join(registered_names())}")
        tools.append(entry.factory(spec, resources))
    return Toolbox(tools, max_observation_chars=max_observation_chars)


def _need_pages(spec: ToolSpec, resources: ToolResources) -> PageSource:
    if resources.pages is None:
        raise ConfigError(f"tool {spec.name} needs a page source (a docstore or Wikipedia); none was "
                          "configured: give HotpotQA-format rows with 'context' paragraphs (--data/--corpus) "
                          "or use --wiki live")
    return resources.pages


def _need_searcher(spec: ToolSpec, resources: ToolResources) -> Searcher:
    if resources.searcher is None:
        raise ConfigError(f"tool {spec.name} needs a searcher (e.g. a docstore); none was configured: "
                          "give HotpotQA-format rows with 'context' paragraphs (--data/--corpus)")
    return resources.searcher


def _need_file(spec: ToolSpec, path: Path | None, what: str, option: str) -> Path:
    if path is None:
        raise ConfigError(f"tool {spec.name} needs {what}; none was configured ({option})")
    return Path(path)


register_tool("Retrieve", lambda s, r: Retrieve(_need_pages(s, r), spec=s), RETRIEVE_SPEC)
register_tool("Lookup", lambda s, r: Lookup(spec=s), LOOKUP_SPEC)
register_tool("Search", lambda s, r: Search(_need_searcher(s, r), spec=s), SEARCH_SPEC)
register_tool("Image2Text", lambda s, r: Image2Text(spec=s), IMAGE2TEXT_SPEC)
register_tool("Calculator", lambda s, r: Calculator(spec=s), CALCULATOR_SPEC)
register_tool("Database", lambda s, r: Database(
    _need_file(s, r.database, "a SQLite database file", "--database"), spec=s), DATABASE_SPEC)
register_tool("KnowledgeGraph", lambda s, r: KnowledgeGraph(
    _need_file(s, r.triples, "a triple file", "--triples"), spec=s), KNOWLEDGE_GRAPH_SPEC)
register_tool("TableVerbalizer", lambda s, r: TableVerbalizer(spec=s), TABLE_VERBALIZER_SPEC)
register_tool("Text2Image", lambda s, r: Text2Image(r.image_dir, spec=s), TEXT2IMAGE_SPEC)
register_tool("Code", lambda s, r: Code(spec=s), CODE_SPEC)
