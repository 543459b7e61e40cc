"""Model-backed agents over a scripted model: scored choices, free generation, answer options."""

import math

import pytest

from agents.base import AgentSettings
from agents.llm import EndpointConfig, EndpointModel, candidate_logprob
from agents.plan import ModelPlanAgent
from agents.reflect import ModelReflectAgent
from agents.tool import ModelToolAgent
from core.errors import EndpointError
from graph import AgentGroup, GroupContext
from tasks import get_task
from tests.support.builders import ROWS, hotpot_toolbox
from tests.support.fakes import ScriptedModel
from tools import ToolResources, build_toolbox, default_tool_specs

FREE = AgentSettings(scored=False)


def hotpot_group(model, settings=AgentSettings(), role="meta"):
    ctx = GroupContext(plan=ModelPlanAgent(model, role, settings), tool=ModelToolAgent(model, role, settings),
                       reflect=ModelReflectAgent(model, role, settings), toolbox=hotpot_toolbox(),
                       task=get_task("hotpotqa"))
    return AgentGroup(ctx)


def test_scored_episode_chooses_names_and_completes_arguments():
    model = ScriptedModel(
        generations=["I should look up Freedonia.", "Freedonia]", "The capital is Fredville.", "Fredville",
                     "The page says so."],
        prefer=["Retrieve", "Finish", "right"])
    state = hotpot_group(model).invoke(ROWS[0]["question"])
    assert [(s["action"], s["argument"]) for s in state["steps"]] == [
        ("Retrieve", "Freedonia"), ("Finish", "Fredville"), ("Reflect", "right")]
    assert state["answer"] == "Fredville"
    assert state["steps"][-1]["margin"] == 5.0  # the scored verdict's log p(right) - log p(wrong) is kept
    assert "margin" not in state["steps"][0]
    # the tool agent's prompt ends right after the chosen name and its bracket
    assert model.prompts[2].endswith("Action 1: Retrieve[")
    # the reflect verdict is scored after "Reflect["
    assert model.prompts[-1].rstrip().endswith("Reflect[")
    # the prompt lists the task tools, Finish and Reflect
    assert "(1) Retrieve: Returns" in model.prompts[0] and "(5) Reflect:" in model.prompts[0]


def test_free_generation_parses_leniently_and_reports_garbage():
    model = ScriptedModel(generations=[
        "hmm", "no idea what to do",            # step 1: unreadable action
        "look", "retrieve[Freedonia]", "Freedonia",  # step 2: lower-case action, tool writes the argument
        "done", "Finish", "Fredville]",            # step 3: bare name
        "ok", "Reflect[right]"])
    state = hotpot_group(model, FREE).invoke(ROWS[0]["question"])
    steps = state["steps"]
    assert steps[0]["observation"].startswith("Invalid action: could not read an action")
    assert (steps[1]["action"], steps[1]["argument"]) == ("Retrieve", "Freedonia")
    assert state["answer"] == "Fredville" and steps[-1]["argument"] == "right"


def test_free_reflection_with_bad_verdict_continues_planning():
    model = ScriptedModel(generations=["t", "Finish", "x", "t", "Reflect[maybe]", "t", "Finish", "y"])
    state = hotpot_group(model, FREE).invoke(ROWS[0]["question"])
    assert "Invalid reflection" in state["steps"][1]["observation"]
    assert state["answer"] == "y"


def test_finish_on_multiple_choice_scores_the_options():
    task = get_task("scienceqa")
    row = {"id": "1", "question": "What is the capital of Delaware?\nOptions: (A) Harrisburg (B) Dover",
           "choices": ["Harrisburg", "Dover"], "answer": "B", "caption": "a map", "ocr": "[]"}
    toolbox = build_toolbox(default_tool_specs("scienceqa"), ToolResources())
    model = ScriptedModel(generations=["look at the image", "image]", "it is Dover", "fine"],
                          prefer=["Image2Text", "Finish", "B. Dover", "right"])
    ctx = GroupContext(plan=ModelPlanAgent(model, "meta"), tool=ModelToolAgent(model, "meta"),
                       reflect=ModelReflectAgent(model, "meta"), toolbox=toolbox, task=task)
    state = AgentGroup(ctx).invoke(task.question_text(row), task.inputs(row))
    assert "Caption: a map" in state["steps"][0]["observation"]
    assert state["answer"] == "B. Dover" and task.score(state["answer"], row)["correct"] == 1.0


