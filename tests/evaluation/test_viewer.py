"""The offline episode browser (evaluation/viewer.py, viewer_page.html): what it embeds, and the page
itself in a real headless Chromium: the list renders, filters and search narrow it, an episode opens
with its steps and candidates, two evaluations side by side mark their first differing step, long
runs draw one page at a time, and the console stays free of errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.runner import EvalOptions, evaluate
from evaluation.viewer import OBSERVATION_CHARS, episode_record, write_viewer
from graph import AgentGroup, GroupContext
from tasks import get_task
from tests.support.browser import Browser, find_chromium
from tests.support.builders import ROWS, hotpot_toolbox
from tests.support.fakes import ScriptedPlan

TASK = get_task("hotpotqa")
MANY = [{**ROWS[i % 2], "id": f"q{i}"} for i in range(6)]


def _group(script: list[tuple[str, str]], argument: str) -> AgentGroup:
    def plan(view):
        return ScriptedPlan(list(script))(view)
    return AgentGroup(GroupContext(plan=plan, tool=lambda v, thought, action: argument if action == "Finish" else "Freedonia",
                                   toolbox=hotpot_toolbox()))


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory) -> Path:
    """A folder of two real evaluations of the same six questions: one answers at once, one looks first."""
    root = tmp_path_factory.mktemp("evals")
    evaluate(_group([("answer", "Finish")], "Fredville"), TASK, MANY, EvalOptions(root / "direct", progress=False))
    evaluate(_group([("look it up", "Retrieve"), ("answer", "Finish")], "Sylvania"), TASK, MANY,
             EvalOptions(root / "looks", progress=False))
    return root


def test_an_episode_keeps_its_steps_and_candidates_and_cuts_long_observations():
    row = {"id": 7, "question": "Q?", "gold": "a", "prediction": "b", "em": 0.0, "f1": 0.4, "steps": 1,
           "halted": True, "error": None, "group": "easy", "tokens": {"plan": {"prompt_tokens": 10, "completion_tokens": 2}},
           "transcript": [{"node": "plan", "thought": "t", "action": "Finish", "argument": "b", "status": "ok",
                           "observation": "x" * (OBSERVATION_CHARS + 10), "margin": 0.51234,
                           "choices": {"action": [["Finish", -0.5], ["Retrieve", -1.5]]}}]}
    record = episode_record(row, "em")
    assert record["id"] == "7" and record["ok"] is False and record["score"] == 0.0 and record["halted"]
    assert record["tok"] == 12 and record["grp"] == "easy"
    step = record["t"][0]
    assert step["c"] == {"action": [["Finish", -0.5], ["Retrieve", -1.5]]} and step["m"] == 0.512 and "s" not in step
    assert step["o"].endswith("[10 more characters]") and len(step["o"]) < OBSERVATION_CHARS + 40


def test_the_page_holds_every_evaluation_and_nothing_breaks_out_of_its_script(evaluations, tmp_path):
    rows = [json.loads(line) for line in (evaluations / "direct" / "results.jsonl").read_text().splitlines()]
    rows[0]["transcript"][0]["observation"] = "</script><script>alert(1)</script>"
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (hostile / "summary.json").write_text((evaluations / "direct" / "summary.json").read_text())
    page = write_viewer([evaluations, hostile]).read_text()
    assert page.count('type="application/json" id="episodes-') == 3
    assert "</script><script>alert" not in page and "<\\/script>" in page
    assert "http://" not in page.split("<!--")[0] and "https://" not in page  # nothing fetched from anywhere


browser_needed = pytest.mark.skipif(find_chromium() is None, reason="no Chromium here (apt-get install chromium)")


@browser_needed
@pytest.mark.integration
def test_the_page_in_a_real_browser(evaluations, tmp_path):
    path = write_viewer([evaluations], tmp_path / "view.html")
    with Browser() as page:
        seconds = page.open(path)
        rows = "document.querySelectorAll('#list tr.ep').length"
        assert page.js(rows) == 6 and page.js("document.getElementById('count').textContent") == "6 of 6 episodes"
        assert "n = 6" in page.js("document.getElementById('ev-summary').textContent")
        page.click("#filters button[data-filter=wrong]")  # direct answers Fredville: q1, q3, q5 are wrong
        assert page.js(rows) == 3 and page.js("document.getElementById('count').textContent") == "3 of 6 episodes"
        page.click("#filters button[data-filter=all]")
        page.choose("#search", "q4")
        assert page.js(rows) == 1
        page.click("#list tr.ep")
        steps = page.js("[...document.querySelectorAll('#list tr.detail .step')].map(s => s.textContent)")
        assert len(steps) == 1 and "Finish[Fredville]" in steps[0] and steps[0].lower().startswith("plan")
        page.choose("#search", "")
        page.choose("#ev", "1")
        assert page.js(rows) == 6 and "looks" in page.js("document.getElementById('ev').selectedOptions[0].text")
        page.click("nav button[data-tab=compare]")
        items = page.js("[...document.querySelectorAll('.cmp-item')].map(i => [i.dataset.id, "
                        "i.querySelectorAll('.side').length, i.querySelectorAll('.first-diff').length, "
                        "i.querySelector('.first-diff').textContent])")
        assert len(items) == 6 and all(sides == 2 and marked == 2 for _, sides, marked, _ in items)
        assert all("first step where the two differ" in text for *_, text in items)
        page.click("#cmp-differ")
        assert page.js("document.querySelectorAll('.cmp-item').length") == 6
        page.click("nav button[data-tab=report]")
        assert "No report.md" in page.js("document.getElementById('report').textContent")
        page.screenshot(tmp_path / "view.png")
        assert page.errors == []
    assert (tmp_path / "view.png").stat().st_size > 10_000
    print(f"\nviewer: {path.stat().st_size} bytes for 2 x 6 episodes, loaded in {seconds:.2f} s")


@browser_needed
@pytest.mark.integration
def test_thousands_of_episodes_are_drawn_a_page_at_a_time(evaluations, tmp_path):
    rows = [json.loads(line) for line in (evaluations / "looks" / "results.jsonl").read_text().splitlines()]
    big = tmp_path / "big"
    big.mkdir()
    (big / "results.jsonl").write_text("".join(json.dumps({**rows[i % len(rows)], "id": f"b{i}"}) + "\n"
                                               for i in range(3000)))
    (big / "summary.json").write_text((evaluations / "looks" / "summary.json").read_text())
    path = write_viewer([big], tmp_path / "big.html")
    with Browser() as page:
        seconds = page.open(path)
        assert page.js("document.querySelectorAll('#list tr.ep').length") == 100
        assert page.js("document.getElementById('count').textContent") == "3000 of 3000 episodes, 100 shown"
        page.click("#more")
        assert page.js("document.querySelectorAll('#list tr.ep').length") == 200
        page.choose("#search", "b2999")
        assert page.js("document.querySelectorAll('#list tr.ep').length") == 1
        assert page.errors == []
    print(f"\nviewer: {path.stat().st_size / 2**20:.1f} MiB for 3000 episodes, loaded in {seconds:.2f} s")
