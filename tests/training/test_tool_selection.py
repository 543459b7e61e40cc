"""Tool selection: robust parsing of messy answers, scored choice, clear failure, and a real endpoint run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fakes import ScriptedModel
from tools import builtin_spec, load_tool_specs
from training.tool_selection import SelectionError, parse_selection, select_tools

POOL = ["Retrieve", "Lookup", "Search", "Image2Text", "Calculator", "Code", "Database", "KnowledgeGraph",
        "TableVerbalizer", "Text2Image"]


@pytest.mark.parametrize("answer,chosen,unknown", [
    ("1. Retrieve\n2. Lookup\n3. Search", ["Retrieve", "Lookup", "Search"], []),
    ("(1) retrieve (2) LOOKUP", ["Retrieve", "Lookup"], []),
    ("retrieve, lookup and search", ["Retrieve", "Lookup", "Search"], []),
    ("The agent should use Search to find pages, then Lookup for details.", ["Search", "Lookup"], []),
    ("- image_to_text\n- WebBrowser\n- Retrieve", ["Image2Text", "Retrieve"], ["WebBrowser"]),
    ("Image 2 Text; Calculator", ["Image2Text", "Calculator"], []),
    ("Retrieve, Retrieve, Lookup, retrieve", ["Retrieve", "Lookup"], []),
    ("Tools: Knowledge Graph, table verbalizer, text-to-image", ["KnowledgeGraph", "TableVerbalizer", "Text2Image"], []),
    ("1) Search: to find pages\n2) Translator: for other languages", ["Search"], ["Translator"]),
    ("**Retrieve**\n**Lookup**\nGoogle_Search", ["Retrieve", "Lookup"], ["Google_Search"]),
    ("Sure! Here are the tools:\n* `Database`\n* `Code`\nHope this helps.", ["Database", "Code"], []),
    ("None of these tools are needed.", [], []),
    ("", [], []),
])
def test_parse_messy_answers(answer, chosen, unknown):
    assert parse_selection(answer, POOL) == (chosen, unknown)


def pool():
    return [builtin_spec(n) for n in ("Retrieve", "Lookup", "Search", "Image2Text")]


def test_scored_selection_keeps_tools_with_yes_above_no():
    model = ScriptedModel(prefer=["yes", "no", "yes", "no"])
    sel = select_tools(model, "Answer questions from an encyclopedia.", pool(), calibrate=False)
    assert [s.name for s in sel.chosen] == ["Retrieve", "Search"]
    assert sel.scores == {"Retrieve": 5.0, "Lookup": -5.0, "Search": 5.0, "Image2Text": -5.0}
    assert "Does this task need the tool Retrieve?" in model.prompts[0]
    assert "Task: Answer questions from an encyclopedia." in model.prompts[0]


def test_calibration_subtracts_the_content_free_margins():
    # with the task: yes, no, yes, no; with the content-free task "N/A": yes, yes, no, no
    model = ScriptedModel(prefer=["yes", "no", "yes", "no", "yes", "yes", "no", "no"])
    sel = select_tools(model, "Answer questions from an encyclopedia.", pool())
    # Retrieve is "yes" whatever the task says, so the task adds nothing for it; Search gains 10
    assert sel.scores == {"Retrieve": 0.0, "Lookup": -10.0, "Search": 10.0, "Image2Text": 0.0}
    assert [s.name for s in sel.chosen] == ["Search"]
    assert "Task: N/A" in model.prompts[4] and "calibrated" in sel.answer


def test_scored_selection_that_refuses_everything_fails_clearly():
    with pytest.raises(SelectionError, match="answered 'no' for every tool"):
        select_tools(ScriptedModel(prefer=["no"] * 4), "t", pool(), calibrate=False)


def test_free_selection_parses_and_warns_about_unknown_names(caplog):
    model = ScriptedModel(generations=["1. Search\n2. Wikipedia_API\n3. lookup"])
    sel = select_tools(model, "t", pool(), scored=False)
    assert [s.name for s in sel.chosen] == ["Search", "Lookup"] and sel.ignored == ["Wikipedia_API"]
    assert "Wikipedia_API" in caplog.text


def test_free_selection_with_no_valid_tool_shows_the_answer():
    with pytest.raises(SelectionError, match="Its answer was: 'I would use a hammer.'"):
        select_tools(ScriptedModel(generations=["I would use a hammer."]), "t", pool(), scored=False)


@pytest.mark.integration
def test_select_tools_cli_through_real_endpoint_then_run_uses_exactly_that_set(tiny_stack, tmp_path):
    out = tmp_path / "tools.json"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "autoact", "select-tools", "--task", "hotpotqa", "--out", str(out),
                           "--base-url", tiny_stack.base_url], capture_output=True, text=True, cwd=root, timeout=600)
    if done.returncode != 0:  # a random model may refuse every tool: that must be a clear failure, no file
        assert "answered 'no' for every tool" in done.stdout and not out.exists()
        out.write_text(json.dumps([builtin_spec("Search").to_json()]))
    specs = load_tool_specs(out)
    assert specs and all(set(s.to_json()) == {"name", "description", "usage"} for s in specs)
    data = tmp_path / "d.jsonl"
    from tests.support.builders import ROWS
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    import sqlite3  # resources for whichever tools the random model picked
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        db.execute("CREATE TABLE city (name TEXT)")
    (tmp_path / "kg.csv").write_text("Fredville,capital_of,Freedonia\n")
    run = subprocess.run([sys.executable, "-m", "autoact", "run", "--task", "hotpotqa", "--data", str(data),
                          "--id", "q1", "--tools", str(out), "--base-url", tiny_stack.base_url, "--max-steps", "2",
                          "--database", str(tmp_path / "db.sqlite"), "--triples", str(tmp_path / "kg.csv"),
                          "--image-dir", str(tmp_path / "img"), "--trace-file", str(tmp_path / "t.jsonl")],
                         capture_output=True, text=True, cwd=root, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    used = {json.loads(line).get("action") for line in (tmp_path / "t.jsonl").read_text().splitlines()}
    assert used - {None, ""} <= {s.name for s in specs} | {"Finish", "Reflect"}
