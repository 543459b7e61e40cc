"""One-token decoding steps for Llama-family decoders, without transformers' per-layer machinery.

A decoding step of a small model on a CPU is mostly fixed cost per layer: at 32 rows the
30 layers of SmolLM2-135M spend as much time in Python dispatch, mask and cache bookkeeping and
many small kernels as in their matrix products. :class:`LlamaStep` runs the same computation
as transformers' ``LlamaForCausalLM`` for one new token per row, reading and writing the
engine's key/value buffers directly:

- the query, key and value projections are one matrix product, and so are the gate and up
  projections of the MLP (the modules' own weights become views of the fused matrices, so
  memory does not grow and the prompt path through transformers sees the same numbers);
- the rotary angles and the attention mask are computed once per step, not once per layer;
- attention multiplies each key/value head by the query heads that share it, over the whole
  buffer (the mask hides padding and unused capacity), so nothing is copied;
- the rows' LoRA adapters are added with :func:`serving.stacked_lora.with_lora`.

Norms, activations and the order of every product follow transformers, so outputs match its
forward up to the rounding of fused kernels.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.models.llama.modeling_llama import rotate_half

from serving.stacked_lora import with_lora


def supports(model: Any) -> bool:
    """Whether :class:`LlamaStep` computes what this model's own forward does."""
    config = model.config
    scaling = getattr(config, "rope_scaling", None) or {}
    return (getattr(config, "model_type", None) == "llama"
            and not getattr(config, "attention_bias", False) and not getattr(config, "mlp_bias", False)
            and getattr(config, "hidden_act", None) == "silu"
            and int(getattr(config, "pretraining_tp", 1) or 1) == 1
            and scaling.get("rope_type", scaling.get("type", "default")) == "default")


def _weight(module: Any) -> torch.nn.Parameter:
    return getattr(module, "base_layer", module).weight


def _fuse(modules: list[Any]) -> torch.Tensor:
    """One ``[sum(out), in]`` matrix of the modules' weights; each module's weight becomes a view of it."""
    fused = torch.cat([_weight(m).detach() for m in modules])
    start = 0
    for m in modules:
        holder = getattr(m, "base_layer", m)
        rows = holder.weight.shape[0]
        holder.weight = torch.nn.Parameter(fused[start:start + rows], requires_grad=False)
        start += rows
    return fused


class _Layer:
    def __init__(self, layer: Any) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.norm_in, self.norm_post = layer.input_layernorm, layer.post_attention_layernorm
        self.projections = (attn.q_proj, attn.k_proj, attn.v_proj)
        self.qkv = _fuse(list(self.projections))
        self.sizes = [_weight(m).shape[0] for m in self.projections]
        self.o_proj = attn.o_proj
        self.gate_up_modules = (mlp.gate_proj, mlp.up_proj)
        self.gate_up = _fuse(list(self.gate_up_modules))
        self.down_proj = mlp.down_proj
        self.scaling = attn.scaling


class LlamaStep:
    """Decode one token for every row of a batch (see the module docstring)."""

    def __init__(self, model: Any) -> None:
        decoder = model.get_decoder()
        config = model.config
        self.embed = decoder.embed_tokens
        self.final_norm = decoder.norm
        self.head = model.get_output_embeddings()
        self.inv_freq = decoder.rotary_emb.inv_freq.float()
        self.rope_scale = float(decoder.rotary_emb.attention_scaling)
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(getattr(config, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.heads)
        self.groups = self.heads // self.kv_heads  # query heads per key/value head
        self.layers = [_Layer(layer) for layer in decoder.layers]

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, caches: list[Any],
                 additive_mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, vocab]`` of the next token.

        ``tokens`` and ``positions`` are ``[B]``; ``caches`` holds each layer's ``kbuf``/``vbuf``
        (``[B, kv_heads, capacity, dim]``, room for one more column) and ``length``, and gets
        the new keys and values; ``additive_mask`` is ``[B, 1, 1, capacity]``.
        """
        rows = tokens.shape[0]
        h = self.embed(tokens[:, None])  # [B, 1, hidden]
        angles = positions[:, None].float() * self.inv_freq[None, :]
        emb = torch.cat((angles, angles), dim=-1)
        cos = (emb.cos() * self.rope_scale).to(h.dtype)[:, None, :]  # [B, 1, dim]: the same for every head
        sin = (emb.sin() * self.rope_scale).to(h.dtype)[:, None, :]
        for layer, cache in zip(self.layers, caches):
            x = layer.norm_in(h)
            qkv = torch.nn.functional.linear(x, layer.qkv)
            q, k, v = (with_lora(part, module, x)
                       for part, module in zip(qkv.split(layer.sizes, dim=-1), layer.projections))
            q = q.view(rows, self.heads, self.head_dim)
            k = k.view(rows, self.kv_heads, self.head_dim)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            column = cache.length
            cache.kbuf[:, :, column] = k
            cache.vbuf[:, :, column] = v.view(rows, self.kv_heads, self.head_dim)
            cache.length = column + 1
            # query head g of key/value head j is head j·groups + g, as transformers' repeat_kv has it
            scores = torch.matmul(q.view(rows, self.kv_heads, self.groups, self.head_dim),
                                  cache.kbuf.transpose(2, 3)) * layer.scaling
            weights = torch.softmax(scores + additive_mask, dim=-1, dtype=torch.float32).to(q.dtype)
            attended = torch.matmul(weights, cache.vbuf).reshape(rows, 1, self.heads * self.head_dim)
            h = h + layer.o_proj(attended)  # a LoRA layer's forward adds its rows' updates
            x = layer.norm_post(h)
            gate, up = (with_lora(part, module, x) for part, module in
                        zip(torch.nn.functional.linear(x, layer.gate_up).chunk(2, dim=-1), layer.gate_up_modules))
            h = h + layer.down_proj(torch.nn.functional.silu(gate) * up)
        return self.head(self.final_norm(h))[:, 0]
