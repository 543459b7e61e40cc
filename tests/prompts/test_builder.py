"""PromptBuilder and its helpers: instruction, transcript and cue shapes; templates and their version."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.errors import ConfigError
from prompts import builder
from prompts.builder import (
    PromptBuilder,
    load_template,
    prompts_version,
    render_tools,
    render_transcript,
)
from tools.base import ToolSpec

SEARCH = ToolSpec("Search", "Finds pages about a query.", "Search[query]")
LOOKUP = ToolSpec("Lookup", "Finds a keyword on the page.", "Lookup[keyword]")
FINISH = ToolSpec("Finish", "Gives the final answer.", "Finish[answer]")
REFLECT = ToolSpec("Reflect", "Judges the proposed answer.", "Reflect[right]")
TOOLS = (SEARCH, LOOKUP, FINISH, REFLECT)

TOOL_LINES = ("(1) Search: Finds pages about a query.\n(2) Lookup: Finds a keyword on the page.\n"
              "(3) Finish: Gives the final answer.\n(4) Reflect: Judges the proposed answer.")
STEPS = [
    {"thought": "I need the capital.", "action": "Search", "argument": "Freedonia",
     "observation": "Its capital is Fredville."},
    {"thought": "Found it.", "action": "Finish", "argument": "Fredville", "observation": "Proposed answer."},
]
TRANSCRIPT = ("Thought 1: I need the capital.\nAction 1: Search[Freedonia]\nObservation 1: Its capital is Fredville.\n"
              "Thought 2: Found it.\nAction 2: Finish[Fredville]\nObservation 2: Proposed answer.")


# --- render_tools / render_transcript ------------------------------------------------------------

def test_render_tools_numbers_from_one_without_usage() -> None:
    """Tools are listed as `(i) Name: description`, numbered from 1, usage lines left out."""
    assert render_tools(TOOLS) == TOOL_LINES
    assert "Search[query]" not in render_tools(TOOLS)
    assert render_tools([LOOKUP]) == "(1) Lookup: Finds a keyword on the page."
    assert render_tools([]) == ""


def test_render_transcript_numbers_each_step() -> None:
    """Each step gives Thought i / Action i: Name[argument] / Observation i lines, from 1."""
    assert render_transcript(STEPS) == TRANSCRIPT
    assert render_transcript([]) == ""


def test_render_transcript_empty_fields() -> None:
    """Missing fields render as empty: no trailing space after the label, empty brackets kept."""
    assert render_transcript([{}]) == "Thought 1:\nAction 1: []\nObservation 1:"
    assert render_transcript([{"action": "Lookup", "observation": ""}]) == \
        "Thought 1:\nAction 1: Lookup[]\nObservation 1:"


# --- PromptBuilder -----------------------------------------------------------------------------

def test_instruction_fills_tools_into_the_role_template() -> None:
    """instruction(): the role's template with every tool (Reflect included) numbered in `$tools`."""
    text = PromptBuilder("plan", TOOLS).instruction()
    assert text.startswith("You are the planner of a small team")
    assert "The actions you may pick:\n" + TOOL_LINES + "\nPick Finish once" in text
    assert "$" not in text


def test_instruction_task_tools_leave_out_reflect() -> None:
    """`$task_tools` lists every tool but Reflect, renumbered."""
    text = PromptBuilder("react_hotpotqa", TOOLS).instruction()
    assert "The actions:\n(1) Search: Finds pages about a query.\n(2) Lookup: Finds a keyword on the page.\n" \
           "(3) Finish: Gives the final answer.\nWrite every action" in text
    assert "Reflect" not in text


def test_instruction_template_needing_another_value_is_a_config_error() -> None:
    """A template with a placeholder the builder cannot fill names the template and the value."""
    with pytest.raises(ConfigError, match="prompt template 'bolaa_controller' needs a value for 'agents'"):
        PromptBuilder("bolaa_controller", TOOLS).instruction()


def test_context_shape() -> None:
    """context(): instruction, a blank line, the question, the transcript (if any), a final newline."""
    pb = PromptBuilder("tool", TOOLS)
    head = pb.instruction() + "\n\nQuestion: Capital of Freedonia?\n"
    assert pb.context("Capital of Freedonia?", []) == head
    assert pb.context("Capital of Freedonia?", STEPS) == head + TRANSCRIPT + "\n"


def test_thought_action_argument_cues() -> None:
    """The cues continue the context with the next step's number: Thought n:, Action n:, ` Name[`."""
    pb = PromptBuilder("plan", TOOLS)
    ctx0, ctx2 = pb.context("Q?", []), pb.context("Q?", STEPS)
    assert pb.thought("Q?", []) == ctx0 + "Thought 1:"
    assert pb.thought("Q?", STEPS) == ctx2 + "Thought 3:"
    assert pb.action("Q?", STEPS, "Check it.") == ctx2 + "Thought 3: Check it.\nAction 3:"
    assert pb.argument("Q?", STEPS, "Check it.", "Lookup") == ctx2 + "Thought 3: Check it.\nAction 3: Lookup["
    assert pb.argument("Q?", [], "Look.", "Search").endswith("Question: Q?\nThought 1: Look.\nAction 1: Search[")


def test_each_role_gets_its_own_instruction() -> None:
    """meta, plan, tool and reflect each have a template, and all four differ."""
    texts = {role: PromptBuilder(role, TOOLS).instruction() for role in ("meta", "plan", "tool", "reflect")}
    assert len(set(texts.values())) == 4
    assert all(TOOL_LINES in text for text in texts.values())
    assert texts["tool"].startswith("You are the tool user")
    assert texts["reflect"].startswith("You are the reviewer")


# --- load_template / prompts_version ----------------------------------------------------------

def test_load_template_unknown_names_known_templates() -> None:
    """An unknown template is a ConfigError that lists the role templates."""
    with pytest.raises(ConfigError, match=r"no prompt template 'nope'; known: meta, plan, tool, reflect"):
        load_template("nope")


def test_load_template_strips_the_text() -> None:
    """Templates are read without the file's trailing newline."""
    template = load_template("tool").template
    assert template.startswith("You are the tool user") and template.endswith("or the final answer.")


def _copied_prompts(tmp_path: Path) -> Path:
    for path in resources.files("prompts").iterdir():
        if path.name.endswith(".txt"):
            shutil.copyfile(str(path), tmp_path / path.name)
    return tmp_path


def _version_of(folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(builder, "resources", SimpleNamespace(files=lambda package: folder))
        return prompts_version()


def test_prompts_version_is_stable() -> None:
    """The version is 12 hex digits and the same on every call."""
    version = prompts_version()
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    assert prompts_version() == version


def test_prompts_version_follows_the_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same templates, same version; an edited or renamed template changes it; other files do not."""
    folder = _copied_prompts(tmp_path)
    real = prompts_version()
    assert _version_of(folder, monkeypatch) == real
    (folder / "notes.md").write_text("not a template", encoding="utf-8")
    assert _version_of(folder, monkeypatch) == real
    plan = folder / "plan.txt"
    original = plan.read_text(encoding="utf-8")
    plan.write_text(original + " ", encoding="utf-8")
    edited = _version_of(folder, monkeypatch)
    assert edited != real
    plan.write_text(original, encoding="utf-8")
    assert _version_of(folder, monkeypatch) == real
    plan.rename(folder / "planner.txt")
    assert _version_of(folder, monkeypatch) not in (real, edited)
    assert prompts_version() == real  # the package itself is untouched