def test_role_prompts_differ_from_meta():
    plan = ModelPlanAgent(ScriptedModel(generations=["t"], prefer=["Finish"]), "plan")
    meta = ModelPlanAgent(ScriptedModel(generations=["t"], prefer=["Finish"]), "meta")
    view = hotpot_group(ScriptedModel()).context.view({"question": "q", "steps": []})
    plan(view), meta(view)
    assert plan.model.prompts[0] != meta.model.prompts[0] and "planner" in plan.model.prompts[0]


def test_candidate_logprob_walks_back_from_the_last_prompt_token():
    logprobs = {"tokens": ["Action", ":", " Retrieve", "\n"], "token_logprobs": [None, -0.5, -1.25, -3.0]}
    assert candidate_logprob(logprobs, " Retrieve", prompt_tokens=3) == -1.25
    assert candidate_logprob(logprobs, ": Retrieve", prompt_tokens=3) == -1.75
    assert candidate_logprob(logprobs, ": Retrieve", prompt_tokens=3, norm="mean") == pytest.approx(-0.875)
    assert candidate_logprob({"tokens": ["x"], "token_logprobs": [None]}, "x", prompt_tokens=1) == -math.inf
    with pytest.raises(EndpointError, match="no logprobs"):
        candidate_logprob(None, "x", 1)


def test_unreachable_endpoint_fails_after_bounded_retries_naming_url_and_model():
    model = EndpointModel(EndpointConfig(base_url="http://127.0.0.1:9/v1", model="nobody", retries=2,
                                         backoff=0.01, timeout=2))
    with pytest.raises(EndpointError) as err:
        model.generate("hi", stop=[], max_tokens=2)
    assert "http://127.0.0.1:9/v1" in str(err.value) and "'nobody'" in str(err.value)
    assert "after 3 attempts" in str(err.value) and model.calls == 3


def test_generate_line_skips_leading_blank_lines_and_gives_up_after_two():
    from agents.llm import generate_line

    model = ScriptedModel(generations=["", " I need the capital of France."])
    assert generate_line(model, "Thought 1:", 32) == " I need the capital of France."
    assert model.prompts == ["Thought 1:", "Thought 1:\n"]  # the blank line became part of the prompt
    model = ScriptedModel(generations=["", "  ", "", "never asked"])
    assert generate_line(model, "Q:", 8) == ""
    assert model.prompts == ["Q:", "Q:\n", "Q:\n  \n"] and model.generations == ["never asked"]


def test_a_thought_after_a_blank_line_enters_the_transcript():
    from agents.base import EpisodeView
    from agents.thought import think

    tools = tuple(default_tool_specs("hotpotqa"))
    view = EpisodeView(question="Where is the Eiffel Tower?", inputs={}, steps=[], tools=tools,
                       actions=tuple(t.name for t in tools))
    step = think(ScriptedModel(generations=["", " Look up the tower."]), "plan", view, AgentSettings())
    assert step.text == "Look up the tower." and step.cue.endswith("Thought 1: Look up the tower.\nAction 1:")


@pytest.mark.parametrize("text,expected", [
    ("The answer is: 1952", "1952"), ('The answer is "Welsh".', "Welsh"), ("Answer: Boston College.", "Boston College"),
    ("So the final answer is Paris", "Paris"), ("  Badr  Hari ", "Badr Hari"), ("Answering machines", "Answering machines"),
])
def test_clean_answer_drops_lead_ins_quotes_and_the_final_stop(text, expected):
    from agents.parsing import clean_answer

    assert clean_answer(text) == expected


