"""Stacked LoRA: each row of a batch gets its own adapter's update (or none), as a plain per-row LoRA would."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from serving.stacked_lora import (
    BASE_ADAPTER,
    RowAdapters,
    install_stacked_lora,
    lora_update,
    with_lora,
)

IN, HIDDEN, OUT = 8, 6, 5


def tiny_peft_model() -> tuple[nn.Module, nn.Sequential]:
    """Two linear layers; adapter `alpha` (rank 2) on both, `beta` (rank 3) on the first only."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"],
                                            init_lora_weights=False), adapter_name="alpha")
    model.add_adapter("beta", LoraConfig(r=3, lora_alpha=3, target_modules=["0"], init_lora_weights=False))
    return model, base


def plain_lora_layer(layer: nn.Module, adapter: str | None, x: torch.Tensor) -> torch.Tensor:
    """One row through one LoRA linear layer: W·x + b + scaling·B·A·x, or W·x + b without an adapter."""
    out = layer.base_layer(x)
    if adapter is not None and adapter in layer.lora_A:
        a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
        out = out + layer.scaling[adapter] * (x @ a.T @ b.T)
    return out


def plain_forward(seq: nn.Sequential, adapters: list[str | None], x: torch.Tensor) -> torch.Tensor:
    rows = []
    for row, adapter in zip(x, adapters):
        h = torch.relu(plain_lora_layer(seq[0], adapter, row))
        rows.append(plain_lora_layer(seq[2], adapter, h))
    return torch.stack(rows)


@pytest.fixture(scope="module")
def stacked() -> tuple[nn.Module, nn.Sequential, RowAdapters]:
    model, seq = tiny_peft_model()
    rows = install_stacked_lora(model, ["alpha", "beta"])
    return model, seq, rows


@pytest.mark.parametrize("names", [
    [BASE_ADAPTER, "alpha", "beta", "alpha", BASE_ADAPTER],  # mixed, with rows of the base model
    ["beta", "alpha"],
    ["alpha", "alpha", "alpha"],  # uniform
    ["beta", "beta"],  # uniform, an adapter missing from the second layer
    [BASE_ADAPTER, BASE_ADAPTER],  # uniform base model: no update at all
])
def test_matches_per_row_lora(stacked, names: list[str]) -> None:
    """The stacked forward equals computing each row alone with its own adapter (none for the base)."""
    model, seq, rows = stacked
    torch.manual_seed(1)
    x = torch.randn(len(names), 3, IN)
    rows.set(names)
    with torch.no_grad():
        got = model(x)
        want = plain_forward(seq, [None if n == BASE_ADAPTER else n for n in names], x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_adapters_change_the_output(stacked) -> None:
    """The adapters are not no-ops here, so the comparison above can tell rows apart."""
    model, seq, rows = stacked
    x = torch.randn(1, 2, IN).expand(3, 2, IN).contiguous()
    rows.set([BASE_ADAPTER, "alpha", "beta"])
    with torch.no_grad():
        out = model(x)
        base_only = seq[2].base_layer(torch.relu(seq[0].base_layer(x[:1])))
    torch.testing.assert_close(out[:1], base_only)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    assert not torch.allclose(out[0], out[2])


def test_lora_update_is_none_without_a_change(stacked) -> None:
    """No update for a base-model batch, for an adapter that skips the layer, or for a plain module."""
    _, seq, rows = stacked
    x = torch.randn(2, 1, IN)
    rows.set([BASE_ADAPTER, BASE_ADAPTER])
    assert lora_update(seq[0], x) is None
    rows.set(["beta", "beta"])
    assert lora_update(seq[2], torch.randn(2, 1, HIDDEN)) is None
    assert lora_update(seq[0], x) is not None
    plain = nn.Linear(IN, HIDDEN)
    out = torch.randn(2, 1, HIDDEN)
    assert lora_update(plain, x) is None
    assert with_lora(out, plain, x) is out


def test_mixed_update_zeroes_rows_without_the_layer(stacked) -> None:
    """In a mixed batch, rows of the base model or of an adapter absent from the layer get zeros."""
    _, seq, rows = stacked
    h = torch.randn(3, 2, HIDDEN)
    rows.set([BASE_ADAPTER, "alpha", "beta"])
    update = lora_update(seq[2], h)
    assert update is not None and update.shape == (3, 2, OUT)
    assert torch.count_nonzero(update[0]) == 0 and torch.count_nonzero(update[2]) == 0
    layer = seq[2]
    want = layer.scaling["alpha"] * (h[1] @ layer.lora_A["alpha"].weight.T @ layer.lora_B["alpha"].weight.T)
    torch.testing.assert_close(update[1], want.detach())


def test_row_adapters_index_and_selection() -> None:
    """set() maps names to stacked positions; select() is ones over each row's own rank block."""
    rows = RowAdapters([BASE_ADAPTER, "alpha", "beta"])
    assert rows.uniform == 0 and rows.index.tolist() == []
    rows.set(["beta", BASE_ADAPTER, "alpha"])
    assert rows.index.tolist() == [2, 0, 1] and rows.uniform is None
    sel = rows.select(torch.float32, 2)
    assert sel.shape == (3, 1, 6) and sel.dtype == torch.float32
    assert sel[:, 0].tolist() == [[0, 0, 0, 0, 1, 1], [1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0]]
    assert rows.select(torch.float32, 2) is sel  # built once per forward
    rows.set(["alpha", "alpha"])
    assert rows.uniform == 1 and rows.select(torch.float32, 2)[:, 0].tolist() == [[0, 0, 1, 1, 0, 0]] * 2
    with pytest.raises(KeyError):
        rows.set(["gamma"])


def test_lora_variants_are_refused() -> None:
    """A DoRA adapter cannot be stacked: a ValueError that points to the stock engine."""
    from peft import LoraConfig, get_peft_model

    base = nn.Sequential(nn.Linear(IN, HIDDEN))
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["0"], use_dora=True), adapter_name="dora")
    with pytest.raises(ValueError, match="--engine stock"):
        install_stacked_lora(model, ["dora"])
