"""Behaviour diagnostics (evaluation/diagnostics.py), each checked against hand-computed values."""

from __future__ import annotations

import json

from evaluation.diagnostics import (
    episode_diagnostics,
    evidence_recall,
    summarize_diagnostics,
)
from tasks import get_task

HOTPOT = get_task("hotpotqa")
TOOLS = ("Retrieve", "Lookup", "Search")
ROW = {
    "id": "r1", "question": "Which river flows through the capital of Freedonia?", "answer": "Fred",
    "supporting_facts": [["Freedonia", 1], ["Fredville", 0], ["Fredville", 1]],
    "context": [["Freedonia", ["Freedonia is a small country.", " Its capital is Fredville."]],
                ["Fredville", ["Fredville is a city on the river Fred.", " It has 10,000 people."]],
                ["Sylvania", ["Sylvania borders Freedonia."]]],
}


def step(action, argument, observation, node="plan", thought="t"):
    return {"node": node, "thought": thought, "action": action, "argument": argument, "observation": observation}


RETRIEVE_ONE = step("Retrieve", "freedonia (country)", "Freedonia is a small country. Its capital is Fredville.")
MISS = step("Retrieve", "Fredvile", "Could not find [Fredvile]. Similar: ['Fredville']")


def test_retrieving_one_of_two_gold_pages_recalls_half():
    assert evidence_recall(ROW, [RETRIEVE_ONE, MISS]) == (0.5, False)
    both = step("Retrieve", "Fredville", "Fredville is a city on the river Fred. It has 10,000 people.")
    assert evidence_recall(ROW, [RETRIEVE_ONE, both]) == (1.0, True)
    # a Lookup or Search that mentions a page is not a retrieval of it
    search = step("Search", "Fredville", "Fredville is a city on the river Fred.")
    assert evidence_recall(ROW, [search]) == (0.0, False)
    assert evidence_recall({"id": "x", "question": "q"}, [RETRIEVE_ONE]) is None


def test_valid_actions_finish_and_reflection_outcome():
    transcript = [
        RETRIEVE_ONE,                                                               # valid
        step("", "", "Invalid action: no action name in 'hmm'"),                     # invalid: did not parse
        step("Reflect", "", "Reflect can only follow a Finish; no answer has been proposed yet."),  # invalid
        step("Finish", "Fredville", "Proposed answer: Fredville. Now reflect on whether it is right."),
        step("Reflect", "wrong", "The answer may be wrong.", node="reflect"),        # right call: it is wrong
        step("Finish", "Fred", "Proposed answer: Fred. Now reflect on whether it is right."),
        step("Reflect", "wrong", "The answer may be wrong.", node="reflect"),        # wrong call: it is right
    ]
    d = episode_diagnostics(HOTPOT, ROW, transcript, TOOLS)
    assert (d["actions"], d["valid_actions"]) == (7, 5)
    assert d["finished"] is True
    assert d["reflections"] == [{"verdict": "wrong", "correct": True}, {"verdict": "wrong", "correct": False}]
    assert (d["evidence_recall"], d["evidence_all"]) == (0.5, False)


def test_an_episode_that_never_finishes():
    d = episode_diagnostics(HOTPOT, ROW, [MISS, MISS], TOOLS)
    assert d == {"actions": 2, "valid_actions": 2, "finished": False, "reflections": [],
                 "evidence_recall": 0.0, "evidence_all": False}
    unknown_tool = step("Calculator", "1+1", "2")
    assert episode_diagnostics(HOTPOT, ROW, [unknown_tool], TOOLS)["valid_actions"] == 0


def test_summary_rates_over_episodes():
    rows = [
        {"steps": 4, "diagnostics": {"actions": 4, "valid_actions": 3, "finished": True,
                                     "reflections": [{"verdict": "right", "correct": True}],
                                     "evidence_recall": 0.5, "evidence_all": False}},
        {"steps": 2, "diagnostics": {"actions": 2, "valid_actions": 2, "finished": False, "reflections": [],
                                     "evidence_recall": 1.0, "evidence_all": True}},
        {"steps": 6, "diagnostics": {"actions": 6, "valid_actions": 6, "finished": True,
                                     "reflections": [{"verdict": "wrong", "correct": False},
                                                     {"verdict": "right", "correct": True}],
                                     "evidence_recall": 0.0, "evidence_all": False}},
    ]
    s = summarize_diagnostics(rows)
    assert s["episodes"] == 3 and s["valid_action_rate"] == round(100 * 11 / 12, 2)
    assert s["finish_rate"] == round(100 * 2 / 3, 2) and s["reflections"] == 3
    assert s["reflect_right_rate"] == round(100 * 2 / 3, 2) and s["reflect_wrong_rate"] == round(100 / 3, 2)
    assert s["reflection_accuracy"] == round(100 * 2 / 3, 2) and s["steps_per_episode"] == 4.0
    assert s["evidence_recall"] == 50.0 and s["evidence_all_rate"] == round(100 / 3, 2)
    assert summarize_diagnostics([])["valid_action_rate"] is None
    # verdicts: right on a right answer (twice), wrong on a wrong one (correct: False means the answer was right)
    assert s["reflect_table"] == {"right answers": {"said right": 2, "said wrong": 1},
                                  "wrong answers": {"said right": 0, "said wrong": 0}}
    assert s["right_kept_rate"] == round(100 * 2 / 3, 2) and s["wrong_caught_rate"] is None


