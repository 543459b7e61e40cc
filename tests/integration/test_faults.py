"""The faults a new user meets, each held where the user meets it: the CLI, real processes, real endpoints.

Endpoints: `tiny_stack` (a real FastChat server with a tiny random Llama) and `HostileEndpoint`
(a real HTTP server on loopback that misbehaves on purpose, alone or in front of the stack).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoact.cli import main
from tests.support.builders import ROWS
from tests.support.hostile_endpoint import HostileEndpoint

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
MANY = [{**ROWS[i % 2], "id": f"q{i}"} for i in range(32)]
SCIENCE = {"id": "s1", "question": "Which is a mammal?\nOptions: (A) cat (B) trout", "choices": ["cat", "trout"],
           "answer": "A", "caption": "no img", "ocr": "no img", "metadata": {"grade": 2}}


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoact", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, "COLUMNS": "400"})


def flat(text: str) -> str:
    return " ".join(text.split())


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def eval_args(data: Path, out: Path, url: str, *more: str) -> list[str]:
    return ["eval", "--task", "hotpotqa", "--data", str(data), "--out", str(out), "--base-url", url,
            "--no-progress", "--max-steps", "2", *more]


# ------------------------------------------------------------------ 1. --overwrite never removes inputs

def test_train_overwrite_keeps_the_data_it_reads_and_other_files(tiny_model_dir, tmp_path):
    ds = tmp_path / "o" / "ds"
    ds.mkdir(parents=True)
    pairs = [{"prompt": f"Question {i}: 2+{i}?\nAnswer:", "completion": f" {2 + i}"} for i in range(4)]
    write_rows(ds / "plan.jsonl", pairs)
    (ds / "notes.txt").write_text("keep me")
    args = ["train", "--data", str(ds / "plan.jsonl"), "--out", str(ds), "--base", str(tiny_model_dir),
            "--max-steps", "1", "--no-progress", "--overwrite"]
    for _ in range(2):  # the second --overwrite replaces the first adapter, and only it
        assert main(args) == 0
        assert (ds / "plan.jsonl").is_file() and (ds / "notes.txt").read_text() == "keep me"
        assert (ds / "adapter_config.json").is_file() and (ds / "training_args.json").is_file()
    listed = json.loads((ds / "training_args.json").read_text())["files"]
    assert "adapter_config.json" in listed and "plan.jsonl" not in listed and "notes.txt" not in listed


# ------------------------------------------------------------------ 2. errored rows: retried, not scored

def test_errored_rows_are_retried_by_a_rerun_and_not_scored_as_wrong(tmp_path):
    data, out = write_rows(tmp_path / "d.jsonl", MANY[:4]), tmp_path / "out"
    with HostileEndpoint() as server:
        server.always("completions", "503")
        assert main(eval_args(data, out, server.base_url, "--timeout", "2")) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["errors"] == 4 and summary["answered"] == 0 and summary["em"] is None
        assert summary["all_rows"]["em"] == 0.0
        server.always("completions", None)  # the server recovers
        before = server.counts["completions"]
        assert main(eval_args(data, out, server.base_url)) == 0
        assert server.counts["completions"] > before  # the rerun did the errored rows again
    rows = results(out)
    latest = {r["id"]: r for r in rows}
    assert len(rows) == 8 and all(r["error"] is None for r in latest.values())
    assert all("HTTP 503" in r["previous_errors"][0]["error"] for r in latest.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 4 and summary["errors"] == 0 and summary["answered"] == 4


# ------------------------------------------------------------------ 3. one run at a time per output

@pytest.mark.integration
def test_a_second_eval_on_the_same_out_is_refused_and_a_killed_one_leaves_no_lock(tiny_stack, tmp_path):
    data, out = write_rows(tmp_path / "d.jsonl", MANY[:4]), tmp_path / "out"
    with HostileEndpoint(upstream=tiny_stack.base_url) as server:
        server.delay = 0.3  # the first run takes a few seconds
        args = [sys.executable, "-m", "autoact", *eval_args(data, out, server.base_url, "--concurrency", "1")]
        first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while server.counts["completions"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        second = cli(*eval_args(data, out, server.base_url))
        assert second.returncode == 2 and "is in use by another run" in flat(second.stdout)
        assert f"pid {first.pid}" in flat(second.stdout)
        first.kill()  # kill -9: the kernel drops its lock
        first.wait(30)
        server.delay = 0.0
        third = cli(*eval_args(data, out, server.base_url))
        assert third.returncode == 0, third.stdout + third.stderr
    ids = [r["id"] for r in results(out)]
    assert sorted(ids) == sorted(r["id"] for r in MANY[:4]) and len(ids) == 4


def test_summaries_count_each_id_once_whatever_the_file_holds(tmp_path):
    data, out = write_rows(tmp_path / "d.jsonl", MANY[:2]), tmp_path / "out"
    out.mkdir()
    row = {"group": "easy", "em": 1.0, "f1": 1.0, "halted": False, "error": None, "transcript": []}
    write_rows(out / "results.jsonl", [{**row, "id": "q0"}, {**row, "id": "q0"}, {**row, "id": "q1"},
                                       {**row, "id": "q1", "em": 0.0}])  # what two runs at once once wrote
    with HostileEndpoint() as server:
        assert main(eval_args(data, out, server.base_url)) == 0
        assert server.counts["completions"] == 0  # every id was answered: nothing to do
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 2 and summary["em"] == 100.0


# ------------------------------------------------------------------ 4. and 13. options that mean nothing

@pytest.mark.parametrize("option,value", [("--limit", "0"), ("--limit", "-1"), ("--concurrency", "0"),
                                          ("--concurrency", "-5"), ("--timeout", "-1"), ("--timeout", "nan"),
                                          ("--max-steps", "0")])
def test_eval_rejects_meaningless_numbers_naming_the_option(option, value, tmp_path, capsys):
    data = write_rows(tmp_path / "d.jsonl", MANY[:2])
    with pytest.raises(SystemExit) as exit_:
        main(eval_args(data, tmp_path / "out", "http://127.0.0.1:9/v1", option, value))
    assert exit_.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("option,value", [("--lr", "nan"), ("--epochs", "inf"), ("--lr", "0"), ("--epochs", "-1"),
                                          ("--batch-size", "0"), ("--lora-dropout", "nan")])
def test_train_rejects_non_finite_or_non_positive_settings(option, value, tmp_path, capsys):
    data = write_rows(tmp_path / "plan.jsonl", [{"prompt": "a", "completion": " b"}])
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", str(data), "--out", str(tmp_path / "ad"), option, value])
    assert exit_.value.code == 2 and f"argument {option}" in capsys.readouterr().err


def test_out_naming_an_existing_file_is_a_clear_error(tmp_path, capsys):
    data, taken = write_rows(tmp_path / "d.jsonl", MANY[:2]), tmp_path / "taken"
    taken.write_text("mine")
    assert main(eval_args(data, taken, "http://127.0.0.1:9/v1")) == 2
    assert "--out" in flat(capsys.readouterr().out) and taken.read_text() == "mine"
    pairs = write_rows(tmp_path / "plan.jsonl", [{"prompt": "a", "completion": " b"}])
    assert main(["train", "--data", str(pairs), "--out", str(taken)]) == 2
    assert "a file is there" in flat(capsys.readouterr().out) and taken.read_text() == "mine"


# ------------------------------------------------------------------ 5. and 11. trajectories files

def trajectory(**fields) -> dict:
    step = {"node": "plan", "thought": "It is Fredville.", "action": "Finish", "argument": "Fredville",
            "observation": "Proposed answer: Fredville"}
    reflect = {"node": "reflect", "thought": "Looks right.", "action": "Reflect", "argument": "right",
               "observation": "The answer is final."}
    row = {"id": "t1", "question": "Which city is the capital of Freedonia?", "gold": "Fredville",
           "prediction": "Fredville", "reward": 1.0, "halted": False, "error": None,
           "transcript": [step, reflect]}
    for key, value in fields.items():
        if key.startswith("step_"):
            row["transcript"][0] = {**step, key[5:]: value}
        else:
            row[key] = value
    return row


def test_a_null_thought_gives_no_none_completion(tmp_path):
    trajectories = write_rows(tmp_path / "t.jsonl", [trajectory(step_thought=None)])
    assert main(["differentiate", "--trajectories", str(trajectories), "--out", str(tmp_path / "ds"),
                 "--task", "hotpotqa", "--tokenizer", "none"]) == 0
    pairs = [json.loads(line) for line in (tmp_path / "ds" / "plan.jsonl").read_text().splitlines()]
    assert pairs and all("None" not in p["completion"] and "None" not in p["prompt"] for p in pairs)
    assert [p["kind"] for p in pairs] == ["action"]  # no thought to learn, the action still is


@pytest.mark.parametrize("row,field", [
    (trajectory(transcript="Thought: x"), "field 'transcript' should be a list"),
    (trajectory(transcript=["Finish[x]"]), "transcript step 1 should be an object"),
    (trajectory(step_observation=None, step_thought=7), "transcript step 1: field 'thought' should be a string"),
    (trajectory(reward="high"), "field 'reward' should be a number, got 'high'"),
    (42, "a trajectory row should be a JSON object, got int"),
])
@pytest.mark.parametrize("command", ["differentiate", "inspect"])
def test_malformed_trajectories_name_file_line_and_field(row, field, command, tmp_path, capsys):
    trajectories = write_rows(tmp_path / "t.jsonl", [trajectory(id="t0"), row])
    args = ["--trajectories", str(trajectories)]
    if command == "differentiate":
        args += ["--out", str(tmp_path / "ds"), "--task", "hotpotqa", "--tokenizer", "none"]
    assert main([command, *args]) == 2
    said = flat(capsys.readouterr().out)
    assert f"{trajectories}:2: {field}" in said


def test_null_observation_is_read_as_empty(tmp_path):
    trajectories = write_rows(tmp_path / "t.jsonl", [trajectory(step_observation=None)])
    assert main(["inspect", "--trajectories", str(trajectories)]) == 0
    assert main(["differentiate", "--trajectories", str(trajectories), "--out", str(tmp_path / "ds"),
                 "--task", "hotpotqa", "--tokenizer", "none"]) == 0


def test_a_truncated_meta_file_is_named(tmp_path, capsys):
    trajectories = write_rows(tmp_path / "t.jsonl", [trajectory()])
    (tmp_path / "t.meta.json").write_text('{"task": "hotpotqa", "tools": [{"name": "Ret')
    assert main(["differentiate", "--trajectories", str(trajectories), "--out", str(tmp_path / "ds"),
                 "--tokenizer", "none"]) == 2
    assert f"{tmp_path / 't.meta.json'}:1: not valid JSON" in flat(capsys.readouterr().out)


def test_inspect_names_a_cut_off_stats_file(tmp_path, capsys):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "stats.json").write_text('{"trajectories": 3, "roles": {"plan": {"pa')
    assert main(["inspect", "--dataset", str(tmp_path / "ds")]) == 2
    assert f"{tmp_path / 'ds' / 'stats.json'}:1: not valid JSON" in flat(capsys.readouterr().out)


def test_scienceqa_row_with_string_metadata_is_refused_before_the_run(tmp_path, capsys):
    data = write_rows(tmp_path / "s.jsonl", [SCIENCE, {**SCIENCE, "id": "s2", "metadata": "grade 3"}])
    with HostileEndpoint() as server:
        assert main(["eval", "--task", "scienceqa", "--data", str(data), "--out", str(tmp_path / "o"),
                     "--base-url", server.base_url, "--no-progress"]) == 2
        assert server.counts["completions"] == 0
    assert f"{data}:2: field 'metadata' should be an object, got str" in flat(capsys.readouterr().out)


# ------------------------------------------------------------------ 6. the first Ctrl-C stops promptly

def interrupt_after(args: list[str], ready, server: HostileEndpoint, limit: float = 12.0,
                    signum: int = signal.SIGINT) -> tuple[str, int, float]:
    """Start `autoact ARGS`, send SIGINT (or `signum`) once `ready()`; (output, requests the server got after it,
    seconds to exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "autoact", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "400"})
    deadline = time.monotonic() + 120
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0]
    sent, at = server.counts["completions"], time.monotonic()
    proc.send_signal(signum)
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        output = proc.communicate()[0]
        pytest.fail(f"still running {limit:g} s after the first Ctrl-C:\n{output[-2000:]}")
    assert proc.returncode == 130, output
    return output, server.counts["completions"] - sent, time.monotonic() - at


