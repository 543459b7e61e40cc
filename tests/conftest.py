"""Shared fixtures: a tiny random SmolLM2-shaped model and one FastChat stack serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.launcher import FastChatStack, free_port
from serving.model_store import load_smollm2_tokenizer, resolve_model

TINY_MODEL_NAME = "tiny-smol"  # must not match any FastChat model adapter by name

CHATML_FALLBACK = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer, saved as an HF directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_smollm2_tokenizer()
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_FALLBACK
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("models") / TINY_MODEL_NAME
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def gqa_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama with 6 query heads over 2 key/value heads, SmolLM2's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_smollm2_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("models") / "tiny-gqa"
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_stack(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastChatStack]:
    """A running FastChatStack serving the tiny model on a free loopback port, no API key.

    Model name: ``tiny-smol``; template: our ChatML one; the batched engine in fp32. Use
    ``stack.base_url``.
    """
    stack = FastChatStack(
        resolve_model(str(tiny_model_dir)),
        port=free_port(),
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        startup_timeout=180,
        dtype="float32",  # tests compare served numbers with fp32 computations
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
