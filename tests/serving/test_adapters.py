"""LoRA adapters served by one FastChat multi_model_worker on shared base weights (serving/adapters.py)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from core.errors import ConfigError
from serving.adapters import group_adapters, parse_adapter_specs, prepare_adapters
from serving.launcher import FastChatStack, free_port
from serving.model_store import resolve_model
from tests.support.serving import PROMPTS, complete, make_adapter

ROLES = ("plan", "tool", "reflect")






@pytest.fixture(scope="module")
def role_adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {role: make_adapter(tiny_model_dir, root / role, seed) for seed, role in enumerate(ROLES, 1)}


@pytest.fixture(scope="module")
def adapter_stack(tiny_model_dir, role_adapters, tmp_path_factory):
    stack = FastChatStack(resolve_model(str(tiny_model_dir)), port=free_port(),
                          log_dir=tmp_path_factory.mktemp("adapter-stack"), startup_timeout=240,
                          adapters=role_adapters, dtype="float32")
    with stack:
        yield stack





def test_parse_adapter_specs_and_group_dirs(tmp_path, role_adapters):
    assert parse_adapter_specs("plan=a/p, tool=a/t") == {"plan": Path("a/p"), "tool": Path("a/t")}
    for bad in ("plan", "plan=", "=x", "plan=a,plan=b", "bad name=x", ""):
        with pytest.raises(ConfigError):
            parse_adapter_specs(bad)
    with pytest.raises(ConfigError, match="no adapter"):
        group_adapters(tmp_path)
    parent = role_adapters["plan"].parent
    assert group_adapters(parent) == {r: parent / r for r in ROLES}


def test_unservable_adapters_are_named(tmp_path, tiny_model_dir, role_adapters):
    base = resolve_model(str(tiny_model_dir))
    with pytest.raises(ConfigError, match="adapter_config.json"):
        FastChatStack(base, adapters={"plan": tmp_path})
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING"}))
    with pytest.raises(ConfigError, match=r"adapter_config\.json: not a LoRA adapter"):
        FastChatStack(base, adapters={"plan": tmp_path})
    with pytest.raises(ConfigError, match="base model's name"):
        FastChatStack(base, adapters={base.name: role_adapters["plan"]})


def test_identity_adapter_has_a_zero_update(tmp_path, tiny_model_dir, role_adapters):
    from safetensors.torch import load_file
    served = prepare_adapters(role_adapters, resolve_model(str(tiny_model_dir)), tmp_path)
    assert [name for name, _ in served] == [tiny_model_dir.name, *ROLES]
    identity = load_file(served[0][1] / "adapter_model.safetensors")
    assert all(not t.any() for k, t in identity.items() if "lora_B" in k)
    assert any(t.any() for k, t in identity.items() if "lora_A" in k)
    for _, path in served:
        config = json.loads((path / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == str(tiny_model_dir)


@pytest.mark.integration
def test_adapters_and_base_are_served_under_their_names(adapter_stack, tiny_stack):
    with httpx.Client(timeout=30, trust_env=False) as client:
        listed = {m["id"] for m in client.get(f"{adapter_stack.base_url}/models").json()["data"]}
    assert listed == {adapter_stack.model_name, *ROLES}
    prompt = PROMPTS[0]
    outputs = {name: complete(adapter_stack, name, prompt) for name in adapter_stack.model_names}
    # the base name answers exactly like the plain worker on the same model; every adapter differs from it
    assert outputs[adapter_stack.model_name] == complete(tiny_stack, tiny_stack.model_name, prompt)
    assert len({outputs[r] for r in ROLES} | {outputs[adapter_stack.model_name]}) == 4, outputs


@pytest.mark.integration
def test_concurrent_mixed_adapter_requests_equal_one_by_one(adapter_stack):
    names = adapter_stack.model_names
    requests = [(names[i % len(names)], PROMPTS[i % len(PROMPTS)], i % 3 == 0) for i in range(16)]
    alone = [complete(adapter_stack, name, prompt, direct) for name, prompt, direct in requests]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda r: complete(adapter_stack, *r), requests))
    assert together == alone
    assert len(set(alone)) > len(PROMPTS)  # the same prompt gets different answers from different adapters


@pytest.mark.integration
def test_worker_memory_stays_near_one_base_model(adapter_stack, tiny_stack):
    def rss(stack: FastChatStack) -> int:
        return psutil.Process(stack.pids["worker"]).memory_info().rss

    # four served names on one set of base weights cost about what one plain worker costs
    assert rss(adapter_stack) < 1.5 * rss(tiny_stack)


@pytest.mark.integration
def test_run_with_a_served_group_binds_each_role_to_its_adapter(adapter_stack, role_adapters, tmp_path):
    import subprocess
    import sys

    from autoact.agent_options import agent_from_args
    from autoact.cli import build_parser
    from tasks import get_task
    from tests.support.builders import ROWS

    group_dir = role_adapters["plan"].parent
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    argv = ["--task", "hotpotqa", "--base-url", adapter_stack.base_url, "--group", str(group_dir),
            "--max-steps", "2", "--data", str(data), "--id", "q1"]
    args = build_parser().parse_args(["run", *argv])
    ctx = agent_from_args(args, get_task("hotpotqa"), ROWS).context
    assert (ctx.plan.model.name, ctx.tool.model.name, ctx.reflect.model.name) == ROLES
    assert (ctx.plan.role, ctx.tool.role, ctx.reflect.role) == ROLES  # trained agents get their role prompts
    done = subprocess.run([sys.executable, "-m", "autoact", "run", *argv], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and "Answer:" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def test_a_relative_log_dir_is_made_absolute(tiny_model_dir, role_adapters, monkeypatch, tmp_path):
    # the worker runs inside the log directory, so a relative adapter path would point nowhere
    monkeypatch.chdir(tmp_path)
    stack = FastChatStack(resolve_model(str(tiny_model_dir)), log_dir=Path("logs"), adapters=role_adapters)
    assert stack.log_dir == tmp_path / "logs"
