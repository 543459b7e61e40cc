"""The toolbox (tools/toolbox.py): one never-raising call, memory handling and observation clipping."""

from __future__ import annotations

import copy

import pytest

from core.errors import ConfigError
from tools.base import ToolContext, ToolSpec
from tools.toolbox import TRUNCATION_MARKER, Toolbox, ToolCall


class Note:
    """Appends its argument to `memory["notes"]` and echoes the row's question."""

    spec = ToolSpec("Note", "remember a note", "Note[text]")

    def run(self, argument: str, ctx: ToolContext) -> str:
        ctx.memory.setdefault("notes", []).append(argument)
        return f"noted {argument} for {ctx.row.get('question', '?')}"


class Explode:
    """Dirties its memory copy, then fails."""

    spec = ToolSpec("Explode", "always fails", "Explode[x]")

    def run(self, argument: str, ctx: ToolContext) -> str:
        ctx.memory.setdefault("notes", []).append("half-done")
        raise ValueError(f"cannot {argument}")


class Echo:
    spec = ToolSpec("Echo", "returns its argument", "Echo[text]")

    def run(self, argument: str, ctx: ToolContext) -> str:
        return argument


def toolbox(**kwargs) -> Toolbox:
    return Toolbox([Note(), Explode(), Echo()], **kwargs)


def test_ok_call_returns_observation_new_memory_and_status():
    memory = {"notes": ["first"]}
    result = toolbox().call("Note", "second", {"question": "Q?"}, memory)
    assert isinstance(result, ToolCall) and result.status == "ok"
    assert result.observation == "noted second for Q?"
    assert result.memory == {"notes": ["first", "second"]}
    assert memory == {"notes": ["first"]}  # the caller's memory is untouched


def test_unknown_tool_lists_the_valid_ones_and_keeps_memory():
    memory = {"notes": ["first"]}
    result = toolbox().call("Teleport", "Mars", {}, memory)
    assert result.status == "unknown_tool"
    assert result.observation == "There is no tool named Teleport; valid tools: Note, Explode, Echo."
    assert result.memory == memory and result.memory is not memory


def test_unknown_tool_in_an_empty_toolbox():
    assert Toolbox([]).call("Echo", "x").observation == "There is no tool named Echo; valid tools: none."


def test_failing_tool_is_an_observation_and_its_memory_changes_are_dropped():
    memory = {"notes": ["first"]}
    snapshot = copy.deepcopy(memory)
    result = toolbox().call("Explode", "fly", {}, memory)
    assert result.status == "tool_error"
    assert result.observation == "Tool Explode failed: ValueError: cannot fly"
    assert result.memory == snapshot and memory == snapshot


def test_call_without_row_or_memory():
    result = toolbox().call("Note", "x")
    assert result == ToolCall("noted x for ?", {"notes": ["x"]}, "ok")


def test_run_returns_what_call_returns():
    box = toolbox()
    for name, argument in (("Note", "x"), ("Explode", "y"), ("Nope", "z")):
        result = box.call(name, argument, {"question": "Q"}, {"notes": []})
        assert box.run(name, argument, {"question": "Q"}, {"notes": []}) == (result.observation, result.memory)


def test_long_observations_are_clipped_with_the_marker():
    box = toolbox(max_observation_chars=40)
    observation = box.call("Echo", "word " * 30).observation
    assert len(observation) <= 40 and observation.endswith(TRUNCATION_MARKER)
    assert observation.startswith("word word")
    exact = "x" * 40
    assert box.call("Echo", exact).observation == exact  # at the limit: not cut


def test_error_messages_are_clipped_too():
    box = toolbox(max_observation_chars=30)
    assert box.call("Explode", "y" * 100).observation.endswith(TRUNCATION_MARKER)
    assert len(box.call("Teleport" * 10, "").observation) <= 30


def test_observations_collapse_to_one_line_unless_asked_not_to():
    text = "line one\n\n  line\ttwo  "
    assert toolbox().call("Echo", text).observation == "line one line two"
    assert toolbox(single_line=False).call("Echo", text).observation == text


def test_bad_construction_is_refused():
    with pytest.raises(ConfigError, match="max_observation_chars"):
        Toolbox([Echo()], max_observation_chars=len(TRUNCATION_MARKER))
    with pytest.raises(ConfigError, match="two tools are named 'Echo'"):
        Toolbox([Echo(), Echo()])


def test_names_specs_and_lookup():
    box = toolbox()
    assert box.names == ["Note", "Explode", "Echo"] and len(box) == 3
    assert [s.name for s in box.specs] == box.names and "Echo" in box and "Nope" not in box
    assert isinstance(box.get("Echo"), Echo) and box.get("Nope") is None
