"""Causal self-attention for training on a CPU: block-causal products, half the work of the full square.

torch's CPU attention kernel (`scaled_dot_product_attention`) runs at a small
fraction of the CPU's matrix-product speed on short training sequences: on the
embedded model (9 query heads over 3 key/value heads, head size 64) at batch 4
and 512 tokens, its forward and backward took a third of a bf16 LoRA step. Here
the queries are cut into blocks of `CHUNK` positions; block `i` multiplies
only with the keys up to its own end (the causal triangle, in blocks: about
half of the square), the causal mask touches only the diagonal block, the query
heads sharing a key/value head are stacked into one product (no copies of keys
and values per head), and the backward recomputes nothing: it reuses the saved
softmax probabilities (bf16 under bf16 autocast: about 12 MB per layer there).
Products run in the value's dtype (bf16 under autocast, fp32 otherwise), with
softmax and its backward computed in fp32 inside torch's kernels; key and value
gradients are summed over the blocks in fp32.

It is the attention of unpadded or right-padded batches (what
`training.sft_data.PairCollator` makes): real tokens never see the padding
after them, so a causal mask is the whole mask. transformers passes no padding
mask to a registered attention, so a trainer using it must pad on the right
(`check_right_padded`). Anything else (a cache offset, attention dropout, a
sliding window, logit soft-capping, an explicit mask) goes to transformers'
SDPA attention.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CHUNK", "NAME", "check_right_padded", "chunked_causal_attention", "register"]

NAME = "autoact_chunked_causal"
CHUNK = 64  # query positions per block (64 measured fastest at 512 tokens, bf16 and fp32)


class _BlockCausal(torch.autograd.Function):
    """Attention of `q` [B, KV, G, L, D] over `k`, `v` [B, KV, L, D], causal, in blocks of queries."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scaling: float,
                chunk: int) -> torch.Tensor:
        batch, kv_heads, groups, length, dim = q.shape
        q = q * scaling
        out = torch.empty_like(q)
        above = torch.ones(chunk, chunk, dtype=torch.bool).triu(1)
        probs = []
        for start in range(0, length, chunk):
            end = min(length, start + chunk)
            rows = end - start
            scores = torch.matmul(q[:, :, :, start:end].reshape(batch, kv_heads, groups * rows, dim),
                                  k[:, :, :end].transpose(-1, -2))
            diagonal = scores.view(batch, kv_heads, groups, rows, end)[..., start:end]
            diagonal.masked_fill_(above[:rows, :rows], float("-inf"))
            p = torch.softmax(scores, dim=-1)  # fp32 inside the kernel, stored in the products' dtype
            out[:, :, :, start:end] = torch.matmul(p, v[:, :, :end]).view(batch, kv_heads, groups, rows, dim)
            probs.append(p)
        ctx.save_for_backward(q, k, v, *probs)
        ctx.chunk, ctx.scaling = chunk, scaling
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, *probs = ctx.saved_tensors
        chunk = ctx.chunk
        batch, kv_heads, groups, length, dim = q.shape
        grad_out = grad_out.to(q.dtype)
        grad_q = torch.empty_like(q)
        grad_k = torch.zeros(k.shape, dtype=torch.float32)
        grad_v = torch.zeros(v.shape, dtype=torch.float32)
        for p, start in zip(probs, range(0, length, chunk)):
            end = min(length, start + chunk)
            rows = end - start
            d_out = grad_out[:, :, :, start:end].reshape(batch, kv_heads, groups * rows, dim)
            grad_v[:, :, :end] += torch.matmul(p.transpose(-1, -2), d_out)
            d_scores = torch.ops.aten._softmax_backward_data(torch.matmul(d_out, v[:, :, :end].transpose(-1, -2)),
                                                             p, -1, p.dtype)
            grad_q[:, :, :, start:end] = torch.matmul(d_scores, k[:, :, :end]).view(batch, kv_heads, groups, rows,
                                                                                     dim)
            grad_k[:, :, :end] += torch.matmul(d_scores.transpose(-1, -2),
                                               q[:, :, :, start:end].reshape(batch, kv_heads, groups * rows, dim))
        return grad_q * ctx.scaling, grad_k.to(k.dtype), grad_v.to(v.dtype), None, None


def _sdpa(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    return sdpa_attention_forward(*args, **kwargs)


def chunked_causal_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                             **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: `query` [B, H, L, D], `key`/`value` [B, KV, L, D] → [B, L, H, D]."""
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    plain = (attention_mask is None and key.shape[2] == length and not dropout and heads % kv_heads == 0
             and getattr(module, "is_causal", True) and kwargs.get("sliding_window") is None
             and kwargs.get("softcap") is None and kwargs.get("s_aux") is None)
    if not plain:
        return _sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    dtype = value.dtype  # bf16 under autocast (the projections' output), else the model's dtype
    with torch.autocast(query.device.type, enabled=False):
        out = _BlockCausal.apply(query.to(dtype).reshape(batch, kv_heads, heads // kv_heads, length, dim),
                                 key.to(dtype).contiguous(), value.contiguous(),
                                 dim ** -0.5 if scaling is None else scaling, CHUNK)
    return out.view(batch, heads, length, dim).transpose(1, 2).contiguous(), None


def register() -> str:
    """Make :func:`chunked_causal_attention` selectable (`attn_implementation=NAME`); return its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, chunked_causal_attention)
    return NAME


def check_right_padded(attention_mask: torch.Tensor) -> None:
    """Refuse a batch with padding before a real token (the attention above assumes right padding)."""
    if attention_mask.dim() == 2 and bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
        raise ValueError("chunked causal attention needs right-padded batches (padding after the tokens); "
                         "use attention='sdpa' for other layouts")