def _hotpot_view(question, steps):
    from agents.base import EpisodeView

    tools = tuple(default_tool_specs("hotpotqa"))
    return EpisodeView(question=question, inputs={}, steps=steps, tools=tools,
                       actions=tuple(t.name for t in tools if t.name != "Reflect"))


def test_scored_argument_candidates_come_from_the_question_and_observations():
    from dataclasses import replace

    from agents.argument_choices import argument_candidates

    steps = [{"node": "plan", "action": "Retrieve", "argument": "Joe Heck",
              "observation": "Could not find [Joe Heck]. Similar: ['Joseph Heck', 'Heck (film)']"},
             {"node": "plan", "action": "Retrieve", "argument": "Catherine Cortez Masto",
              "observation": "Catherine Cortez Masto (born March 29, 1964) served as Attorney General of Nevada."},
             {"node": "plan", "action": "Finish", "argument": "Reno", "observation": "Proposed answer: Reno."},
             {"node": "reflect", "action": "Reflect", "argument": "wrong", "observation": "Keep investigating."}]
    view = _hotpot_view('Joe Heck ran against Democrat Catherine Cortez Masto, Attorney General of "Silver State"?',
                        steps)
    entities = argument_candidates(view, "Retrieve")
    # quoted text first, then the question's names; arguments already retrieved are never offered again
    assert entities[0] == "Silver State" and "Joe Heck" not in entities
    assert "Democrat Catherine Cortez Masto" in entities and "Catherine Cortez Masto" not in entities
    assert {"Joseph Heck", "Heck (film)", "Nevada"} <= set(entities)  # suggested titles and names seen
    answers = argument_candidates(view, "Finish")
    assert answers[:2] == ["Attorney General of Nevada", "Nevada"]  # the newest observation comes first
    assert {"March 29, 1964", "1964"} <= set(answers)
    assert "Reno" not in answers  # the reflect agent rejected it
    assert "Catherine Cortez Masto" not in answers  # named by the question: rarely its answer
    possessive = argument_candidates(replace(view, question="Who was Catherine Cortez Masto's rival?"), "Finish")
    assert "Catherine Cortez Masto" not in possessive and "Nevada" in possessive
    assert "yes" not in answers  # not a yes/no question
    choice = argument_candidates(replace(view, question="Was Joe Heck or Catherine Cortez Masto born first?"),
                                 "Finish")
    assert choice == ["Joe Heck", "Catherine Cortez Masto", "yes", "no"]  # alternatives offered, and yes/no
    assert argument_candidates(replace(view, question="Are Reno and Nevada both in the West?"), "Finish") == [
        "yes", "no"]
    assert argument_candidates(view, "Lookup") is None  # a keyword stays free text
    assert argument_candidates(_hotpot_view("what?", []), "Retrieve") is None  # nothing to choose: generate


def test_tool_agent_scores_candidate_arguments_only_when_asked():
    view = _hotpot_view("Who directed Beowulf?", [
        {"node": "plan", "action": "Retrieve", "argument": "Beowulf",
         "observation": "Beowulf is a 2007 film directed by Robert Zemeckis and written by Roger Avary."}])
    settings = AgentSettings(scored_arguments=True)
    model = ScriptedModel(prefer=["Robert Zemeckis"])
    assert ModelToolAgent(model, "meta", settings)(view, "", "Finish") == "Robert Zemeckis"
    assert model.prompts[0].endswith("Finish[")  # candidates are scored after the open bracket
    model = ScriptedModel(generations=["born in]"])
    assert ModelToolAgent(model, "meta", settings)(view, "", "Lookup") == "born in"  # free text stays free
    model = ScriptedModel(generations=["1"])
    assert ModelToolAgent(model, "meta")(view, "", "Finish") == "1"  # off by default: generated


