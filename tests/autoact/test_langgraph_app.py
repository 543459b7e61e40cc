"""The graph `langgraph dev` serves (autoact/langgraph_app.py, langgraph.json): built from
`$AUTOACT_GRAPH_ARGS`, invoked with a question, it plays the episode `autoact run` plays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoact import langgraph_app
from core.errors import ConfigError
from tests.support.builders import ROWS

ROOT = Path(__file__).resolve().parents[2]


def _rows(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def test_langgraph_json_names_the_factory():
    config = json.loads((ROOT / "langgraph.json").read_text())
    module, _, name = config["graphs"]["autoact"].partition(":")
    assert (ROOT / module).resolve() == Path(langgraph_app.__file__).resolve() and name == "make_graph"
    assert "--task" in config["env"][langgraph_app.ARGS_ENV]


def test_bad_arguments_are_a_clear_error(monkeypatch):
    monkeypatch.setenv(langgraph_app.ARGS_ENV, "--task nosuchtask")
    with pytest.raises(ConfigError, match="AUTOACT_GRAPH_ARGS='--task nosuchtask': not options of `autoact run`"):
        langgraph_app.make_graph()


@pytest.mark.integration
def test_the_served_graph_plays_the_episode_autoact_run_plays(tiny_stack, tmp_path, monkeypatch):
    from autoact.agent_options import agent_from_args
    from tasks import get_task, read_rows
    data = _rows(tmp_path)
    args = f"--task hotpotqa --data {data} --base-url {tiny_stack.base_url} --max-steps 3 --scored-arguments"
    monkeypatch.setenv(langgraph_app.ARGS_ENV, args)
    graph = langgraph_app.make_graph()
    assert "start" in graph.get_graph().nodes and "reflect" in graph.get_graph().nodes
    streamed = [node for chunk in graph.stream({"question": ROWS[0]["question"]}, stream_mode="updates")
                for node in chunk]
    final = graph.invoke({"question": ROWS[0]["question"]})
    parsed = langgraph_app._parser().parse_args(args.split())
    task = get_task("hotpotqa")
    episode = agent_from_args(parsed, task, read_rows(str(data), task)).run(ROWS[0]["question"])
    assert streamed[0] == "start" and "plan" in streamed and streamed.count("execute") >= 1
    assert [(s["node"], s["action"], s["argument"]) for s in final["steps"]] == \
        [(s["node"], s["action"], s["argument"]) for s in episode.state["steps"]]
    assert final.get("answer") == episode.state.get("answer") and len(final["steps"]) <= 3
