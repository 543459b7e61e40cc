"""Tests for the LangChain bridges: our tools as LangChain tools, and user tools registered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from core.errors import ConfigError
from prompts.builder import PromptBuilder
from tools import (
    Docstore,
    ToolContext,
    ToolResources,
    ToolSpec,
    as_langchain_tool,
    build_toolbox,
    builtin_spec,
    langchain_tools,
    load_tool_specs,
    register_function,
    register_langchain_tool,
    registered_names,
    save_tool_specs,
    unregister_tool,
)
from tools.calculator import Calculator
from tools.spec import FINISH_SPEC

ROWS = [{"context": [["Dover", ["Dover is the capital of Delaware.", " It is in Kent County.",
                                " Dover has an air force base."]]]}]


@pytest.fixture
def custom_names() -> Iterator[list[str]]:
    """Names registered by a test; they are unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_tool(name)


# --- our tools as LangChain tools -------------------------------------------------------------

def test_as_langchain_tool_invoke_forms() -> None:
    calc = as_langchain_tool(Calculator())
    assert isinstance(calc, BaseTool) and calc.name == "Calculator"
    assert calc.description == (f"{builtin_spec('Calculator').description} "
                                f"Usage: {builtin_spec('Calculator').usage}")
    assert list(calc.args) == ["argument"]
    assert calc.invoke({"argument": "2+2"}) == "4"
    assert calc.invoke("2+2") == "4"
    assert calc.invoke("1/0") == "Calculator error: division by zero."
    message = calc.invoke({"type": "tool_call", "id": "call-1", "name": "Calculator",
                           "args": {"argument": "6*7"}})
    assert isinstance(message, ToolMessage) and message.content == "42"
    assert message.tool_call_id == "call-1"


def test_langgraph_tool_node_runs_our_tools() -> None:
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode([as_langchain_tool(Calculator())]))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    call = {"name": "Calculator", "args": {"argument": "2**10"}, "id": "c1", "type": "tool_call"}
    result = builder.compile().invoke({"messages": [AIMessage(content="", tool_calls=[call])]})
    reply = result["messages"][-1]
    assert isinstance(reply, ToolMessage) and reply.content == "1024"


def test_langchain_tools_share_memory_and_row() -> None:
    store = Docstore.from_rows(ROWS)
    specs = [builtin_spec(n) for n in ("Retrieve", "Lookup", "Image2Text")]
    box = build_toolbox(specs, ToolResources(pages=store, searcher=store))
    memory: dict = {}
    lc = {t.name: t for t in langchain_tools(box, memory=memory, row={"caption": "A map."})}
    assert list(lc) == ["Retrieve", "Lookup", "Image2Text"]
    assert lc["Retrieve"].invoke("Dover").startswith("Dover is the capital of Delaware.")
    assert memory["lookup"]["title"] == "Dover"
    assert lc["Lookup"].invoke("Dover") == "(Result 1 / 2) Dover is the capital of Delaware."
    assert lc["Lookup"].invoke({"argument": "Dover"}) == \
        "(Result 2 / 2) Dover has an air force base."
    assert lc["Image2Text"].invoke("image") == "Caption: A map. No text in the image."


def test_as_langchain_tool_keeps_state_and_survives_errors() -> None:
    class Counter:
        spec = ToolSpec("Counter", "Counts calls; fails on 'boom'.", "Counter[x], e.g. Counter[a]")

        def run(self, argument: str, ctx: ToolContext) -> str:
            ctx.memory["n"] = ctx.memory.get("n", 0) + 1
            if argument == "boom":
                raise RuntimeError("kaput")
            return f"call {ctx.memory['n']} with {ctx.row.get('id')}"

    memory: dict = {}
    counter = as_langchain_tool(Counter(), memory=memory, row={"id": "q1"})
    assert counter.invoke("a") == "call 1 with q1"
    assert counter.invoke("boom") == "Tool Counter failed: RuntimeError: kaput"
    assert counter.invoke("b") == "call 2 with q1" and memory == {"n": 2}


# --- user tools into the registry -------------------------------------------------------------

