"""Step traces: trace_event per node kind, format_event lines, and the Tracer's JSONL and console output."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from rich.console import Console

from evaluation.trace import Tracer, format_event, trace_event

SEARCH_STEP = {"thought": "I need Freedonia.", "action": "Search", "argument": "Freedonia",
               "observation": "Freedonia is a small country.", "status": "ok"}
REFLECT_STEP = {"node": "reflect", "thought": "The page supports it.", "action": "Reflect", "argument": "right",
                "observation": "Answer accepted.", "status": "ok"}


# --- trace_event ------------------------------------------------------------------------------

def test_plan_event_has_thought_and_action() -> None:
    """A plan update becomes its pending thought and action (no error key when there is none)."""
    update = {"pending": {"thought": "Search first.", "action": "Search", "error": None}}
    assert trace_event("plan", update, 1) == {"node": "plan", "step": 1, "thought": "Search first.",
                                              "action": "Search"}


def test_plan_event_keeps_the_error() -> None:
    """An unreadable action's error is part of the plan event."""
    update = {"pending": {"thought": "Hmm.", "action": "", "error": "no action found"}}
    assert trace_event("plan", update, 2) == {"node": "plan", "step": 2, "thought": "Hmm.", "action": "",
                                              "error": "no action found"}


def test_plan_event_without_pending_is_blank() -> None:
    assert trace_event("plan", {}, 0) == {"node": "plan", "step": 0, "thought": "", "action": ""}


def test_plan_that_halts_becomes_a_halt_event() -> None:
    """A plan update that halts is reported as a halt with its reason."""
    update = {"halted": True, "halt_reason": "endpoint_error", "pending": {"thought": "x", "action": "Search"}}
    assert trace_event("plan", update, 3) == {"node": "halt", "step": 3, "reason": "endpoint_error"}


def test_tool_event_has_action_and_argument() -> None:
    update = {"pending": {"thought": "t", "action": "Lookup", "argument": "capital"}}
    assert trace_event("tool", update, 4) == {"node": "tool", "step": 4, "action": "Lookup",
                                              "argument": "capital"}


def test_execute_event_reports_the_last_step() -> None:
    """execute: the newest step's action, argument and observation, without its thought."""
    update = {"steps": [{"action": "Old", "argument": "a", "observation": "o"}, SEARCH_STEP]}
    assert trace_event("execute", update, 5) == {"node": "execute", "step": 5, "action": "Search",
                                                 "argument": "Freedonia",
                                                 "observation": "Freedonia is a small country."}


def test_reflect_event_adds_the_thought() -> None:
    assert trace_event("reflect", {"steps": [REFLECT_STEP]}, 6) == {
        "node": "reflect", "step": 6, "action": "Reflect", "argument": "right",
        "observation": "Answer accepted.", "thought": "The page supports it."}


@pytest.mark.parametrize("node", ["execute", "reflect"])
def test_step_nodes_without_steps_have_nothing_to_show(node: str) -> None:
    assert trace_event(node, {}, 1) is None
    assert trace_event(node, {"steps": []}, 1) is None


def test_halt_event_has_reason_and_answer() -> None:
    update = {"halted": True, "halt_reason": "max_steps", "answer": "Fredville"}
    assert trace_event("halt", update, 7) == {"node": "halt", "step": 7, "reason": "max_steps",
                                              "answer": "Fredville"}


@pytest.mark.parametrize("node", ["__start__", "meta", "finish", ""])
def test_other_nodes_are_not_traced(node: str) -> None:
    assert trace_event(node, {"steps": [SEARCH_STEP], "pending": {"action": "Search"}}, 1) is None


# --- format_event -----------------------------------------------------------------------------

def plain(markup: str) -> str:
    """What the console shows for a markup line, styles removed."""
    buf = io.StringIO()
    Console(file=buf, width=300, color_system=None).print(markup, highlight=False)
    return buf.getvalue().rstrip("\n")


