"""Training attention (training/causal_attention.py) and LoRA dropout from packed bits (training/lora_dropout.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.causal_attention import (
    CHUNK,
    _BlockCausal,
    chunked_causal_attention,
    register,
)
from training.lora_dropout import BitDropout, use_bit_dropout


def _attend(fn, q, k, v, grad):
    """Output and the gradients of q, k, v of `fn(q, k, v)` against `grad`, in float64."""
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = fn(q, k, v)
    out.backward(grad.to(out.dtype))
    return [t.double() for t in (out, q.grad, k.grad, v.grad)]


def _ours(q, k, v):
    """Through the attention interface: [B, H, L, D] in, back to [B, H, L, D]."""
    return chunked_causal_attention(torch.nn.Module(), q, k, v, None, scaling=q.shape[-1] ** -0.5)[0].transpose(1, 2)


def _sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


@pytest.mark.parametrize("length", [CHUNK * 2, CHUNK * 2 + 23, 7])
def test_block_causal_attention_equals_sdpa_forward_and_backward(length):
    """fp32: the same output and q/k/v gradients as torch's causal attention, with grouped query
    heads, for lengths that fill the blocks, leave a short last block, or fit in one."""
    torch.manual_seed(length)
    q, k, v = torch.randn(2, 6, length, 16), torch.randn(2, 2, length, 16), torch.randn(2, 2, length, 16)
    grad = torch.randn(2, 6, length, 16)
    for ours, ref in zip(_attend(_ours, q, k, v, grad), _attend(_sdpa, q, k, v, grad)):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_block_causal_attention_in_bf16_is_as_accurate_as_sdpa():
    """bf16 (as under autocast): against a float64 reference, no worse than torch's kernel in bf16."""
    torch.manual_seed(0)
    shapes = ((2, 6, 200, 32), (2, 2, 200, 32), (2, 2, 200, 32))
    q, k, v = (torch.randn(s) for s in shapes)
    grad = torch.randn(2, 6, 200, 32)
    exact = _attend(_sdpa, q.double(), k.double(), v.double(), grad)
    ours = _attend(_ours, q.bfloat16(), k.bfloat16(), v.bfloat16(), grad)
    theirs = _attend(_sdpa, q.bfloat16(), k.bfloat16(), v.bfloat16(), grad)
    for name, e, o, t in zip(("out", "dq", "dk", "dv"), exact, ours, theirs):
        assert (o - e).abs().max() <= 2 * (t - e).abs().max() + 1e-3, name


def test_the_diagonal_block_is_masked():
    """A query never reads a later key: changing the last key and value leaves every earlier output."""
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 2, 100, 8), torch.randn(1, 1, 100, 8), torch.randn(1, 1, 100, 8)
    before = _BlockCausal.apply(q.view(1, 1, 2, 100, 8), k, v, None, 0.3, CHUNK)
    k[:, :, -1], v[:, :, -1] = 50.0, 50.0
    after = _BlockCausal.apply(q.view(1, 1, 2, 100, 8), k, v, None, 0.3, CHUNK)
    torch.testing.assert_close(after[..., :-1, :], before[..., :-1, :])
    assert not torch.allclose(after[..., -1, :], before[..., -1, :])


