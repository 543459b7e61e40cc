"""The closing answer of a single-model design: options scored for multiple-choice tasks, else generated."""

from __future__ import annotations

from typing import Any, Mapping

from agents.base import FINISH, best
from agents.llm import CompletionModel
from agents.parsing import clean_argument
from graph.state import Step
from tasks.base import Task


def final_answer(model: CompletionModel, task: Task, inputs: Mapping[str, Any], cue: str, thought: str,
                 bracketed: bool = True, max_tokens: int = 32) -> dict[str, Any]:
    """The state update of a design's closing answer: a Finish step, the answer, phase done.

    Multiple-choice tasks score their options after `cue`; others generate a short answer.
    `bracketed`: the cue ends inside `Finish[` (options scored as `option]`, generation stops
    at `]`); otherwise after `Answer:` (options scored as ` option`).
    """
    choices = task.answer_choices(inputs) if inputs.get("choices") else None
    if choices:
        candidates = [f"{c}]" if bracketed else f" {c}" for c in choices]
        answer = best(dict(zip(choices, model.score(cue, candidates))))
    else:
        stop = ["]", "\n"] if bracketed else ["\n"]
        answer = clean_argument(model.generate(cue, stop=stop, max_tokens=max_tokens))
    step = Step(node="plan", thought=thought, action=FINISH, argument=answer, observation=f"Final answer: {answer}.",
                status="ok")
    return {"steps": [step], "answer": answer, "proposed_answer": answer, "phase": "done"}