@pytest.mark.integration
def test_ctrl_c_on_eval_stops_within_seconds_keeps_rows_and_resumes(tiny_stack, tmp_path):
    data, out = write_rows(tmp_path / "d.jsonl", MANY), tmp_path / "out"
    with HostileEndpoint(upstream=tiny_stack.base_url) as server:
        server.delay = 0.2
        args = eval_args(data, out, server.base_url, "--concurrency", "4", "--max-steps", "6")
        finished = lambda: (out / "results.jsonl").is_file() and (out / "results.jsonl").read_text().count("\n") >= 1
        output, after, seconds = interrupt_after(args, finished, server)
        assert "run the same command again to resume" in flat(output)
        assert after <= 8, f"{after} requests after Ctrl-C"  # at most a few that were being sent
        kept = results(out)
        assert 1 <= len(kept) < len(MANY) and len({r["id"] for r in kept}) == len(kept), [(r["id"], r["error"], r.get("previous_errors")) for r in kept]
        assert all(r["error"] is None for r in kept)  # abandoned rows are not recorded as failures
        server.delay = 0.0
        again = cli(*args)
        assert again.returncode == 0, again.stdout + again.stderr
    ids = [r["id"] for r in results(out)]
    assert sorted(ids) == sorted(r["id"] for r in MANY)