def word_count(argument: str) -> str:
    """Counts the words in a text.

    Longer explanation that prompts do not show.
    """
    return str(len(argument.split()))


def test_register_function_end_to_end(tmp_path: Path, custom_names: list[str]) -> None:
    spec = register_function(word_count, name="WordCount",
                             usage="WordCount[text], e.g. WordCount[to be or not to be]")
    custom_names.append("WordCount")
    assert spec == ToolSpec("WordCount", "Counts the words in a text.",
                            "WordCount[text], e.g. WordCount[to be or not to be]")
    assert "WordCount" in registered_names() and builtin_spec("WordCount") == spec

    path = tmp_path / "tools.json"
    save_tool_specs(path, [spec, builtin_spec("Calculator"), FINISH_SPEC])
    specs = load_tool_specs(path)
    assert [s.name for s in specs] == ["WordCount", "Calculator", "Finish"]
    assert "(1) WordCount: Counts the words in a text." in \
        PromptBuilder("plan", tuple(specs)).instruction()

    box = build_toolbox(specs)
    assert box.run("WordCount", "to be or not to be")[0] == "6"
    assert as_langchain_tool(box.get("WordCount")).invoke("a b") == "2"


def test_register_function_defaults_and_errors(custom_names: list[str]) -> None:
    def shout(argument: str) -> dict:
        """Upper-cases text."""
        if not argument:
            raise ValueError("nothing to shout")
        return {"text": argument.upper()}

    spec = register_function(shout)
    custom_names.append("shout")
    assert spec == ToolSpec("shout", "Upper-cases text.", "shout[input]")
    box = build_toolbox([spec])
    assert box.run("shout", "hi")[0] == '{"text": "HI"}'
    assert box.run("shout", "")[0] == "shout failed: ValueError: nothing to shout"

    with pytest.raises(ConfigError, match="already registered"):
        register_function(shout)
    register_function(shout, description="Shouts.", replace=True)
    assert builtin_spec("shout").description == "Shouts."
    with pytest.raises(ConfigError, match="needs a description"):
        register_function(lambda a: a, name="Anon")
    with pytest.raises(ConfigError, match="must be a word"):
        register_function(lambda a: a, description="An anonymous tool.")
    with pytest.raises(ConfigError, match="handled by the graph"):
        register_function(word_count, name="Finish")
    assert "Anon" not in registered_names()


def test_register_langchain_tool(tmp_path: Path, custom_names: list[str]) -> None:
    @tool
    def reverse_text(text: str) -> str:
        """Reverses a piece of text.

        Args:
            text: what to reverse.
        """
        return text[::-1]

    @tool
    def add(a: int, b: int) -> int:
        """Adds two integers."""
        return a + b

    spec = register_langchain_tool(reverse_text)
    custom_names.append("reverse_text")
    assert spec == ToolSpec("reverse_text", "Reverses a piece of text.", "reverse_text[text]")
    add_spec = register_langchain_tool(add, name="Add")
    custom_names.append("Add")
    assert add_spec.usage == 'Add[{"a": ..., "b": ...}]'
    assert {"reverse_text", "Add"} <= set(registered_names())

    path = tmp_path / "tools.json"
    path.write_text(json.dumps([spec.to_json(), add_spec.to_json()]), encoding="utf-8")
    box = build_toolbox(load_tool_specs(path))
    assert box.run("reverse_text", "abc")[0] == "cba"
    assert box.run("Add", '{"a": 2, "b": 3}')[0] == "5"
    obs = box.run("Add", "2 and 3")[0]
    assert obs.startswith("Add failed: ValidationError")
    # and back out to LangChain again
    assert langchain_tools(box)[0].invoke({"argument": "xyz"}) == "zyx"


def test_register_langchain_tool_bad_name(custom_names: list[str]) -> None:
    @tool("my-tool")
    def my_tool(text: str) -> str:
        """Does things."""
        return text

    with pytest.raises(ConfigError, match="must be a word"):
        register_langchain_tool(my_tool)
    register_langchain_tool(my_tool, name="MyTool")
    custom_names.append("MyTool")
    assert build_toolbox([builtin_spec("MyTool")]).run("MyTool", "ok")[0] == "ok"
