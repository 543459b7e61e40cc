"""Single-model designs of the registry (graph.designs): cot, react, reflexion, rewoo, bolaa, chameleon."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from graph.context import Limits
from tasks import get_task
from tests.support.builders import ROWS, build_on_model, hotpot_toolbox
from tests.support.fakes import ScriptedModel

HOTPOT = get_task("hotpotqa")
SQA = get_task("scienceqa")


def test_react_acts_with_worked_examples_and_no_reflection():
    model = ScriptedModel(generations=["Find the country.", "Freedonia", "It says Fredville.", "Fredville"],
                          prefer=["Retrieve", "Finish"])
    group = build_on_model("react", HOTPOT, hotpot_toolbox(), model, Limits(max_steps=5))
    state = group.invoke(ROWS[0]["question"])
    assert [s["action"] for s in state["steps"]] == ["Retrieve", "Finish"]
    assert state["answer"] == "Fredville" and state["steps"][-1]["observation"] == "Final answer: Fredville."
    first = model.prompts[0]
    assert "Action 1: Retrieve[Carmen]" in first  # the worked example
    assert "(1) Retrieve:" in first and "Reflect:" not in first  # the task's tools, without Reflect
    assert first.endswith(f"Question: {ROWS[0]['question']}\nThought 1:")
    assert "reflect" not in group.graph.get_graph().nodes


def test_cot_reasons_once_then_answers_without_tools():
    model = ScriptedModel(generations=["Fredville is the capital named on its page.", "Fredville"])
    group = build_on_model("cot", HOTPOT, hotpot_toolbox(), model, Limits(max_steps=10))
    state = group.invoke(ROWS[0]["question"])
    assert [s["action"] for s in state["steps"]] == ["Finish"] and state["answer"] == "Fredville"
    assert len(model.prompts) == 2  # one thought, one argument: a single action (Finish) needs no choice
    assert "Finish[Paris]" in model.prompts[0] and "Retrieve" not in model.prompts[0]
    assert group.context.limits.max_steps == 1 and group.context.toolbox.names == []


def test_cot_on_scienceqa_scores_the_options():
    row = {"id": "s1", "question": "Which is a mammal?\nOptions: (A) shark (B) dolphin",
           "choices": ["shark", "dolphin"], "answer": "B", "metadata": {"grade": 2}}
    model = ScriptedModel(generations=["Dolphins breathe air and feed milk."], prefer=["dolphin"])
    group = build_on_model("cot", SQA, hotpot_toolbox(), model)
    state = group.invoke(SQA.question_text(row), SQA.inputs(row))
    assert state["answer"] == "B. dolphin" and SQA.score(state["answer"], row)["correct"] == 1.0


def test_unknown_designs_are_refused_naming_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown design 'tot': choose autoact, cot, react"):
        build_on_model("tot", HOTPOT, hotpot_toolbox(), ScriptedModel())


def test_graph_command_draws_react_without_reflect(capsys):
    from autoact.cli import main
    assert main(["graph", "--agent", "react"]) == 0
    out = capsys.readouterr().out
    assert "execute -.-> plan;" in out and "reflect" not in out


def test_reflexion_keeps_a_lesson_between_trials_and_never_sees_the_gold():
    model = ScriptedModel(
        generations=["Look it up.", "Sylvania", "It borders.", "Sylvania",  # trial 1: Retrieve, Finish[Sylvania]
                     "Check which page names the capital first.",             # the lesson
                     "The capital is Fredville.", "Fredville"],               # trial 2: Finish[Fredville]
        prefer=["Retrieve", "Finish", " wrong", "Finish", " right"])
    agent = build_on_model("reflexion", HOTPOT, hotpot_toolbox(), model, Limits(max_steps=4), max_trials=3)
    state = agent.invoke(ROWS[0]["question"], {"question": ROWS[0]["question"]})
    assert state["answer"] == "Fredville" and state["trial"] == 2 and state["lessons"] == [
        "Check which page names the capital first."]
    assert [s["action"] for s in state["steps"]] == ["Retrieve", "Finish", "Reflect", "Finish", "Reflect"]
    assert [s["argument"] for s in state["steps"] if s["action"] == "Reflect"] == ["wrong", "right"]
    trial_two = [p for p in model.prompts if p.endswith("Thought 1:")][-1]
    assert "Lessons from earlier attempts" in trial_two and "Check which page names the capital first." in trial_two
    assert not any("Fredville" in p.split("Proposed answer:")[0] for p in model.prompts if "right or" in p)


def test_reflexion_stops_after_max_trials():
    model = ScriptedModel(generations=["a", "x", "lesson one", "b", "y"],
                          prefer=["Finish", " wrong", "Finish", " wrong"])
    agent = build_on_model("reflexion", HOTPOT, hotpot_toolbox(), model, Limits(max_steps=2), max_trials=2)
    state = agent.invoke("Q?")
    assert state["trial"] == 2 and state["answer"] == "y"  # the last trial's answer stands


def test_reflexion_runs_through_the_evaluation_loop(tmp_path):
    import json

    from evaluation.runner import EvalOptions, evaluate
    model = ScriptedModel(generations=["t", "Fredville"], prefer=["Finish", " right"])
    agent = build_on_model("reflexion", HOTPOT, hotpot_toolbox(), model)
    row = {**ROWS[0]}
    summary = evaluate(agent, HOTPOT, [row], EvalOptions(tmp_path, progress=False))
    result = json.loads((tmp_path / "results.jsonl").read_text())
    assert summary["em"] == 100.0 and result["diagnostics"]["reflections"] == [{"verdict": "right", "correct": True}]


def test_graph_command_draws_reflexion(capsys):
    from autoact.cli import main
    assert main(["graph", "--agent", "reflexion"]) == 0
    out = capsys.readouterr().out
    for edge in ("__start__ --> trial;", "trial --> judge;", "judge -.-> lesson;", "lesson --> trial;"):
        assert edge in out


def test_rewoo_plans_first_then_substitutes_evidence_variables():
    from graph.designs.rewoo import parse_plan, substitute
    plan = parse_plan("Plan: Find the country. #E1 = Retrieve[Freedonia]\nnoise\n"
                      "Plan: Read its capital. #E2 = Lookup[#E1 capital]\n#E3 = Finish[#E2", 6)
    assert [(c["variable"], c["action"], c["argument"]) for c in plan] == [
        ("#E1", "Retrieve", "Freedonia"), ("#E2", "Lookup", "#E1 capital"), ("#E3", "Finish", "#E2")]
    assert plan[0]["line"] == "Find the country."
    assert substitute("#E1 and #E3", {"#E1": "A long   page text"}, limit=6) == "A long and #E3"

    model = ScriptedModel(generations=[" Find the country. #E1 = Retrieve[Freedonia]\n"
                                       "Plan: Find the capital in it. #E2 = Retrieve[#E2 and Fredville]",
                                       " Fredville"])
    agent = build_on_model("rewoo", HOTPOT, hotpot_toolbox(), model)
    state = agent.invoke(ROWS[0]["question"])
    assert [s["action"] for s in state["steps"]] == ["Retrieve", "Retrieve", "Finish"]
    assert state["steps"][1]["argument"] == "#E2 and Fredville"  # no evidence #E2 yet: left as written
    assert state["answer"] == "Fredville" and len(model.prompts) == 2  # one plan, one answer: no call per step
    assert "#E1 = Retrieve[Carmen]" in model.prompts[0]
    assert "#E1 = Retrieve[Freedonia]: Freedonia is a small country." in model.prompts[1]


def test_rewoo_worker_fills_earlier_evidence_into_later_calls():
    model = ScriptedModel(generations=[" #E1 = Retrieve[Fredville]\nPlan: #E2 = Search[#E1]", " Fred"])
    agent = build_on_model("rewoo", HOTPOT, hotpot_toolbox(), model)
    state = agent.invoke("Which river?")
    first_sentence = state["steps"][0]["observation"]
    assert first_sentence.startswith("Fredville is a city") and state["steps"][1]["argument"] == first_sentence[:200]


def test_bolaa_routes_each_step_to_a_labor_agent_with_only_its_tools():
    from tools import ToolResources, build_toolbox, builtin_spec
    from tools.docstore import Docstore
    store = Docstore.from_rows(ROWS)
    toolbox = build_toolbox([builtin_spec("Retrieve"), builtin_spec("Lookup"), builtin_spec("Calculator")],
                            ToolResources(pages=store, searcher=store))
    model = ScriptedModel(generations=["Read the country page.", "Freedonia", "Add them.", "2+2", "Fredville"],
                          prefer=[" search", "Retrieve", " math", " Finish"])
    agent = build_on_model("bolaa", HOTPOT, toolbox, model, Limits(max_steps=5))
    assert agent.context.labor == {"search": ("Retrieve", "Lookup"), "math": ("Calculator",)}
    state = agent.invoke(ROWS[0]["question"])
    assert [s["action"] for s in state["steps"]] == ["Retrieve", "Calculator", "Finish"]
    assert state["steps"][0]["thought"].startswith("(search agent)") and state["steps"][1]["observation"] == "4"
    assert state["answer"] == "Fredville"
    search_prompt = next(p for p in model.prompts if "You are the search agent" in p)
    assert "Retrieve:" in search_prompt and "Calculator" not in search_prompt.split("Question:")[0]
    math_prompt = next(p for p in model.prompts if "You are the math agent" in p)
    assert "Retrieve" not in math_prompt.split("Question:")[0]


def test_bolaa_halts_at_the_step_limit():
    model = ScriptedModel(prefer=[" search", "Retrieve", " search", "Retrieve"])
    agent = build_on_model("bolaa", HOTPOT, hotpot_toolbox(), model, Limits(max_steps=2))
    state = agent.invoke("Q?")
    assert state["halted"] and len(state["steps"]) == 2 and state["answer"] == ""


def test_chameleon_composes_a_program_then_runs_it_in_order():
    from graph.designs.chameleon import parse_program
    modules = ["Retrieve", "Lookup", "Search"]
    assert parse_program(" Retrieve, lookup, Calculator, Finish, Search", modules, 5) == ["Retrieve", "Lookup"]
    assert parse_program("1. Retrieve[Freedonia] then Search -> Finish", modules, 5) == ["Retrieve", "Search"]
    assert parse_program("Retrieve, Retrieve, Retrieve", modules, 2) == ["Retrieve", "Retrieve"]

    model = ScriptedModel(generations=[" Retrieve, Lookup, Finish", "Freedonia", "capital", "Fredville"])
    agent = build_on_model("chameleon", HOTPOT, hotpot_toolbox(), model)
    state = agent.invoke(ROWS[0]["question"])
    assert state["program"] == ["Retrieve", "Lookup"]
    assert [s["action"] for s in state["steps"]] == ["Retrieve", "Lookup", "Finish"]
    assert "capital is Fredville" in state["steps"][1]["observation"] and state["answer"] == "Fredville"
    assert "Program: Retrieve, Retrieve, Lookup, Finish" in model.prompts[0]
    assert "Observation 1: Freedonia is a small country." in model.prompts[2]  # the earlier module's output


def test_every_design_can_be_drawn(capsys):
    from autoact.cli import main
    from graph.designs import DESIGNS
    for name in DESIGNS:
        assert main(["graph", "--agent", name]) == 0
        assert "__start__" in capsys.readouterr().out