def test_scored_arguments_prefer_the_likelier_name_per_character():
    from agents.tool import ModelToolAgent as Tool

    class Lengthy(ScriptedModel):
        def score(self, prompt, candidates):  # -1 per character: equal per-character likelihood...
            return [-1.0 * len(c) - (5.0 if c.startswith("Roger") else 0.0) for c in candidates]

    view = _hotpot_view("Who directed Beowulf?", [
        {"node": "plan", "action": "Retrieve", "argument": "Beowulf",
         "observation": "Robert Zemeckis directed it with Roger Avary and Ann."}])
    # ...so the long name is not beaten by a short one for its length alone
    assert Tool(Lengthy(), "meta", AgentSettings(scored_arguments=True))(view, "", "Finish") == "Robert Zemeckis"


def test_every_scored_choice_keeps_its_candidates_ranked_on_the_step():
    model = ScriptedModel(
        generations=["I should look up Freedonia.", "Freedonia]", "The capital is Fredville.", "Fredville",
                     "The page says so."],
        prefer=["Retrieve", "Finish", "right"])
    steps = hotpot_group(model).invoke(ROWS[0]["question"])["steps"]
    retrieve, finish, reflect = (s["choices"] for s in steps)
    assert set(retrieve) == {"action"} and retrieve["action"][0] == ["Retrieve", 0.0]  # the argument was generated
    assert {name for name, _ in retrieve["action"]} >= {"Retrieve", "Search", "Lookup", "Finish"}
    assert all(score == -5.0 for _, score in retrieve["action"][1:])
    assert finish["action"][0] == ["Finish", 0.0]
    assert reflect == {"verdict": [["right", 0.0], ["wrong", -5.0]]}


def test_options_and_scored_arguments_keep_their_candidates():
    task = get_task("scienceqa")
    row = {"id": "1", "question": "What is the capital of Delaware?\nOptions: (A) Harrisburg (B) Dover",
           "choices": ["Harrisburg", "Dover"], "answer": "B", "caption": "a map", "ocr": "[]"}
    toolbox = build_toolbox(default_tool_specs("scienceqa"), ToolResources())
    model = ScriptedModel(generations=["it is Dover", "fine"], prefer=["Finish", "B. Dover", "right"])
    ctx = GroupContext(plan=ModelPlanAgent(model, "meta"), tool=ModelToolAgent(model, "meta"),
                       reflect=ModelReflectAgent(model, "meta"), toolbox=toolbox, task=task)
    finish = AgentGroup(ctx).invoke(task.question_text(row), task.inputs(row))["steps"][0]
    assert finish["choices"]["option"] == [["B. Dover", 0.0], ["A. Harrisburg", -5.0]]
    scored = AgentSettings(scored_arguments=True)
    model = ScriptedModel(generations=["Look up the country.", "t", "t"], prefer=["Retrieve", "Freedonia", "Finish"])
    group = hotpot_group(model, scored)
    first = group.invoke(ROWS[0]["question"])["steps"][0]
    assert first["argument"] == "Freedonia" and first["choices"]["argument"][0] == ["Freedonia", 0.0]
    assert all(score < 0 for _, score in first["choices"]["argument"][1:])  # per character: -5 / (len + 1)


def test_a_connection_closed_once_is_retried_quietly_and_twice_is_reported(caplog):
    """A server may close a kept-alive connection just as a request goes out on it: the retry gets through,
    and that is no news. Two failures at the connection in a row are: the server is said not to answer."""
    import logging

    from tests.support.hostile_endpoint import HostileEndpoint

    with HostileEndpoint() as server, caplog.at_level(logging.WARNING, logger="autoact.endpoint"):
        model = EndpointModel(EndpointConfig(base_url=server.base_url, model="hostile", retries=3, backoff=0.01,
                                             timeout=10))
        server.fault("completions", "close")
        assert model.generate("hi", stop=[], max_tokens=2) is not None and model.calls == 2
        assert "does not answer" not in caplog.text
        server.fault("completions", "close", times=2)
        model.generate("hi", stop=[], max_tokens=2)
        assert model.calls == 5 and "does not answer" in caplog.text
