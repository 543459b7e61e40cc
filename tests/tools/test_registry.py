"""Tests for the tool pool beyond the HotpotQA tools: Calculator, Database, KnowledgeGraph,
TableVerbalizer, Text2Image, Image2Text on files, and the registry that lists them all."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image

from core.errors import ConfigError
from tools import (
    Image2Text,
    Lookup,
    ToolContext,
    ToolResources,
    build_toolbox,
    builtin_spec,
    load_tool_specs,
    registered_names,
)
from tools.calculator import MAX_DIGITS, Calculator
from tools.database import Database
from tools.knowledge_graph import KnowledgeGraph
from tools.table_verbalizer import TableVerbalizer
from tools.text2image import Text2Image

POOL = ["Retrieve", "Lookup", "Search", "Image2Text", "Calculator", "Code", "Database",
        "KnowledgeGraph", "TableVerbalizer", "Text2Image"]


def run(tool: object, argument: str, row: dict | None = None) -> str:
    return tool.run(argument, ToolContext(row=row or {}))  # type: ignore[attr-defined]


# --- registry ---------------------------------------------------------------------------------

def test_registry_lists_the_pool() -> None:
    names = registered_names()
    expected = [n for n in POOL if n != "Code" or "Code" in names]  # Code is registered elsewhere
    assert set(expected) <= set(names)
    for name in expected:
        spec = builtin_spec(name)
        assert spec.name == name and spec.description and "\n" not in spec.description
        assert spec.usage.startswith(f"{name}[")
        if name not in ("Lookup", "Image2Text"):
            assert ", e.g. " in spec.usage


def test_registry_file_resources_are_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tool Database needs a SQLite database file"):
        build_toolbox([builtin_spec("Database")], ToolResources())
    with pytest.raises(ConfigError, match="tool KnowledgeGraph needs a triple file"):
        build_toolbox([builtin_spec("KnowledgeGraph")], ToolResources())
    with pytest.raises(ConfigError, match=r"nope\.db: database file not found"):
        build_toolbox([builtin_spec("Database")], ToolResources(database=tmp_path / "nope.db"))
    with pytest.raises(ConfigError, match=r"nope\.ttl: triple file not found"):
        build_toolbox([builtin_spec("KnowledgeGraph")],
                      ToolResources(triples=tmp_path / "nope.ttl"))


def test_tool_file_with_new_tools(tmp_path: Path, city_db: Path, kg_ttl: Path) -> None:
    names = ["Calculator", "Database", "KnowledgeGraph", "TableVerbalizer", "Text2Image"]
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([builtin_spec(n).to_json() for n in names]), encoding="utf-8")
    specs = load_tool_specs(path)
    box = build_toolbox(specs, ToolResources(database=city_db, triples=kg_ttl,
                                             image_dir=tmp_path / "img"))
    assert box.names == names
    assert box.run("Calculator", "6*7")[0] == "42"
    assert box.run("Database", "SELECT count(*) AS n FROM city")[0] == "n; 4"
    assert box.run("KnowledgeGraph", "Paris, capital_of, ?")[0] == "Paris capital_of France"


# --- Calculator -------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, expected", [
    ("2+2", "4"), ("(1 + 2) * 3 - 4 / 2", "7"), ("-3 + -(-2)", "-1"), ("7 // 2", "3"),
    ("7 % 3", "1"), ("2 ** 10", "1024"), ("2^10", "1024"), ("10 / 4", "2.5"), ("0.1 + 0.2", "0.3"),
    ("2**200", str(2 ** 200)), ("2**200 / 2", str(2 ** 199)), ("1,000 + 2,500,000", "2501000"),
    ("1,234.5 * 2", "2469"), ("max(1,234)", "234"), ("sqrt(1,000,000)", "1000"),
    ("min(3, 1, 2)", "1"), ("sqrt(16)", "4"),
    ("log(100, 10)", "2"), ("ln(e)", "1"), ("exp(0)", "1"), ("round(pi, 3)", "3.142"),
    ("abs(-2.5)", "2.5"), ("floor(2.7) + ceil(2.1)", "5"), ("factorial(20)", "2432902008176640000"),
    ("cos(0) + sin(0) + tan(0)", "1"), ("'3 * 3'", "9"), ("12 × 3 ÷ 4 =", "9"),
])
def test_calculator_values(expr: str, expected: str) -> None:
    assert run(Calculator(), expr) == expected


@pytest.mark.parametrize("expr, reason", [
    ("1/0", "division by zero"), ("5 % 0", "division by zero"), ("x + 1", "unknown name 'x'"),
    ("foo(2)", "unknown function 'foo'"), ("2 +", "cannot parse"), ("", "empty"),
    ("sqrt(-1)", "domain"), ("log(0)", "domain"), ("(-8) ** (1/3)", "fractional power"),
    ("exp(1000)", "too large"), ("10.0 ** 400", "too large"), ("True + 1", "not a number"),
    ("'a' * 3", "not a number"), ("1,5", "commas may only separate"),
    ("factorial(2.5)", "whole number"), ("factorial(-1)", "non-negative"),
    ("min()", "wrong arguments"),
    ("sqrt(x=4)", "positional"),
])
def test_calculator_errors(expr: str, reason: str) -> None:
    obs = run(Calculator(), expr)
    assert obs.startswith("Calculator error:") and reason in obs


@pytest.mark.parametrize("expr", [
    "__import__('os').system('echo hi')", "().__class__.__bases__", "[1, 2]", "lambda: 1",
    "open('/etc/passwd')", "(1).real", "{1: 2}", "1 if 1 else 2", "1 < 2", "1 << 1000",
])
def test_calculator_refuses_non_arithmetic(expr: str) -> None:
    assert run(Calculator(), expr).startswith("Calculator error:")


@pytest.mark.parametrize("expr", ["2 ** 100000", "9 ** 9 ** 9", "factorial(100000)",
                                  "factorial(400) * factorial(400)", "pow(10, 10 ** 9)",
                                  "(10 ** 999) * (10 ** 999)", "1 + " * 200 + "1"])
def test_calculator_limits_do_not_hang(expr: str) -> None:
    start = time.monotonic()
    obs = run(Calculator(), expr)
    assert time.monotonic() - start < 1.0
    assert obs.startswith("Calculator error:")
    assert "digits" in obs or "limited" in obs or "longer than" in obs


def test_calculator_exact_up_to_the_cap() -> None:
    assert run(Calculator(), "10 ** 999") == "1" + "0" * 999
    assert len(run(Calculator(), "factorial(449)")) <= MAX_DIGITS


# --- Database ---------------------------------------------------------------------------------

@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    path = tmp_path / "cities.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE city (name TEXT, country TEXT, population INTEGER);"
            "INSERT INTO city VALUES ('Paris', 'France', 2100000), ('Lyon', 'France', 500000),"
            " ('Rome', 'Italy', 2800000), ('Nice', 'France', NULL);")
    conn.close()
    return path


def test_database_select_as_table(city_db: Path) -> None:
    db = Database(city_db)
    assert run(db, "SELECT name, population FROM city WHERE country = 'Italy';") == \
        "name | population;\nRome | 2800000"
    assert run(db, "with big as (select name from city where population > 1000000) "
                   "select count(*) as n from big") == "n;\n2"
    assert run(db, "SELECT name, population FROM city WHERE name = 'Nice'") == \
        "name | population;\nNice | NULL"
    assert run(db, "```sql\nSELECT name FROM city WHERE name = 'a;b'\n```") == \
        "No rows (columns: name)."


def test_database_caps_rows(city_db: Path) -> None:
    obs = run(Database(city_db, max_rows=2), "SELECT name FROM city ORDER BY name")
    assert obs == "name;\nLyon;\nNice;\n… 2 more rows"


@pytest.mark.parametrize("sql, message", [
    ("DELETE FROM city", "read-only"), ("DROP TABLE city", "read-only"),
    ("INSERT INTO city VALUES ('x', 'y', 1)", "read-only"),
    ("PRAGMA writable_schema = ON", "read-only"),
    ("ATTACH DATABASE 'other.db' AS o", "read-only"),
    ("SELECT 1; DROP TABLE city", "one query at a time"),
    ("WITH x AS (SELECT 1) DELETE FROM city", "only reading is allowed"),
    ("WITH x AS (SELECT 1) UPDATE city SET name = 'y'", "only reading is allowed"),
])
def test_database_refuses_writes(city_db: Path, sql: str, message: str) -> None:
    db = Database(city_db)
    assert message in run(db, sql)
    assert run(db, "SELECT count(*) FROM city") == "count(*);\n4"


def test_database_errors_are_observations(city_db: Path) -> None:
    db = Database(city_db)
    assert run(db, "SELECT * FROM towns") == \
        "SQL error: no such table: towns. Tables: city(name, country, population)."
    assert run(db, "SELECT nme FROM city").startswith("SQL error: no such column: nme")
    assert run(db, "SELECT FROM WHERE").startswith("SQL error:")
    assert run(db, "") == "Database needs a SQL query. Tables: city(name, country, population)."


def test_database_stops_runaway_queries(city_db: Path) -> None:
    db = Database(city_db, timeout_s=0.3)
    start = time.monotonic()
    obs = run(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                  "SELECT count(*) FROM c")
    assert time.monotonic() - start < 3
    assert "took longer than 0.3 s" in obs


def test_database_rejects_non_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("this is not a database " * 100, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"notes\.db: not a readable SQLite database"):
        Database(path)


# --- KnowledgeGraph ---------------------------------------------------------------------------

TURTLE = """@prefix ex: <http://example.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:Paris ex:capital_of ex:France ; ex:population 2100000 .
ex:Rome ex:capital_of ex:Italy .
ex:New_York ex:located_in ex:United_States .
ex:Q90 rdfs:label "Marseille"@en ; ex:located_in ex:France .
ex:France ex:motto "Liberté, égalité, fraternité" .
"""


@pytest.fixture
def kg_ttl(tmp_path: Path) -> Path:
    path = tmp_path / "facts.ttl"
    path.write_text(TURTLE, encoding="utf-8")
    return path


@pytest.mark.parametrize("query, expected", [
    ("Paris, capital_of, ?", "Paris capital_of France"),
    ("  paris ,CAPITAL OF,  ?x ", "Paris capital_of France"),
    ("(Paris, capital_of, ?)", "Paris capital_of France"),
    ("Paris capital_of ?", "Paris capital_of France"),
    ("ex:Paris, capital_of, ?", "Paris capital_of France"),
    ("<http://example.org/Rome>, ?, ?", "Rome capital_of Italy"),
    ("?, capital_of, ?", "Paris capital_of France;\nRome capital_of Italy"),
    ("?, located_in, France", "Marseille located_in France"),
    ("new york, ?, ?", "New_York located_in United_States"),
    ("'France', motto, ?", "France motto Liberté, égalité, fraternité"),
    ('?, ?, "Liberté, égalité, fraternité"', "France motto Liberté, égalité, fraternité"),
    ("?, population, 2100000", "Paris population 2100000"),
    ("Paris, capital_of, France", "Paris capital_of France"),
])
def test_knowledge_graph_patterns(kg_ttl: Path, query: str, expected: str) -> None:
    assert run(KnowledgeGraph(kg_ttl), query) == expected


def test_knowledge_graph_misses_and_bad_queries(kg_ttl: Path) -> None:
    kg = KnowledgeGraph(kg_ttl)
    assert run(kg, "Paris, capital_of, Italy") == "No facts match [Paris, capital_of, Italy]."
    assert run(kg, "Pariss, ?, ?") == \
        "The knowledge graph has nothing named [Pariss]. Similar: Paris."
    assert run(kg, "?, ?, ?").startswith("Give at least one of subject, relation or object")
    assert run(kg, "Paris, capital_of").startswith("KnowledgeGraph needs subject, relation, object")


def test_knowledge_graph_caps_results(tmp_path: Path) -> None:
    path = tmp_path / "many.nt"
    path.write_text("".join(f"<http://e.org/n{i:02d}> <http://e.org/is> \"node\" .\n"
                            for i in range(30)), encoding="utf-8")
    lines = run(KnowledgeGraph(path, max_results=5), "?, is, node").split(";\n")
    assert lines[0] == "n00 is node" and len(lines) == 6 and lines[-1] == "… 25 more"


def test_knowledge_graph_delimited_files(tmp_path: Path) -> None:
    tsv = tmp_path / "facts.tsv"
    tsv.write_text("subject\tpredicate\tobject\nParis\tcapital_of\tFrance\n"
                   "Washington, D.C.\tcapital_of\tUnited States\n", encoding="utf-8")
    kg = KnowledgeGraph(tsv)
    assert run(kg, "?, capital_of, united states") == "Washington, D.C. capital_of United States"
    assert run(kg, "'Washington, D.C.', ?, ?") == "Washington, D.C. capital_of United States"
    csv_path = tmp_path / "facts.csv"
    csv_path.write_text("# comment\nRome,capital_of,Italy\n", encoding="utf-8")
    assert run(KnowledgeGraph(csv_path), "Rome, ?, ?") == "Rome capital_of Italy"


def test_knowledge_graph_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.csv:1: expected subject,predicate,object"):
        KnowledgeGraph(bad)
    broken = tmp_path / "broken.ttl"
    broken.write_text("@prefix ex: <http://e.org/> . ex:a ex:b", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.ttl: cannot parse turtle"):
        KnowledgeGraph(broken)
    odd = tmp_path / "facts.parquet"
    odd.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"facts\.parquet: unknown triple file type"):
        KnowledgeGraph(odd)


# --- TableVerbalizer --------------------------------------------------------------------------

PARIS_ROME = "Row 1: name is Paris, country is France. Row 2: name is Rome, country is Italy."


@pytest.mark.parametrize("table", [
    "name,country\nParis,France\nRome,Italy",
    "name, country; Paris, France; Rome, Italy",
    "name,country\\nParis,France\\nRome,Italy",
    "name\tcountry\nParis\tFrance\nRome\tItaly",
    "| name | country |\n|---|:---:|\n| Paris | France |\n| Rome | Italy |",
    "| name | country | |---|---| | Paris | France | | Rome | Italy |",
    "| name | country |; | Paris | France |; | Rome | Italy |",
    '[{"name": "Paris", "country": "France"}, {"name": "Rome", "country": "Italy"}]',
    '{"columns": ["name", "country"], "rows": [["Paris", "France"], ["Rome", "Italy"]]}',
    '{"name": ["Paris", "Rome"], "country": ["France", "Italy"]}',
    '[["name", "country"], ["Paris", "France"], ["Rome", "Italy"]]',
])
def test_table_verbalizer_formats(table: str) -> None:
    assert run(TableVerbalizer(), table) == PARIS_ROME


def test_table_verbalizer_header_detection_and_gaps() -> None:
    tv = TableVerbalizer()
    assert run(tv, "1,2\n3,4") == ("Row 1: column 1 is 1, column 2 is 2. "
                                   "Row 2: column 1 is 3, column 2 is 4.")
    assert run(tv, "Paris,2100000\nRome,2800000").startswith("Row 1: column 1 is Paris")
    assert run(tv, '[{"a": 1, "b": null}, {"b": true}]') == "Row 1: a is 1. Row 2: b is true."
    assert run(tv, "a,b\n,\n1") == "Row 1: a is 1."  # blank CSV lines are skipped
    assert run(tv, '{"columns": ["a", "b"], "rows": [[null, ""], [1]]}') == \
        "Row 1 is empty. Row 2: a is 1."
    assert run(tv, "name,country") == "The table has columns name, country but no rows."


def test_table_verbalizer_bad_input_and_limits() -> None:
    tv = TableVerbalizer(max_rows=2)
    assert run(tv, "").startswith("TableVerbalizer needs a table.")
    assert run(tv, "[1, 2").startswith("Cannot read the table: invalid JSON")
    assert run(tv, "[1, 2]").startswith("Cannot read the table: JSON tables are")
    assert run(tv, "just some words").startswith("Cannot read the table: no cells found")
    assert run(tv, "| a | b | |---|---| | 1 |").startswith("Cannot read the table: the Markdown")
    assert run(tv, "n\n1\n2\n3\n4") == "Row 1: n is 1. Row 2: n is 2. … 2 more rows."


def test_table_verbalizer_reads_the_row_table() -> None:
    row = {"table": [{"item": "pen", "price": "$2"}]}
    assert run(TableVerbalizer(), "table", row) == "Row 1: item is pen, price is $2."
    assert run(TableVerbalizer(), "", {"table": "a,b\n1,2"}) == "Row 1: a is 1, b is 2."


# --- Text2Image and Image2Text on files ---------------------------------------------------------

def test_text2image_renders_png(tmp_path: Path) -> None:
    tool = Text2Image(tmp_path / "out")
    text = "A red triangle above a blue square, " * 8
    path = Path(run(tool, text))
    assert path.parent == tmp_path / "out" and path.suffix == ".png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width == 512 and image.height > 100  # wrapped
        assert image.text["Description"] == text.strip()
        assert image.convert("L").getextrema()[0] < 128  # something dark was drawn
    assert run(tool, text) == str(path)  # same text, same file


def test_text2image_errors_and_default_dir(tmp_path: Path) -> None:
    assert run(Text2Image(tmp_path), "  ").startswith("Text2Image needs some text")
    assert "at most 2000 characters" in run(Text2Image(tmp_path), "x" * 2001)
    long_word = run(Text2Image(tmp_path), "W" * 300)  # wider than a line: split, not overflow
    assert Path(long_word).is_file()
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    assert run(Text2Image(blocker / "sub"), "hi").startswith("Text2Image could not save")
    box = build_toolbox([builtin_spec("Text2Image")])
    obs, _ = box.run("Text2Image", "hello")
    assert Path(obs).is_file() and "autoact-images-" in obs


def test_image2text_on_image_files(tmp_path: Path) -> None:
    box = build_toolbox([builtin_spec("Text2Image"), builtin_spec("Image2Text")],
                        ToolResources(image_dir=tmp_path), max_observation_chars=2000)
    drawn, _ = box.run("Text2Image", "x = 3")
    obs, _ = box.run("Image2Text", drawn, {"caption": "no img", "ocr": "no img"})
    assert obs == f"There is no precomputed caption for the image {drawn}; its embedded text: x = 3"
    plain = tmp_path / "photo.jpg"
    Image.new("RGB", (4, 3), "red").save(plain)
    obs, _ = box.run("Image2Text", str(plain), {})
    assert obs == (f"There is no precomputed caption for the image {plain} (4x3 pixels), and no "
                   "captioning model is available offline.")
    fake = tmp_path / "fake.png"
    fake.write_text("not an image", encoding="utf-8")
    assert box.run("Image2Text", str(fake), {})[0].startswith(f"Cannot read the image {fake}")
    # A row caption wins; a path that is not a file falls back to the row as before.
    assert box.run("Image2Text", str(plain), {"caption": "A map."})[0].startswith("Caption: A map.")
    assert box.run("Image2Text", str(tmp_path / "gone.png"), {})[0] == \
        "There is no image for this question."


def test_every_pool_tool_runs_in_one_toolbox(tmp_path: Path, city_db: Path, kg_ttl: Path) -> None:
    specs = [builtin_spec(n) for n in registered_names()
             if n not in ("Retrieve", "Search", "Code")]
    box = build_toolbox(specs, ToolResources(database=city_db, triples=kg_ttl, image_dir=tmp_path))
    # one tool per spec, in the specs' order, each the registered class showing its registered spec
    assert box.names == [s.name for s in specs] and len(box) == len(specs)
    assert box.specs == specs
    classes = {"Calculator": Calculator, "Database": Database, "Image2Text": Image2Text,
               "KnowledgeGraph": KnowledgeGraph, "Lookup": Lookup, "TableVerbalizer": TableVerbalizer,
               "Text2Image": Text2Image}
    assert set(classes) <= set(box.names)
    assert "Retrieve" not in box and "Search" not in box and "Code" not in box
    for name, cls in classes.items():
        assert type(box.get(name)) is cls and box.get(name).spec == builtin_spec(name)
    # empty arguments are answered by the tool itself (not the toolbox's failure text), memory untouched
    empty = {"Calculator": "Calculator error: the expression is empty.",
             "Database": "Database needs a SQL query. Tables: city(name, country, population).",
             "Image2Text": "There is no image for this question.",
             "KnowledgeGraph": "KnowledgeGraph needs subject, relation, object",
             "Lookup": "Lookup needs a keyword",
             "TableVerbalizer": "TableVerbalizer needs a table.",
             "Text2Image": "Text2Image needs some text to draw."}
    for name in box.names:
        obs, memory = box.run(name, "", memory={"k": 1})
        assert obs and not obs.startswith((f"Tool {name} failed", "There is no tool named"))
        assert memory == {"k": 1}
        if name in empty:
            assert obs.startswith(empty[name]), (name, obs)
    assert not list(tmp_path.glob("*.png"))  # nothing was drawn for the empty Text2Image
