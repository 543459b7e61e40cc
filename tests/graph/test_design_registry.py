"""The design registry (graph/designs/__init__.py): entries, lookup, CLI choices, and one run per design."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from langgraph.graph.state import CompiledStateGraph

from core.errors import ConfigError
from graph.designs import DESIGNS, design
from graph.protocol import GraphAgent
from tasks import get_task
from tests.support.builders import build_on_model, hotpot_toolbox
from tests.support.fakes import ScriptedModel

SQA = get_task("scienceqa")
ROW = {"id": "s1", "question": "Which is a mammal?\nOptions: (A) shark (B) dolphin",
       "choices": ["shark", "dolphin"], "answer": "B", "metadata": {"grade": 2}}


@dataclass
class Decisive(ScriptedModel):
    """A ScriptedModel whose scores pick Finish, then a right verdict, then the dolphin option, whichever is offered."""

    def score(self, prompt, candidates):
        self._tick(prompt)
        for want in ("Finish", "right", "dolphin"):
            if any(want in c for c in candidates):
                return [0.0 if want in c else -5.0 for c in candidates]
        return [-5.0] * len(candidates)


def eval_choices(dest: str) -> list[str]:
    from autoact.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return list(next(a for a in sub.choices["eval"]._actions if a.dest == dest).choices)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_every_entry_describes_itself_and_draws(name):
    entry = DESIGNS[name]
    assert entry.name == name and entry.description.strip()
    assert entry.models in ("roles", "one", "none")
    graph = entry.graph()
    assert isinstance(graph, CompiledStateGraph)
    mermaid = graph.get_graph().draw_mermaid()
    assert "graph TD;" in mermaid and "__start__" in mermaid and "__end__" in mermaid


def test_design_looks_up_by_name():
    assert design("react") is DESIGNS["react"]


def test_unknown_design_names_the_registered_ones():
    with pytest.raises(ConfigError) as info:
        design("nope")
    assert "'nope'" in str(info.value)
    assert str(info.value).endswith("choose " + ", ".join(DESIGNS))


def test_eval_agent_choices_are_the_non_reference_designs():
    assert eval_choices("agent") == [n for n, d in DESIGNS.items() if not d.reference]


def test_eval_baseline_choices_are_the_reference_designs():
    references = [n for n, d in DESIGNS.items() if d.reference]
    assert eval_choices("baseline") == references and set(references) == {"chance", "direct", "majority"}


@pytest.mark.parametrize("name", list(DESIGNS))
def test_every_design_answers_a_scienceqa_row(name):
    extra = {"train_rows": [ROW]} if name == "majority" else {}
    agent = build_on_model(name, SQA, hotpot_toolbox(), Decisive(), **extra)
    assert isinstance(agent, GraphAgent)
    episode = agent.run(SQA.question_text(ROW), SQA.inputs(ROW))
    assert episode.error is None and not episode.halted
    assert episode.answer.strip() and episode.steps[-1]["action"] in ("Finish", "Reflect")
    assert SQA.score(episode.answer, ROW)["correct"] == 1.0
