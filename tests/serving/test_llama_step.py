"""Fast decoding steps (serving/llama_step.py) and the decode attention of the batched engine.

The engine decodes Llama-family models with its own one-token step; these tests hold it to
transformers' forward (the engine with ``fused_decode=False``) and to FastChat's
``generate_stream``, on a model whose query heads share key/value heads (as SmolLM2's do), with
adapters on every projection, in mixed batches.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from serving.batched_engine import BatchedEngine, run_all
from serving.llama_step import supports
from serving.model_step import _grouped_attention
from tests.support.serving import make_adapter, mixed_requests, same_output


@pytest.fixture(scope="module")
def gqa_adapters(gqa_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gqa-adapters")
    return {name: make_adapter(gqa_model_dir, root / name, seed) for seed, name in ((5, "plan"), (6, "tool"))}


def _requests(n: int, seed: int) -> list[dict]:
    return [{**r, "model": {"tiny": "tiny-gqa"}.get(r["model"], r["model"])} for r in mixed_requests(n, seed)]


def test_fused_steps_match_transformers_and_fastchat(gqa_model_dir, gqa_adapters):
    from fastchat.serve.inference import generate_stream
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    requests = _requests(14, seed=7)
    outputs = {}
    for fused in (True, False):
        with BatchedEngine(gqa_model_dir, gqa_adapters, base_name="tiny-gqa", dtype="float32", max_batch_size=6,
                           fused_decode=fused) as eng:
            assert (eng._llama_step is not None) is fused
            outputs[fused] = run_all(eng, requests)
    tokenizer = AutoTokenizer.from_pretrained(gqa_model_dir)
    models = {"tiny-gqa": AutoModelForCausalLM.from_pretrained(gqa_model_dir).eval()}
    for name, path in gqa_adapters.items():
        models[name] = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(gqa_model_dir), str(path)).eval()
    for request, fused, plain in zip(requests, outputs[True], outputs[False]):
        reference: dict = {}
        for reference in generate_stream(models[request["model"]], tokenizer, dict(request), "cpu", 2048, 2):
            pass
        assert same_output(fused, plain), request
        assert same_output(fused, reference), request
    assert len({o["text"] for o in outputs[True]}) > 3  # the adapters and prompts do make a difference


def test_grouped_attention_equals_eager_attention():
    from transformers.models.llama.modeling_llama import eager_attention_forward

    class Module:
        num_key_value_groups, training = 3, False

    torch.manual_seed(0)
    query, key, value = torch.randn(4, 6, 1, 8), torch.randn(4, 2, 11, 8), torch.randn(4, 2, 11, 8)
    mask = torch.zeros(4, 1, 1, 11)
    mask[1, ..., :5] = torch.finfo(torch.float32).min  # a left-padded row
    ours, _ = _grouped_attention(Module, query, key, value, mask, 0.35)
    theirs, _ = eager_attention_forward(Module, query, key, value, mask, 0.35)
    assert ours.shape == theirs.shape == (4, 1, 6, 8)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_only_plain_llama_decoders_take_the_fused_step():
    from transformers import LlamaConfig, LlamaForCausalLM

    def model(**changes):
        return LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, **changes))

    assert supports(model())
    assert not supports(model(attention_bias=True))
    assert not supports(model(hidden_act="gelu"))
    assert not supports(model(rope_scaling={"rope_type": "linear", "factor": 2.0}))
