"""The graph `langgraph dev` serves (autoact/langgraph_app.py, langgraph.json): built from
`$AUTOACT_GRAPH_ARGS`, invoked with a question, it plays the episode `autoact run` plays."""

from __future__ import annotations

import asyncio
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
        asyncio.run(langgraph_app.make_graph())


@pytest.mark.integration
def test_the_served_graph_plays_the_episode_autoact_run_plays(tiny_stack, tmp_path, monkeypatch):
    from autoact.agent_options import agent_from_args
    from tasks import get_task, read_rows
    data = _rows(tmp_path)
    args = f"--task hotpotqa --data {data} --base-url {tiny_stack.base_url} --max-steps 3 --scored-arguments"
    monkeypatch.setenv(langgraph_app.ARGS_ENV, args)
    graph = asyncio.run(langgraph_app.make_graph())  # as `langgraph dev` calls it: in an event loop
    assert langgraph_app.build_graph() is graph  # built once
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


def _langgraph_cli() -> str | None:
    import shutil
    import sys
    beside = Path(sys.executable).with_name("langgraph")
    return str(beside) if beside.is_file() else shutil.which("langgraph")


@pytest.mark.integration
@pytest.mark.skipif(_langgraph_cli() is None,
                    reason="langgraph-cli[inmem] is not installed (pip install -e '.[langgraph-dev]')")
def test_langgraph_dev_serves_the_group_graph(tiny_stack, tmp_path):
    import os
    import subprocess
    import time

    import httpx

    from serving.launcher import free_port
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({
        "dependencies": [str(ROOT)], "graphs": {"autoact": f"{ROOT / 'autoact' / 'langgraph_app.py'}:make_graph"},
        "env": {langgraph_app.ARGS_ENV: f"--task hotpotqa --data {_rows(tmp_path)} --base-url {tiny_stack.base_url} "
                                        "--max-steps 3"}}))
    port = free_port()
    server = subprocess.Popen([_langgraph_cli(), "dev", "--config", str(config), "--no-browser", "--no-reload",
                               "--port", str(port)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ok", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "langgraph dev did not start"
            time.sleep(1)
        answer = httpx.post(f"http://127.0.0.1:{port}/runs/wait", timeout=300,
                            json={"assistant_id": "autoact", "input": {"question": ROWS[0]["question"]}}).json()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    assert "__error__" not in answer, answer
    assert 1 <= len(answer["steps"]) <= 3 and all(s["node"] in ("plan", "reflect") for s in answer["steps"])