def test_reflect_discrimination_counts_verdicts_against_the_answers_truth():
    from evaluation.diagnostics import reflect_discrimination
    # an agent that always says right: 3 right answers kept, 2 wrong ones let through
    always = [{"verdict": "right", "correct": c} for c in (True, True, True, False, False)]
    d = reflect_discrimination(always)
    assert d["reflect_table"] == {"right answers": {"said right": 3, "said wrong": 0},
                                  "wrong answers": {"said right": 2, "said wrong": 0}}
    assert d["right_kept_rate"] == 100.0 and d["wrong_caught_rate"] == 0.0
    mixed = [{"verdict": "wrong", "correct": True}, {"verdict": "wrong", "correct": False},
             {"verdict": "right", "correct": False}, {"verdict": "right", "correct": True}]
    d = reflect_discrimination(mixed)  # wrong answers: caught once, passed once; right: kept once, rejected once
    assert d["wrong_caught_rate"] == 50.0 and d["right_kept_rate"] == 50.0
    assert reflect_discrimination([])["wrong_caught_rate"] is None


def test_eval_writes_diagnostics_per_row_and_in_the_summary(tmp_path):
    from evaluation.runner import EvalOptions, evaluate
    from graph import AgentGroup, GroupContext
    from tests.support.builders import hotpot_toolbox
    from tests.support.fakes import ScriptedPlan, scripted_reflect, scripted_tool

    plan = ScriptedPlan([("Look up the country.", "Retrieve"), ("It says Fredville.", "Finish")])
    ctx = GroupContext(plan=plan, tool=scripted_tool(["Freedonia", "Fredville"]), reflect=scripted_reflect(["right"]),
                       toolbox=hotpot_toolbox([ROW]), task=HOTPOT)
    row = {**ROW, "level": "easy", "type": "bridge"}
    summary = evaluate(AgentGroup(ctx), HOTPOT, [row], EvalOptions(tmp_path, progress=False))
    result = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])
    assert result["diagnostics"]["evidence_recall"] == 0.5 and result["diagnostics"]["finished"] is True
    assert result["diagnostics"]["reflections"] == [{"verdict": "right", "correct": False}]  # Fredville ≠ Fred
    diag = summary["diagnostics"]
    assert diag["valid_action_rate"] == 100.0 and diag["reflection_accuracy"] == 0.0
    assert diag["wrong_caught_rate"] == 0.0 and diag["right_kept_rate"] is None  # a wrong answer let through
    assert diag["groups"]["easy"]["evidence_recall"] == 50.0
    assert json.loads((tmp_path / "summary.json").read_text())["diagnostics"] == diag


def test_the_margin_auc_ranks_right_answers_above_wrong_ones_whatever_the_threshold():
    from evaluation.diagnostics import margin_auc, reflect_discrimination
    # right answers (answer_right: said right and correct, or said wrong and not correct) with margins 2.0, 0.5;
    # wrong answers with margins 1.0, 0.5 and -1.0 (the last one said wrong)
    judged = [{"verdict": "right", "correct": True, "margin": 2.0}, {"verdict": "right", "correct": True, "margin": 0.5},
              {"verdict": "right", "correct": False, "margin": 1.0}, {"verdict": "right", "correct": False, "margin": 0.5},
              {"verdict": "wrong", "correct": True, "margin": -1.0}]
    # pairs (right, wrong): 2.0 beats 1.0, 0.5, -1.0 (3); 0.5 loses to 1.0, ties 0.5 (0.5), beats -1.0 (1): 4.5 of 6
    assert margin_auc(judged) == 0.75
    assert reflect_discrimination(judged)["verdict_auc"] == 0.75
    assert margin_auc(judged[:2]) is None  # no wrong answer to compare with
    assert "verdict_auc" not in reflect_discrimination([{"verdict": "right", "correct": True}])
