"""The reflect agent's scored verdict, raw and calibrated against a content-free answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from agents.base import FINISH, AgentSettings, EpisodeView
from tools.base import ToolSpec
from agents.reflect import CONTENT_FREE, ModelReflectAgent, content_free


@dataclass
class MarginModel:
    """Scores `right]` / `wrong]` with a margin that depends on the answer the prompt proposes."""

    margins: dict[str, float]  # proposed answer -> log p(right) - log p(wrong)
    prompts: list[str] = field(default_factory=list)
    name: str = "margins"

    def generate(self, prompt: str, *, stop: Sequence[str], max_tokens: int) -> str:
        return "Let me check the answer."

    def score(self, prompt: str, candidates: Sequence[str]) -> list[float]:
        self.prompts.append(prompt)
        (answer,) = [a for a in self.margins if f"Proposed answer: {a}." in prompt]
        return [self.margins[answer] - 3.0, -3.0]


def view(answer: str) -> EpisodeView:
    step = {"node": "plan", "thought": "I know it.", "action": FINISH, "argument": answer,
            "observation": f"Proposed answer: {answer}. Now reflect on whether it is right.", "status": "ok"}
    tools = (ToolSpec(FINISH, "give the answer", "Finish[answer]"),)
    return EpisodeView(question="What is the capital of France?", inputs={}, steps=[step], tools=tools,
                       actions=(FINISH,), proposed_answer=answer)


def test_content_free_replaces_the_proposed_answer_everywhere_it_is_shown():
    blank = content_free(view("Paris"))
    assert blank.proposed_answer == CONTENT_FREE and blank.steps[-1]["argument"] == CONTENT_FREE
    assert "Paris" not in blank.steps[-1]["observation"] and CONTENT_FREE in blank.steps[-1]["observation"]
    assert blank.question == "What is the capital of France?"
    short = content_free(view("a")).steps[-1]["observation"]  # an answer that is also a letter of the text
    assert short == f"Proposed answer: {CONTENT_FREE}. Now reflect on whether it is right."


def test_a_raw_verdict_says_right_whenever_right_is_likelier():
    model = MarginModel({"Paris": 2.0, "Lyon": 0.5, CONTENT_FREE: 1.0})
    agent = ModelReflectAgent(model, "reflect", AgentSettings())
    decisions = [agent(view("Paris")), agent(view("Lyon"))]
    assert [d.verdict for d in decisions] == ["right", "right"] and [d.margin for d in decisions] == [2.0, 0.5]
    assert len(model.prompts) == 2  # one scoring call per verdict


def test_a_calibrated_verdict_says_wrong_when_the_answer_moves_the_model_less_than_no_answer():
    model = MarginModel({"Paris": 2.0, "Lyon": 0.5, CONTENT_FREE: 1.0})
    agent = ModelReflectAgent(model, "reflect", AgentSettings(calibrated_reflect=True))
    paris, lyon = agent(view("Paris")), agent(view("Lyon"))
    assert (paris.verdict, paris.margin) == ("right", 1.0) and (lyon.verdict, lyon.margin) == ("wrong", -0.5)
    assert len(model.prompts) == 4 and f"Proposed answer: {CONTENT_FREE}." in model.prompts[1]