@pytest.mark.integration
def test_ctrl_c_on_synthesize_stops_within_seconds(tiny_stack, tmp_path):
    questions, out = write_rows(tmp_path / "q.jsonl", MANY), tmp_path / "t.jsonl"
    with HostileEndpoint(upstream=tiny_stack.base_url) as server:
        server.delay = 0.2
        args = ["synthesize", "--task", "hotpotqa", "--questions", str(questions), "--out", str(out), "--base-url",
                server.base_url, "--model", tiny_stack.model_name, "--concurrency", "4", "--max-steps", "6",
                "--no-progress"]
        output, after, _ = interrupt_after(args, lambda: out.is_file() and out.read_text().count("\n") >= 1, server)
    assert "run the same command again to resume" in flat(output) and after <= 8


@pytest.mark.integration
def test_ctrl_c_on_self_instruct_stops_within_seconds_keeping_whole_rows(tiny_stack, tmp_path):
    out = tmp_path / "questions.jsonl"
    with HostileEndpoint(upstream=tiny_stack.base_url) as server:
        server.delay = 0.3
        args = ["self-instruct", "--task", "hotpotqa", "--seeds", str(DATA / "hotpotqa" / "seeds.jsonl"),
                "--corpus", str(DATA / "hotpotqa" / "easy.jsonl"), "--out", str(out), "--n", "200",
                "--max-empty-rounds", "1000", "--concurrency", "4", "--base-url", server.base_url, "--no-progress"]
        output, after, _ = interrupt_after(args, lambda: server.counts["completions"] >= 8, server)
    assert "run the same command again to continue" in flat(output) and after <= 8
    for line in out.read_text().splitlines() if out.exists() else []:
        json.loads(line)


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_on_the_pipeline_marks_the_stage_interrupted_with_its_time(signum, tiny_stack,
                                                                                     tiny_model_dir, tmp_path):
    work = tmp_path / "run"
    with HostileEndpoint(upstream=tiny_stack.base_url) as server:
        server.delay = 0.3
        args = ["pipeline", "--task", "hotpotqa", "--workdir", str(work), "--base", str(tiny_model_dir),
                "--base-url", server.base_url, "--data-dir", str(DATA), "--n-questions", "200", "--no-progress"]
        output, after, _ = interrupt_after(args, lambda: server.counts["completions"] >= 8, server, signum=signum)
    stage = next(s for s in json.loads((work / "run.json").read_text())["stages"] if s["name"] == "self-instruct")
    assert stage["status"] == "interrupted" and stage["seconds"] > 0 and "running_since" not in stage
    assert "run the same command again" in flat(output) and after <= 8


