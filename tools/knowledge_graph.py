"""KnowledgeGraph[query]: triple-pattern lookups such as `Paris, capital_of, ?` over a triple file.

Files are read with rdflib (N-Triples, Turtle, N3, RDF/XML, JSON-LD, by extension) or, as a
convenience, a CSV/TSV with one `subject, predicate, object` per line. Names in a query match a
node's label or the local part of its URI (`ex:Paris`, `<http://x.org/Paris>`) or a literal,
ignoring case and treating `_` as a space.
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
from pathlib import Path
from typing import Iterable
from urllib.parse import quote, unquote

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import RDFS, SKOS
from rdflib.term import Node

from core.errors import ConfigError
from tools.base import ToolContext, ToolSpec

KNOWLEDGE_GRAPH_SPEC = ToolSpec(
    name="KnowledgeGraph",
    description="Looks up facts in the task's knowledge graph with a pattern of subject, "
                "relation and object where one or two parts are ?.",
    usage="KnowledgeGraph[subject, relation, object], e.g. KnowledgeGraph[Paris, capital_of, ?]",
)

#: Namespace given to names read from CSV/TSV triple files.
PLAIN_NS = "urn:autoact:kg:"
RDF_FORMATS = {".nt": "nt", ".ttl": "turtle", ".n3": "n3", ".rdf": "xml", ".owl": "xml",
               ".xml": "xml", ".jsonld": "json-ld"}
DELIMITED = {".csv": ",", ".tsv": "\t", ".txt": None}
_HEADER_WORDS = {"subject", "predicate", "object", "head", "relation", "tail", "s", "p", "o"}
_LABELS = (RDFS.label, SKOS.prefLabel)
_WILDCARDS = {"", "?", "*", "_"}


def norm(text: str) -> str:
    """Comparison key: case-folded, `_` as space, single-spaced."""
    return " ".join(text.replace("_", " ").casefold().split())


def local_name(text: str) -> str:
    """The part of a URI or prefixed name after its last `#`, `/` or `:`, percent-decoded."""
    text = text.strip().strip("<>")
    for sep in ("#", "/", ":"):
        head, found, tail = text.rpartition(sep)
        if found and tail:
            return unquote(tail)
    return unquote(text)


def _read_delimited(path: Path, text: str, delimiter: str | None) -> Graph:
    if delimiter is None:
        delimiter = "\t" if "\t" in text else ","
    graph = Graph()
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    first = True
    for cells in reader:
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if first and {c.casefold() for c in cells} <= _HEADER_WORDS:
            first = False
            continue
        first = False
        if len(cells) != 3 or not all(cells):
            raise ConfigError(f"{path}:{reader.line_num}: expected subject{delimiter}predicate"
                              f"{delimiter}object, got {len(cells)} field(s)")
        subject, predicate, obj = (URIRef(PLAIN_NS + quote(c, safe="")) for c in cells)
        graph.add((subject, predicate, obj))
    return graph


def load_triples(path: str | Path) -> Graph:
    """Read a triple file into an rdflib Graph; every problem is a ConfigError naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RDF_FORMATS and suffix not in DELIMITED:
        known = ", ".join(sorted(RDF_FORMATS) + sorted(DELIMITED))
        raise ConfigError(f"{path}: unknown triple file type {suffix or '(none)'}; use {known}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read triples: {err}") from err
    if suffix in DELIMITED:
        return _read_delimited(path, text, DELIMITED[suffix])
    graph = Graph()
    try:
        graph.parse(data=text, format=RDF_FORMATS[suffix], publicID=path.resolve().as_uri())
    except Exception as err:  # rdflib raises many parser-specific types
        raise ConfigError(f"{path}: cannot parse {RDF_FORMATS[suffix]} triples: {err}") from err
    return graph


def split_pattern(text: str) -> list[str]:
    """Split `a, b, c` on commas outside quotes; parts lose surrounding quotes and spaces."""
    text = text.strip()
    if text[:1] in "([" and text[-1:] in ")]":
        text = text[1:-1]
    parts, current, quote_char = [], [], ""
    for char in text:
        if quote_char:
            if char == quote_char:
                quote_char = ""
            else:
                current.append(char)
        elif char in "\"'" and not "".join(current).strip():
            quote_char = char
        elif char == ",":
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


class KnowledgeGraph:
    """Answers triple patterns from an in-memory rdflib graph."""

    def __init__(self, path: str | Path, spec: ToolSpec = KNOWLEDGE_GRAPH_SPEC,
                 max_results: int = 20) -> None:
        self.spec = spec
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: triple file not found (tool {spec.name})")
        self.graph = load_triples(self.path)
        self.max_results = max_results
        self._labels: dict[Node, str] = {}
        for predicate in _LABELS:
            for node, label in self.graph.subject_objects(predicate):
                if isinstance(label, Literal) and (node not in self._labels
                                                   or label.language in (None, "en")):
                    self._labels[node] = str(label)
        self._index: dict[str, set[Node]] = {}
        self._shown: dict[str, str] = {}
        for node in set(itertools.chain.from_iterable(self.graph)):
            self._add(self.display(node), node)
            if isinstance(node, URIRef):
                self._add(local_name(str(node)), node)
                self._add(str(node), node)
        for node, label in self._labels.items():
            self._add(label, node)

    def _add(self, name: str, node: Node) -> None:
        key = norm(name)
        if key:
            self._index.setdefault(key, set()).add(node)
            self._shown.setdefault(key, name)

    def display(self, node: Node) -> str:
        """A node as the agent sees it: its label, a URI's local name, or a literal's text."""
        if node in self._labels:
            return self._labels[node]
        if isinstance(node, URIRef):
            return local_name(str(node)) or str(node)
        return str(node)

    def nodes(self, name: str) -> set[Node]:
        """Every node that `name` may refer to."""
        found: set[Node] = set()
        for key in {norm(name), norm(local_name(name))}:
            found |= self._index.get(key, set())
        return found

    def run(self, argument: str, ctx: ToolContext) -> str:
        parts = split_pattern(argument)
        if len(parts) == 1 and len(parts[0].split()) == 3:  # "Paris capital_of ?"
            parts = parts[0].split()
        if len(parts) != 3:
            return (f"KnowledgeGraph needs subject, relation, object separated by commas, with "
                    f"? for the unknown parts; got {len(parts)} part(s). {self.spec.usage}")
        wild = [p in _WILDCARDS or p.startswith("?") for p in parts]
        if all(wild):
            return "Give at least one of subject, relation or object; only the others may be ?."
        choices: list[Iterable[Node | None]] = []
        for part, is_wild in zip(parts, wild):
            if is_wild:
                choices.append([None])
                continue
            nodes = self.nodes(part)
            if not nodes:
                return self._unknown(part)
            choices.append(sorted(nodes, key=str))
        found = {(s, p, o) for pattern in itertools.product(*choices)
                 for s, p, o in self.graph.triples(pattern)}  # type: ignore[arg-type]
        if not found:
            shown = ", ".join(p if not w else "?" for p, w in zip(parts, wild))
            return f"No facts match [{shown}]."
        lines = sorted(" ".join(self.display(n) for n in triple) for triple in found)
        more = len(lines) - self.max_results
        lines = lines[: self.max_results]
        if more > 0:
            lines.append(f"… {more} more")
        return ";\n".join(lines)

    def _unknown(self, name: str) -> str:
        close = difflib.get_close_matches(norm(name), list(self._index), n=5, cutoff=0.6)
        similar = f" Similar: {', '.join(self._shown[k] for k in close)}." if close else ""
        return f"The knowledge graph has nothing named [{name}].{similar}"
