"""Reference answerers that expose cheap wins, evaluated like a group (`autoact eval --baseline NAME`).

- `majority`: always the same answer. ScienceQA: the answer letter most frequent in a
  training file; HotpotQA: "yes" (the commonest HotpotQA answer).
- `direct`: the base model answers at once, without tools. ScienceQA: the option it
  scores likeliest after the question; HotpotQA: a short greedy answer.

A baseline episode is one `Finish` step, so results rows, summaries and diagnostics
have the same form as the group's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping, Sequence

from agents.base import FINISH, best
from agents.llm import CompletionModel, generate_line
from agents.parsing import clean_answer
from core.errors import ConfigError
from graph.state import GroupState, Step, initial_state
from tasks.base import Task

BASELINES = ("majority", "direct")
_DIRECT_INSTRUCTION = "Answer the question. Give only the answer, in as few words as possible."


@dataclass
class BaselineAgent:
    """Answers with `answer(question, inputs)` in one step; runs wherever an AgentGroup runs in evaluation."""

    name: str
    answer: Callable[[str, Mapping[str, Any]], str]
    context: Any = field(default_factory=lambda: SimpleNamespace(toolbox=SimpleNamespace(specs=[])))

    def start(self, question: str, inputs: Mapping[str, Any] | None = None) -> GroupState:
        return initial_state(question, dict(inputs) if inputs else None)

    def stream(self, question: str, inputs: Mapping[str, Any] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        answer = self.answer(question, inputs or {})
        step = Step(node="plan", thought=f"({self.name} baseline)", action=FINISH, argument=answer,
                    observation=f"Final answer: {answer}.")
        yield self.name, {"steps": [step], "proposed_answer": answer, "answer": answer, "phase": "done"}


def majority_answer(task: Task, train_rows: Sequence[Mapping[str, Any]] | None) -> str:
    """The constant answer of the majority baseline."""
    if task.name == "hotpotqa":
        return "yes"
    if not train_rows:
        raise ConfigError(f"the majority baseline for {task.name} needs a training file (--baseline-train FILE) "
                          "to count answer letters in")
    counts = Counter(str(r["answer"]).strip()[:1].upper() for r in train_rows if r.get("answer"))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def direct_answerer(task: Task, model: CompletionModel) -> Callable[[str, Mapping[str, Any]], str]:
    """The direct baseline: option scoring when the task has options, else a short greedy answer."""
    def answer(question: str, inputs: Mapping[str, Any]) -> str:
        prompt = f"{_DIRECT_INSTRUCTION}\n\nQuestion: {question}\nAnswer:"
        choices = task.answer_choices(inputs) if inputs.get("choices") else None
        if choices:
            return best(dict(zip(choices, model.score(prompt, [f" {c}" for c in choices]))))
        return clean_answer(generate_line(model, prompt, 16))
    return answer


def build_baseline(name: str, task: Task, model: CompletionModel | None = None,
                   train_rows: Sequence[Mapping[str, Any]] | None = None) -> BaselineAgent:
    if name == "majority":
        constant = majority_answer(task, train_rows)
        return BaselineAgent(name, lambda question, inputs: constant)
    if name == "direct":
        if model is None:
            raise ConfigError("the direct baseline needs a model")
        return BaselineAgent(name, direct_answerer(task, model))
    raise ConfigError(f"unknown baseline {name!r}: choose {', '.join(BASELINES)}")