# ------------------------------------------------------------------ 8. one deadline per request

def test_a_hung_server_costs_one_deadline_per_request_and_says_so(tmp_path):
    data, out = write_rows(tmp_path / "d.jsonl", MANY[:1]), tmp_path / "out"
    with HostileEndpoint() as server:
        server.always("completions", "hang")
        started = time.monotonic()
        done = cli(*eval_args(data, out, server.base_url, "--timeout", "3"))
        seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    row = results(out)[0]
    assert "no answer within the request's deadline of 3 s" in row["error"] and "\n" not in row["error"]
    assert seconds < 3 + 15  # one deadline (plus start-up), not four attempts of it
    assert "does not answer" in done.stderr and "deadline of 3 s (--timeout)" in flat(done.stderr)


def test_timeout_zero_means_no_deadline_not_failure(tmp_path):
    data = write_rows(tmp_path / "d.jsonl", MANY[:1])
    with HostileEndpoint() as server:
        done = cli(*eval_args(data, tmp_path / "out", server.base_url, "--timeout", "0"))
    assert done.returncode == 0 and results(tmp_path / "out")[0]["error"] is None


# ------------------------------------------------------------------ 9. files that are not UTF-8

BAD_BYTES = b'{"id": "q1", "question": "caf\xe9?", "answer": "x"}\n'


