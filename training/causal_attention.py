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

Padding and cached keys: it registers transformers' SDPA mask function under its
name, so an unpadded batch comes with no mask (the diagonal blocks are masked
as above) and a padded one, or queries after cached keys, with a bool mask that
each block applies to its slice; a query with no key to read (left padding)
gets the lowest finite score on every key instead of -inf, so nothing turns
into NaN. Attention dropout, a sliding window, logit soft-capping or attention
sinks go to transformers' SDPA attention.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CHUNK", "NAME", "chunked_causal_attention", "register"]

NAME = "autoact_chunked_causal"
CHUNK = 64  # query positions per block (64 measured fastest at 512 tokens, bf16 and fp32)


def _block_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: torch.Tensor | None, scaling: float,
                   chunk: int, keep: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Causal attention of `q` [B, KV, G, Lq, D] over `k`, `v` [B, KV, Lk, D], in blocks of queries.

    The queries are the last Lq of the Lk positions (Lk - Lq keys come before them, from a
    cache). `blocked` is None (causal only) or a bool [B, 1, Lq, Lk] that is True where a query
    must not read a key (causal and padding together). Returns the output, the scaled queries
    and, if `keep`, each block's probabilities (for the backward).
    """
    batch, kv_heads, groups, length, dim = q.shape
    offset = k.shape[2] - length
    q = q * scaling
    out = torch.empty_like(q)
    above = torch.ones(chunk, chunk, dtype=torch.bool).triu(1)
    probs = []
    for start in range(0, length, chunk):
        end = min(length, start + chunk)
        rows, keys = end - start, offset + end
        scores = torch.matmul(q[:, :, :, start:end].reshape(batch, kv_heads, groups * rows, dim),
                              k[:, :, :keys].transpose(-1, -2))
        blocks = scores.view(batch, kv_heads, groups, rows, keys)
        if blocked is None:  # only the diagonal block has keys after its queries
            blocks[..., offset + start:].masked_fill_(above[:rows, :rows], float("-inf"))
        else:  # the lowest finite number: a query with no key to read (padding) averages, never NaN
            blocks.masked_fill_(blocked[:, :, start:end, :keys].unsqueeze(2), torch.finfo(scores.dtype).min)
        p = torch.softmax(scores, dim=-1)  # fp32 inside the kernel, stored in the products' dtype
        out[:, :, :, start:end] = torch.matmul(p, v[:, :, :keys]).view(batch, kv_heads, groups, rows, dim)
        if keep:
            probs.append(p)
    return out, q, probs


class _BlockCausal(torch.autograd.Function):
    """`_block_forward` with a backward that reuses the saved probabilities."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: torch.Tensor | None,
                scaling: float, chunk: int) -> torch.Tensor:
        out, q, probs = _block_forward(q, k, v, blocked, scaling, chunk, keep=True)
        ctx.save_for_backward(q, k, v, *probs)
        ctx.chunk, ctx.scaling = chunk, scaling
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, *probs = ctx.saved_tensors
        chunk = ctx.chunk
        batch, kv_heads, groups, length, dim = q.shape
        offset = k.shape[2] - length
        grad_out = grad_out.to(q.dtype)
        grad_q = torch.empty_like(q)
        grad_k = torch.zeros(k.shape, dtype=torch.float32)
        grad_v = torch.zeros(v.shape, dtype=torch.float32)
        for p, start in zip(probs, range(0, length, chunk)):
            end = min(length, start + chunk)
            rows, keys = end - start, offset + end
            d_out = grad_out[:, :, :, start:end].reshape(batch, kv_heads, groups * rows, dim)
            grad_v[:, :, :keys] += torch.matmul(p.transpose(-1, -2), d_out)
            d_scores = torch.ops.aten._softmax_backward_data(torch.matmul(d_out, v[:, :, :keys].transpose(-1, -2)),
                                                             p, -1, p.dtype)
            grad_q[:, :, :, start:end] = torch.matmul(d_scores, k[:, :, :keys]).view(batch, kv_heads, groups, rows,
                                                                                      dim)
            grad_k[:, :, :keys] += torch.matmul(d_scores.transpose(-1, -2),
                                                q[:, :, :, start:end].reshape(batch, kv_heads, groups * rows, dim))
        return grad_q * ctx.scaling, grad_k.to(k.dtype), grad_v.to(v.dtype), None, None, None


def _sdpa(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    return sdpa_attention_forward(*args, **kwargs)


def chunked_causal_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                             **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: `query` [B, H, Lq, D], `key`/`value` [B, KV, Lk, D] → [B, Lq, H, D].

    `attention_mask` is what transformers' SDPA mask function makes: None (causal, Lq == Lk) or a
    bool [B, 1, Lq, Lk], True where a query may read a key (an additive float mask also works).
    """
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    plain = (not dropout and heads % kv_heads == 0 and key.shape[2] >= length
             and (attention_mask is not None or key.shape[2] == length)
             and getattr(module, "is_causal", True) and kwargs.get("sliding_window") is None
             and kwargs.get("softcap") is None and kwargs.get("s_aux") is None)
    if not plain:
        return _sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    blocked = None
    if attention_mask is not None:
        blocked = ~attention_mask if attention_mask.dtype == torch.bool else attention_mask < 0
        blocked = blocked[..., : key.shape[2]]
    dtype = value.dtype  # bf16 under autocast (the projections' output), else the model's dtype
    with torch.autocast(query.device.type, enabled=False):
        args = (query.to(dtype).reshape(batch, kv_heads, heads // kv_heads, length, dim), key.to(dtype).contiguous(),
                value.contiguous(), blocked, dim ** -0.5 if scaling is None else scaling, CHUNK)
        out = _BlockCausal.apply(*args) if torch.is_grad_enabled() else _block_forward(*args, keep=False)[0]
    return out.view(batch, heads, length, dim).transpose(1, 2).contiguous(), None


def register() -> str:
    """Make :func:`chunked_causal_attention` selectable (`attn_implementation=NAME`); return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, chunked_causal_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # None when nothing is padded, else a bool mask
    return NAME