def test_masks_and_cached_keys_match_sdpa():
    """With a padding mask (left and right padding) and queries after cached keys, as transformers'
    mask function makes it: the same output and gradients as torch's attention with that mask, and a
    query with no key to read (a left-padded row's padding) comes out finite."""
    torch.manual_seed(4)
    rows, cached, new = 3, 20, 150
    keys = torch.ones(rows, cached + new, dtype=torch.bool)
    keys[0, :5] = False  # a shorter cached prefix (left padding)
    keys[1, cached:cached + 30] = False  # left padding of the new tokens
    keys[2, -17:] = False  # right padding
    causal = torch.ones(new, cached + new, dtype=torch.bool).tril(cached)
    mask = (causal[None] & keys[:, None, :])[:, None]  # [B, 1, new, cached + new]
    q = torch.randn(rows, 6, new, 16)
    k, v = torch.randn(rows, 2, cached + new, 16), torch.randn(rows, 2, cached + new, 16)
    grad = torch.randn(rows, 6, new, 16)
    grad[1, :, :30] = 0  # padded queries feed nothing (as in a model, where no loss reaches them)
    module = torch.nn.Module()

    def ours(q, k, v):
        return chunked_causal_attention(module, q, k, v, mask, scaling=0.25)[0].transpose(1, 2)

    def theirs(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, mask, scale=0.25, enable_gqa=True)

    mine, ref = _attend(ours, q, k, v, grad), _attend(theirs, q, k, v, grad)
    assert torch.isfinite(mine[0]).all()
    real = torch.ones(rows, new, dtype=torch.bool)
    real[1, :30] = False
    torch.testing.assert_close(mine[0].transpose(1, 2)[real], ref[0].transpose(1, 2)[real], rtol=1e-5, atol=1e-5)
    for got, want in zip(mine[1:], ref[1:]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with torch.inference_mode():  # as the model runs for inference: nothing kept for a backward
        torch.testing.assert_close(ours(q, k, v).double(), mine[0])
    mask[1, :, :30, :cached] = False  # row 1 without a cached prefix: its first 30 queries read nothing
    assert all(torch.isfinite(t).all() for t in _attend(ours, q, k, v, grad))


def test_other_layouts_go_to_sdpa():
    """Attention dropout, or keys beyond the queries with no mask to place them, use torch's kernel."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module = torch.nn.Module()
    torch.manual_seed(2)
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 9, 8), torch.randn(1, 2, 9, 8)
    torch.testing.assert_close(chunked_causal_attention(module, q, k, v, None, scaling=0.5)[0],
                               sdpa_attention_forward(module, q, k, v, None, scaling=0.5)[0])
    q, k, v = torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    torch.manual_seed(3)
    ours = chunked_causal_attention(module, q, k, v, None, scaling=0.5, dropout=0.5)[0]
    torch.manual_seed(3)
    torch.testing.assert_close(ours, sdpa_attention_forward(module, q, k, v, None, scaling=0.5, dropout=0.5)[0])


@pytest.mark.parametrize("padding", ["right", "left"])
def test_a_model_trains_alike_with_either_attention(gqa_model_dir, padding):
    """The tiny grouped-query Llama with LoRA on a padded batch: the same loss over the real tokens and
    the same LoRA gradients with the block-causal attention as with transformers' SDPA attention."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    ids = torch.randint(10, 4000, (3, 150))
    mask = torch.ones_like(ids)
    mask[1, 120:], mask[2, 40:] = 0, 0
    labels = ids.masked_fill(mask == 0, -100)
    if padding == "left":  # a row's first token is predicted from padding, which reads no key: not scored
        mask = mask.flip(-1)
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, 1:].masked_fill_(mask[:, :-1] == 0, -100)
    results = []
    for attention in ("sdpa", register()):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(gqa_model_dir, dtype=torch.float32,
                                                     attn_implementation=attention)
        model = get_peft_model(model, LoraConfig(r=4, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((loss.detach(), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == 8
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6)


def test_bit_dropout_drops_at_the_rate_in_every_lane_and_keeps_the_mean():
    """Each of the four 16-bit lanes of a random word drops at rate p (a biased lane, as the top one of
    a non-negative int64 would be, shows here), kept values are scaled so the mean is kept."""
    torch.manual_seed(0)
    drop = BitDropout(0.1).train()
    x = torch.ones(400_000)
    out = drop(x)
    kept = out != 0
    assert torch.allclose(out[kept], torch.full_like(out[kept], drop.scale))
    sigma = (0.1 * 0.9 / 100_000) ** 0.5
    for lane in range(4):
        assert abs((~kept[lane::4]).float().mean().item() - drop.p) < 5 * sigma, lane
    assert abs(out.mean().item() - 1.0) < 0.01
    assert drop.p == pytest.approx(0.1, abs=1e-5) and drop.scale == pytest.approx(1 / (1 - drop.p))


def test_bit_dropout_follows_the_seed_passes_gradients_and_is_off_in_eval():
    x = torch.randn(3, 7, 11, requires_grad=True)
    drop = BitDropout(0.3).train()
    torch.manual_seed(5)
    first = drop(x)
    torch.manual_seed(5)
    again = drop(x)
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, drop(x))  # the generator moved on
    first.sum().backward()
    torch.testing.assert_close(x.grad, (first != 0).float() * drop.scale)
    assert drop.eval()(x) is x and BitDropout(0.0).train()(x) is x
    with pytest.raises(ValueError):
        BitDropout(1.0)


def test_lora_layers_get_bit_dropout(gqa_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gqa_model_dir)
    model = get_peft_model(model, LoraConfig(r=4, lora_dropout=0.05, target_modules=["q_proj", "v_proj"]))
    assert use_bit_dropout(model) == 4  # 2 layers × q, v
    drops = [m for m in model.modules() if isinstance(m, BitDropout)]
    assert len(drops) == 4 and all(abs(d.p - 0.05) < 1e-4 for d in drops)
    assert not any(type(m) is torch.nn.Dropout and m.p > 0 for m in model.modules())
    plain = get_peft_model(AutoModelForCausalLM.from_pretrained(gqa_model_dir),
                           LoraConfig(r=4, lora_dropout=0.0, target_modules=["q_proj"]))
    assert use_bit_dropout(plain) == 0  # no dropout, nothing to replace