@pytest.mark.parametrize("command", ["eval", "synthesize", "self-instruct", "train", "differentiate"])
def test_a_file_that_is_not_utf8_is_named_with_its_line(command, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n" + BAD_BYTES)
    url = "http://127.0.0.1:9/v1"
    argv = {"eval": ["eval", "--task", "hotpotqa", "--data", str(bad), "--out", str(tmp_path / "o"),
                     "--base-url", url],
            "synthesize": ["synthesize", "--task", "hotpotqa", "--questions", str(bad), "--out",
                           str(tmp_path / "t"), "--base-url", url, "--model", "m"],
            "self-instruct": ["self-instruct", "--task", "hotpotqa", "--seeds", str(bad), "--out",
                              str(tmp_path / "q.jsonl"), "--base-url", url, "--model", "m"],
            "train": ["train", "--data", str(bad), "--out", str(tmp_path / "ad"), "--base", "default"],
            "differentiate": ["differentiate", "--trajectories", str(bad), "--out", str(tmp_path / "ds"),
                              "--task", "hotpotqa"]}[command]
    assert main(argv) == 2
    assert f"{bad}:2: not UTF-8 text (byte 0xe9" in flat(capsys.readouterr().out)


# ------------------------------------------------------------------ 10. user data printed literally

@pytest.mark.parametrize("name", ["d[/x].jsonl", "[red]d.jsonl", "[sentence, ...].jsonl"])
def test_paths_with_brackets_are_printed_literally(name, tmp_path):
    missing = tmp_path / name
    done = cli("eval", "--task", "hotpotqa", "--data", str(missing), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{missing}: no such data file" in flat(done.stdout)


# ------------------------------------------------------------------ 12. endpoints that answer oddly

@pytest.mark.parametrize("fault,said", [("html", "does not answer as an OpenAI-compatible API"),
                                        ("no_id", "does not answer as an OpenAI-compatible API"),
                                        ("401", "HTTP 401: Incorrect API key provided. The server refused the "
                                                "API key")])
def test_model_listing_faults_are_one_clear_line(fault, said, tmp_path):
    data = write_rows(tmp_path / "d.jsonl", MANY[:1])
    with HostileEndpoint() as server:
        server.always("models", fault)
        done = cli(*eval_args(data, tmp_path / "o", server.base_url))
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and said in lines[0] and f"{server.base_url}/models" in lines[0]
    if fault == "401":
        assert "Is a server running" not in done.stdout


@pytest.mark.parametrize("fault,said", [("non_json", "the answer is not a completion"),
                                        ("empty_choices", "the answer holds no choices"),
                                        ("401", "HTTP 401: Incorrect API key provided")])
def test_completion_faults_become_one_line_row_errors(fault, said, tmp_path):
    data, out = write_rows(tmp_path / "d.jsonl", MANY[:1]), tmp_path / "o"
    with HostileEndpoint() as server:
        server.always("completions", fault)
        assert main(eval_args(data, out, server.base_url, "--timeout", "3")) == 0
    error = results(out)[0]["error"]
    assert said in error and server.base_url in error and "'hostile'" in error
    assert "\n" not in error and "Traceback" not in error


# ------------------------------------------------------------------ 15. scoring answers that lack logprobs

@pytest.mark.integration
@pytest.mark.parametrize("fault", ["drop_logprobs", "misalign_logprobs", "shift_logprobs"])
def test_sometimes_malformed_scoring_is_retried_and_always_malformed_is_named(fault, tiny_stack, tmp_path):
    data = write_rows(tmp_path / "d.jsonl", MANY[:2])
    with HostileEndpoint(upstream=tiny_stack.base_url) as server:
        server.sometimes("completions", fault, every=4)
        assert main(eval_args(data, tmp_path / "o", server.base_url, "--concurrency", "2")) == 0
        assert server.counts["completions"] >= 8  # some answers were malformed, and retried
        assert all(r["error"] is None for r in results(tmp_path / "o"))
        server.always("completions", fault)
        assert main(eval_args(data, tmp_path / "o2", server.base_url, "--limit", "1", "--timeout", "4")) == 0
    error = results(tmp_path / "o2")[0]["error"]
    assert "logprobs" in error and re.search(r"after [2-4] attempts", error) and "\n" not in error


# ------------------------------------------------------------------ 16. tool selection that picks nothing

def test_select_tools_falls_back_to_the_built_in_set_unless_strict(tmp_path):
    out = tmp_path / "tools.json"
    with HostileEndpoint() as server:  # it gives " yes" and " no" the same likelihood: no tool is chosen
        done = cli("select-tools", "--task", "hotpotqa", "--out", str(out), "--base-url", server.base_url)
        assert done.returncode == 0, done.stdout + done.stderr
        said = flat(done.stdout)
        assert "answered 'no' for every tool" in said and "used the task's built-in tool set" in said
        assert [t["name"] for t in json.loads(out.read_text())] == ["Retrieve", "Lookup", "Search"]
        new = tmp_path / "new.json"
        done = cli("select-tools", "--task", "recipes", "--description", "Convert cooking units.", "--out", str(new),
                   "--base-url", server.base_url)
        assert done.returncode == 0 and len(json.loads(new.read_text())) == 3
        assert "the 3 tools with the highest margins" in flat(done.stdout)
        strict = tmp_path / "strict.json"
        done = cli("select-tools", "--task", "hotpotqa", "--out", str(strict), "--base-url", server.base_url,
                   "--strict")
    assert done.returncode == 2 and "answered 'no' for every tool" in flat(done.stdout) and not strict.exists()
