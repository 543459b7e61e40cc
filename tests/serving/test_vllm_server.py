"""vLLM's server as an engine (serving/vllm_server.py): its command line, its rank, its absence; and,
where vLLM and a GPU are present, every client path against the real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ConfigError
from serving import vllm_server
from serving.launcher import serving_stack
from serving.model_store import ResolvedModel
from serving.vllm_server import VllmServer, lora_rank, vllm_available, vllm_command
from serving.worker_main import CHATML_TEMPLATE

MODEL = ResolvedModel(Path("/models/base"), "base", CHATML_TEMPLATE)


def _adapter(path: Path, r: int) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": r, "base_model_name_or_path": "/models/base"}))
    return path


@pytest.mark.parametrize("ranks, expected", [((), 8), ((4, 8), 8), ((8, 12), 16), ((64,), 64), ((300,), 320)])
def test_the_lora_rank_is_the_smallest_vllm_accepts_above_every_adapter(tmp_path, ranks, expected):
    adapters = {f"a{i}": _adapter(tmp_path / f"a{i}", r) for i, r in enumerate(ranks)}
    assert lora_rank(adapters) == expected


def test_an_unreadable_or_too_large_rank_names_the_adapter(tmp_path):
    (tmp_path / "plan").mkdir()
    with pytest.raises(ConfigError, match="adapter plan: cannot read its rank"):
        lora_rank({"plan": tmp_path / "plan"})
    with pytest.raises(ConfigError, match="rank 1024 is above the 512"):
        lora_rank({"tool": _adapter(tmp_path / "tool", 1024)})


def test_the_command_serves_the_base_and_every_adapter_as_a_lora_module(tmp_path):
    adapters = {"plan": _adapter(tmp_path / "plan", 8), "reflect": _adapter(tmp_path / "reflect", 16)}
    args = vllm_command(MODEL, adapters, host="127.0.0.1", port=9000, api_key="k", dtype="bfloat16",
                        max_batch_size=64, tensor_parallel=2, extra=["--enforce-eager"])
    assert args[:2] == ["-m", "vllm.entrypoints.openai.api_server"]
    flag = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    assert flag["--model"] == "/models/base" and flag["--served-model-name"] == "base"
    assert flag["--dtype"] == "bfloat16" and flag["--max-num-seqs"] == "64" and flag["--tensor-parallel-size"] == "2"
    assert flag["--api-key"] == "k" and flag["--max-lora-rank"] == "16" and flag["--max-loras"] == "2"
    modules = args[args.index("--lora-modules") + 1:args.index("--enforce-eager")]
    assert modules == [f"plan={(tmp_path / 'plan').resolve()}", f"reflect={(tmp_path / 'reflect').resolve()}"]
    bare = vllm_command(MODEL, {}, host="h", port=1, api_key=None)
    assert "--enable-lora" not in bare and "--api-key" not in bare and bare[bare.index("--dtype") + 1] == "auto"


def test_without_vllm_the_engine_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(vllm_server, "vllm_available", lambda: False)
    with pytest.raises(ConfigError, match="vLLM is not installed in this environment.*pip install vllm"):
        serving_stack(MODEL, engine="vllm")


def test_the_cli_refuses_vllm_here_when_it_is_absent(capsys):
    if vllm_available():
        pytest.skip("vLLM is installed here")
    from autoact.cli import main
    assert main(["serve", "--engine", "vllm"]) == 2
    assert "vLLM is not installed" in capsys.readouterr().out


def _gpu() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.mark.integration
@pytest.mark.skipif(not _gpu(), reason="vLLM's server needs a CUDA GPU, and torch sees none here")
@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (it needs a GPU machine: pip install vllm)")
def test_every_client_path_works_against_vllms_server(tiny_model_dir, tmp_path):
    from agents.llm import TOKEN_USAGE, EndpointConfig, EndpointModel
    from serving.launcher import free_port
    from serving.model_store import resolve_model
    from training.lora import TrainConfig, train_adapter
    pairs = tmp_path / "plan.jsonl"
    pairs.write_text(json.dumps({"prompt": "Question: 2+2?\nAction 1:", "completion": " Finish[4]"}) + "\n")
    train_adapter(pairs, tmp_path / "plan", tiny_model_dir, TrainConfig(max_steps=1), progress=False)
    with VllmServer(resolve_model(str(tiny_model_dir)), port=free_port(), log_dir=tmp_path / "logs",
                    adapters={"plan": tmp_path / "plan"}, extra_args=["--enforce-eager"]) as server:
        for name in server.model_names:
            model = EndpointModel(EndpointConfig(base_url=server.base_url, model=name))
            usage: dict = {}
            token = TOKEN_USAGE.set(usage)
            try:
                text = model.generate("The capital of France is", stop=["\n"], max_tokens=5)
                scores = model.score("Answer: (", ["A", "B)"])
            finally:
                TOKEN_USAGE.reset(token)
            assert isinstance(text, str) and len(scores) == 2 and all(s < 0 for s in scores)
            assert usage[name]["requests"] == 3 and usage[name]["prompt_tokens"] > 0