@pytest.mark.parametrize("event, episode, shown", [
    ({"node": "plan", "step": 1, "thought": "Search first.", "action": "Search"}, None,
     "step 1 plan    Thought: Search first.  →  Action: Search"),
    ({"node": "plan", "step": 1, "thought": "Hmm.", "action": "", "error": "no action"}, "5890",
     "[5890] step 1 plan    Thought: Hmm.  →  Action: ?  (no action)"),
    ({"node": "tool", "step": 2, "action": "Lookup", "argument": "capital"}, None,
     "step 2 tool    Lookup[capital]"),
    ({"node": "execute", "step": 2, "action": "Search", "argument": "a", "observation": "o"}, None,
     "step 2 execute Search[a] → o"),
    ({"node": "reflect", "step": 3, "action": "Reflect", "argument": "right", "observation": "ok",
      "thought": "Fine."}, None, "step 3 reflect Thought: Fine.  →  Reflect[right] → ok"),
    ({"node": "halt", "step": 4, "reason": "max_steps", "answer": None}, None,
     "step 4 halt    halted (max_steps); answer: None"),
])
def test_format_event_lines(event: dict, episode: str | None, shown: str) -> None:
    """Each node kind has its own readable line, prefixed by the episode when given."""
    assert plain(format_event(event, episode)) == shown


def test_format_event_escapes_markup_in_text_and_episode() -> None:
    """Brackets in model text or episode ids are shown literally, not read as rich markup."""
    event = {"node": "tool", "step": 1, "action": "Search", "argument": "[bold]x[/bold]"}
    assert plain(format_event(event, "ep[red]")) == "[ep[red]] step 1 tool    Search[[bold]x[/bold]]"


@pytest.mark.parametrize("episode", ["q1", "si-hotpotqa-00003", "dev_3"])
def test_format_event_shows_word_like_episode_ids(episode: str) -> None:
    """Episode ids that look like markup tags (a letter first) are shown too."""
    event = {"node": "tool", "step": 1, "action": "Search", "argument": "a"}
    assert plain(format_event(event, episode)) == f"[{episode}] step 1 tool    Search[a]"


# --- Tracer -----------------------------------------------------------------------------------

def test_tracer_appends_jsonl_lines(tmp_path: Path) -> None:
    """Each event is one JSON line; the episode comes first when given; parent folders are made."""
    path = tmp_path / "runs" / "trace.jsonl"
    tracer = Tracer(jsonl=path)
    tracer.emit({"node": "tool", "step": 1, "action": "Search", "argument": "Fredville ü"}, episode="q1")
    tracer.emit({"node": "halt", "step": 2, "reason": "max_steps", "answer": None})
    tracer.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"episode": "q1", "node": "tool", "step": 1, "action": "Search", "argument": "Fredville ü"},
        {"node": "halt", "step": 2, "reason": "max_steps", "answer": None}]
    assert list(json.loads(lines[0])) == ["episode", "node", "step", "action", "argument"]
    assert "ü" in lines[0]  # written as UTF-8, not \u-escaped
    Tracer(jsonl=path).emit({"node": "plan", "step": 3, "thought": "", "action": "Finish"})
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3  # a second tracer appends


def test_tracer_lines_are_flushed_before_close(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    tracer = Tracer(jsonl=path)
    tracer.emit({"node": "tool", "step": 1, "action": "Lookup", "argument": "x"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"node": "tool", "step": 1, "action": "Lookup",
                                                           "argument": "x"}
    tracer.close()
    tracer.close()  # closing twice is harmless


def test_tracer_prints_to_its_console() -> None:
    buf = io.StringIO()
    tracer = Tracer(console=Console(file=buf, width=300, color_system=None))
    tracer.emit({"node": "execute", "step": 2, "action": "Search", "argument": "a", "observation": "o"}, "5890")
    assert buf.getvalue() == "[5890] step 2 execute Search[a] → o\n"


def test_tracer_lines_stay_whole_across_threads(tmp_path: Path) -> None:
    """Concurrent emits never interleave: every line is one whole record."""
    path = tmp_path / "t.jsonl"
    tracer = Tracer(jsonl=path)

    def work(k: int) -> None:
        for i in range(50):
            tracer.emit({"node": "tool", "step": i, "action": "Search", "argument": "x" * 200}, episode=f"e{k}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tracer.close()
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 200
    assert sorted((r["episode"], r["step"]) for r in records) == sorted(
        (f"e{k}", i) for k in range(4) for i in range(50))
