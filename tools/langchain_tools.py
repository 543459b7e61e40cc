"""Bridges to LangChain, both ways.

- `as_langchain_tool` / `langchain_tools`: our tools as LangChain `BaseTool`s taking one string
  `argument` (usable with `.invoke("2+2")`, tool calling, or a LangGraph `ToolNode`).
- `register_function` / `register_langchain_tool`: a user's plain function or LangChain tool as
  a registered tool, so it can be named in a tool file, shown in prompts and run in a Toolbox.

langchain-core is imported only when a LangChain tool is made, keeping `import tools` light.
"""

from __future__ import annotations

import copy
import inspect
import json
from typing import TYPE_CHECKING, Any, Callable, Mapping

from core.errors import ConfigError
from tools.base import Tool, ToolContext, ToolSpec
from tools.registry import register_tool
from tools.toolbox import Toolbox

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

ARGUMENT_HELP = "The action's argument: the text that goes inside Name[...]."


def langchain_description(spec: ToolSpec) -> str:
    """A spec as one LangChain tool description: what it does, then how to call it."""
    return f"{spec.description} Usage: {spec.usage}"


def _structured_tool(name: str, description: str, call: Callable[[str], str]) -> "BaseTool":
    from langchain_core.tools import StructuredTool
    from pydantic import BaseModel, Field

    class ArgumentInput(BaseModel):
        argument: str = Field(description=ARGUMENT_HELP)

    return StructuredTool.from_function(func=call, name=name, description=description,
                                        args_schema=ArgumentInput)


def as_langchain_tool(tool: Tool, memory: dict[str, Any] | None = None,
                      row: Mapping[str, Any] | None = None) -> "BaseTool":
    """`tool` as a LangChain tool with a single string input `argument`.

    Calls share `memory` (updated in place after each successful call, so Lookup can walk
    forward) and see `row` as the task row. Errors come back as text, as in a Toolbox.
    """
    shared: dict[str, Any] = memory if memory is not None else {}
    task_row: Mapping[str, Any] = row if row is not None else {}
    name = tool.spec.name

    def call(argument: str) -> str:
        ctx = ToolContext(row=task_row, memory=copy.deepcopy(shared))
        try:
            observation = str(tool.run(argument, ctx))
        except Exception as err:  # same contract as Toolbox.run
            return f"Tool {name} failed: {type(err).__name__}: {err}"
        shared.clear()
        shared.update(ctx.memory)
        return observation

    return _structured_tool(name, langchain_description(tool.spec), call)


def langchain_tools(toolbox: Toolbox, memory: dict[str, Any] | None = None,
                    row: Mapping[str, Any] | None = None) -> list["BaseTool"]:
    """Every tool of `toolbox` as a LangChain tool, run through the toolbox (so observations
    are clipped the same way) and sharing one episode memory."""
    shared: dict[str, Any] = memory if memory is not None else {}
    task_row: Mapping[str, Any] = row if row is not None else {}

    def make(spec: ToolSpec) -> "BaseTool":
        def call(argument: str) -> str:
            observation, new_memory = toolbox.run(spec.name, argument, task_row, shared)
            shared.clear()
            shared.update(new_memory)
            return observation

        return _structured_tool(spec.name, langchain_description(spec), call)

    return [make(spec) for spec in toolbox.specs]


# --- user tools into the registry -------------------------------------------------------------

def _text(result: Any) -> str:
    if isinstance(result, str):
        return result
    content = getattr(result, "content", None)  # a ToolMessage or similar
    if isinstance(content, str):
        return content
    try:
        return json.dumps(result, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(result)


def _first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def _spec(name: str, description: str, usage: str, what: str) -> ToolSpec:
    if not description:
        raise ConfigError(f"{what} needs a description: give it a docstring or pass description=")
    return ToolSpec.from_json({"name": name, "description": description, "usage": usage},
                              where=what)


class FunctionTool:
    """A plain `fn(argument: str) -> str` as a Tool; exceptions become observations."""

    def __init__(self, fn: Callable[[str], Any], spec: ToolSpec) -> None:
        self.fn = fn
        self.spec = spec

    def run(self, argument: str, ctx: ToolContext) -> str:
        try:
            return _text(self.fn(argument))
        except Exception as err:
            return f"{self.spec.name} failed: {type(err).__name__}: {err}"


class LangChainTool:
    """A LangChain `BaseTool` as a Tool. A JSON-object argument is passed as the tool's
    arguments (for tools with several inputs); anything else as its single string input."""

    def __init__(self, lc_tool: "BaseTool", spec: ToolSpec) -> None:
        self.lc_tool = lc_tool
        self.spec = spec

    def run(self, argument: str, ctx: ToolContext) -> str:
        payload: Any = argument
        if argument.strip().startswith("{"):
            try:
                payload = json.loads(argument)
            except json.JSONDecodeError:
                payload = argument
        try:
            return _text(self.lc_tool.invoke(payload))
        except Exception as err:
            return f"{self.spec.name} failed: {type(err).__name__}: {err}"


def register_function(fn: Callable[[str], Any], name: str | None = None,
                      description: str | None = None, usage: str | None = None,
                      replace: bool = False) -> ToolSpec:
    """Register `fn(argument) -> str` as a tool; returns its spec.

    The name defaults to the function's name and the description to its docstring's first
    line; the usage defaults to `Name[input]`.
    """
    name = name or getattr(fn, "__name__", "")
    spec = _spec(name, description or _first_line(inspect.getdoc(fn)),
                 usage or f"{name}[input]", f"function {name or fn!r}")
    register_tool(spec.name, lambda s, r: FunctionTool(fn, s), spec, replace=replace)
    return spec


def register_langchain_tool(lc_tool: "BaseTool", name: str | None = None,
                            description: str | None = None, usage: str | None = None,
                            replace: bool = False) -> ToolSpec:
    """Register a LangChain tool (e.g. one made with `@tool`); returns its spec.

    Name and description default to the tool's own (first line); the usage shows its single
    input (`Name[text]`) or, for several inputs, a JSON object of them.
    """
    name = name or lc_tool.name
    inputs = list(getattr(lc_tool, "args", {}) or {})
    if not usage:
        usage = (f"{name}[{inputs[0] if inputs else 'input'}]" if len(inputs) <= 1 else
                 f"{name}[{{{', '.join(f'{json.dumps(k)}: ...' for k in inputs)}}}]")
    spec = _spec(name, description or _first_line(lc_tool.description), usage,
                 f"LangChain tool {name!r}")
    register_tool(spec.name, lambda s, r: LangChainTool(lc_tool, s), spec, replace=replace)
    return spec
