"""`DesignAgent`: a compiled agent-design graph with its run context, used like an `AgentGroup`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from langgraph.graph.state import CompiledStateGraph

from graph.state import initial_state


@dataclass
class DesignAgent:
    """Answers with `invoke` or `stream` (`(node, update)` pairs), as the evaluation loop expects.

    `context` is the graph's run context (it must have a `toolbox`); `start_extra` adds the
    design's own fields to the initial state.
    """

    context: Any
    graph: CompiledStateGraph
    recursion_limit: int = 25
    start_extra: dict[str, Any] = field(default_factory=dict)

    def start(self, question: str, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**initial_state(question, dict(inputs) if inputs else None), **self.start_extra}

    def _config(self) -> dict[str, Any]:
        return {"recursion_limit": self.recursion_limit}

    def invoke(self, question: str, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.graph.invoke(self.start(question, inputs), self._config(), context=self.context)

    def stream(self, question: str, inputs: Mapping[str, Any] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        for chunk in self.graph.stream(self.start(question, inputs), self._config(), context=self.context,
                                       stream_mode="updates"):
            for node, update in chunk.items():
                yield node, update or {}


def final_answer(model: Any, task: Any, inputs: Mapping[str, Any], cue: str, thought: str,
                 bracketed: bool = True, max_tokens: int = 32) -> dict[str, Any]:
    """The state update of a design's closing answer: a Finish step, the answer, phase done.

    Multiple-choice tasks score their options after `cue`; others generate a short answer.
    `bracketed`: the cue ends inside `Finish[` (options scored as `option]`, generation stops
    at `]`); otherwise after `Answer:` (options scored as ` option`).
    """
    from agents.base import FINISH, best
    from agents.parsing import clean_argument
    from graph.state import Step

    choices = task.answer_choices(inputs) if inputs.get("choices") else None
    if choices:
        candidates = [f"{c}]" if bracketed else f" {c}" for c in choices]
        answer = best(dict(zip(choices, model.score(cue, candidates))))
    else:
        stop = ["]", "\n"] if bracketed else ["\n"]
        answer = clean_argument(model.generate(cue, stop=stop, max_tokens=max_tokens))
    step = Step(node="plan", thought=thought, action=FINISH, argument=answer, observation=f"Final answer: {answer}.")
    return {"steps": [step], "answer": answer, "proposed_answer": answer, "phase": "done"}
