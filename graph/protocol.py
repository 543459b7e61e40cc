"""The one agent protocol: what evaluation, synthesis, `autoact run` and the pipeline ask of any design.

An `Agent` answers one question at a time. `run` plays an episode to its end and returns an
`Episode` (final state, steps, answer, halt, error); `stream` yields each node's update as it
finishes. `GraphAgent` implements both for a compiled LangGraph graph and its run context; the
final state is LangGraph's own (the last `values` chunk), never re-folded from updates.
"""

from __future__ import annotations

import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from core.errors import AutoactError
from graph.context import DesignContext
from graph.state import Step, initial_state
from tools.base import ToolSpec

Update = tuple[str, dict[str, Any]]  # (node, the state update it returned)


@dataclass(frozen=True)
class Episode:
    """The typed result of one episode."""

    state: Mapping[str, Any]  # the final state as the graph left it
    error: str | None = None  # why the episode stopped early (the state is what was reached)

    @property
    def steps(self) -> list[Step]:
        return list(self.state.get("steps") or [])

    @property
    def answer(self) -> str:
        """The final answer; an episode that halted keeps the answer it had proposed ("" if none)."""
        return self.state.get("answer") or self.state.get("proposed_answer") or ""

    @property
    def halted(self) -> bool:
        return bool(self.state.get("halted"))

    @property
    def halt_reason(self) -> str | None:
        return self.state.get("halt_reason")


class Agent(Protocol):
    """Any design: the AutoAct group, a baseline design, a reference answerer."""

    name: str

    @property
    def tools(self) -> Sequence[ToolSpec]:
        """The task tools the agent may call (Finish and Reflect are not tools)."""

    def run(self, question: str, inputs: Mapping[str, Any] | None = None,
            on_update: Callable[[str, dict[str, Any]], None] | None = None) -> Episode: ...

    def stream(self, question: str, inputs: Mapping[str, Any] | None = None) -> Iterator[Update]: ...


def describe_error(err: BaseException) -> str:
    """One line for errors of ours (they say what to do); otherwise type, message and the innermost frames."""
    if isinstance(err, AutoactError):
        return str(err)
    return f"{type(err).__name__}: {err}\n{''.join(traceback.format_exception(err, limit=-3))}"


@dataclass
class GraphAgent:
    """A design as a compiled graph plus its run context.

    `start_extra` adds the design's own fields to the initial state; with a checkpointer each
    episode is a thread (`thread_id`, fresh unless given).
    """

    name: str
    graph: CompiledStateGraph
    context: DesignContext
    recursion_limit: int = 25
    start_extra: dict[str, Any] = field(default_factory=dict)
    checkpointer: BaseCheckpointSaver | None = None

    @property
    def tools(self) -> Sequence[ToolSpec]:
        return self.context.toolbox.specs

    def start(self, question: str, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**initial_state(question, dict(inputs) if inputs else None), **self.start_extra}

    def config(self, thread_id: str | None = None) -> dict[str, Any]:
        cfg: dict[str, Any] = {"recursion_limit": self.recursion_limit}
        if self.checkpointer is not None:
            cfg["configurable"] = {"thread_id": thread_id or uuid.uuid4().hex}
        return cfg

    def _chunks(self, question: str, inputs: Mapping[str, Any] | None, thread_id: str | None,
                modes: list[str]) -> Iterator[Any]:
        return self.graph.stream(self.start(question, inputs), self.config(thread_id), context=self.context,
                                 stream_mode=modes)

    def run(self, question: str, inputs: Mapping[str, Any] | None = None,
            on_update: Callable[[str, dict[str, Any]], None] | None = None,
            thread_id: str | None = None) -> Episode:
        """Play one episode; never raises for a failing model or tool: the Episode carries the error."""
        state: Mapping[str, Any] = self.start(question, inputs)
        try:
            for mode, chunk in self._chunks(question, inputs, thread_id, ["updates", "values"]):
                if mode == "values":
                    state = chunk
                elif on_update is not None:
                    for node, update in chunk.items():
                        on_update(node, update or {})
        except Exception as err:  # a bug or an unexpected library error must not sink a batch
            return Episode(state, describe_error(err))
        return Episode(state)

    def stream(self, question: str, inputs: Mapping[str, Any] | None = None,
               thread_id: str | None = None) -> Iterator[Update]:
        """Yield `(node, update)` as each node finishes."""
        for chunk in self._chunks(question, inputs, thread_id, ["updates"]):
            for node, update in chunk[1].items():
                yield node, update or {}

    def invoke(self, question: str, inputs: Mapping[str, Any] | None = None,
               thread_id: str | None = None) -> dict[str, Any]:
        """Run one episode to the end and return its final state (errors raise)."""
        return self.graph.invoke(self.start(question, inputs), self.config(thread_id), context=self.context)
