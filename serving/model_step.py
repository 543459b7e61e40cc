"""The model forwards of the engine: prompt prefills and batched decoding steps.

Owns :class:`ModelStepMixin` (a prefill of a group of prompts over their reused prefixes, one
decoding step for every row in flight), the grouped-query decode attention registered with
transformers, and the chunked computation of prompt logprobs from final hidden states.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from serving.engine_requests import _plain_greedy
from serving.kv_buffers import _Batch, _BufferLayer, _cache_over
from serving.prefix_cache import PrefixCache, _PrefixEntry

if TYPE_CHECKING:
    from serving.scheduler import _Ready
    from serving.stacked_lora import RowAdapters


class ModelStepMixin:
    """The engine's forwards through the model.

    Mixed into :class:`serving.batched_engine.BatchedEngine`, whose attributes it reads;
    ``_take_token`` comes from :class:`serving.engine_requests.OutputMixin`.
    """

    model: Any
    dtype: torch.dtype
    row_adapters: RowAdapters | None
    prefix_cache: PrefixCache
    decode_attention: str
    stats: dict[str, float]
    _batch: _Batch
    _llama_step: Any
    _final_norm: torch.nn.Module
    _lm_head: torch.nn.Module
    _layers: int
    _kv_shape: tuple[int, int]

    @contextmanager
    def _attention(self, implementation: str) -> Iterator[None]:
        """Run the model with another attention implementation (read by each layer at call time)."""
        config = self.model.config
        before = config._attn_implementation
        config._attn_implementation = implementation
        try:
            yield
        finally:
            config._attn_implementation = before

    def _prefill(self, group: list[_Ready]) -> None:
        """Run the prompts of ``group`` in one forward.

        Row b reuses ``r_b`` cached prefix tokens and computes its ``n_b`` new ones. Cached
        prefixes are left-padded to the longest (``R`` columns), new tokens to the widest
        (``W`` columns) after them; the attention mask hides the padding, and position ids
        count real tokens only.
        """
        prior_len = max(reuse for *_, reuse in group)
        width = max(len(r.input_ids) - reuse for r, _, _, reuse in group)
        rows = len(group)
        need_logprobs = any(s.logprobs is not None for _, s, _, _ in group)
        tokens = torch.zeros(rows, width, dtype=torch.long)
        mask = torch.zeros(rows, prior_len + width, dtype=torch.long)
        positions = torch.zeros(rows, width, dtype=torch.long)
        for b, (r, _, _, reuse) in enumerate(group):
            new = r.input_ids[reuse:]
            tokens[b, width - len(new):] = torch.tensor(new)
            mask[b, prior_len - reuse:prior_len] = 1
            mask[b, prior_len + width - len(new):] = 1
            positions[b, width - len(new):] = torch.arange(reuse, reuse + len(new))
        # one buffer per layer holds the reused prefixes and receives the new keys and values in place
        heads, dim = self._kv_shape
        buffers = []
        for i in range(self._layers):
            k = torch.zeros(rows, heads, prior_len + width, dim, dtype=self.dtype)
            v = torch.zeros(rows, heads, prior_len + width, dim, dtype=self.dtype)
            for b, (_, _, entry, reuse) in enumerate(group):
                if entry is not None and reuse:
                    k[b, :, prior_len - reuse:prior_len] = entry.layers[i][0][0, :, :reuse]
                    v[b, :, prior_len - reuse:prior_len] = entry.layers[i][1][0, :, :reuse]
            buffers.append(_BufferLayer(k, v, prior_len))
        # only the last position's logits come out of the model; prompt logprobs are computed from
        # the final hidden states a chunk at a time (full logits of a long prompt take gigabytes)
        kwargs: dict[str, Any] = {"logits_to_keep": 1}
        if rows > 1 or prior_len:
            kwargs.update(attention_mask=mask, position_ids=positions)
        if self.row_adapters is not None:
            self.row_adapters.set([r.adapter for r, *_ in group])
        with _capture_output(self._final_norm if need_logprobs else None) as hidden:
            out = self.model(input_ids=tokens, past_key_values=_cache_over(buffers), use_cache=True, **kwargs)
        self.stats["prefill_forwards"] += 1
        layers_all = [(layer.keys, layer.values) for layer in buffers]
        joining = []
        for b, (request, s, entry, reuse) in enumerate(group):
            n = len(request.input_ids)
            start = prior_len + width - (n - reuse)
            if rows == 1 and not prior_len:
                layers = layers_all
            else:
                layers = [(torch.cat([k[b:b + 1, :, prior_len - reuse:prior_len], k[b:b + 1, :, start:]], dim=2),
                           torch.cat([v[b:b + 1, :, prior_len - reuse:prior_len], v[b:b + 1, :, start:]], dim=2))
                          for k, v in layers_all]
            prompt_logprobs: list[float | None] | None = None
            if s.logprobs is not None:
                head = entry.logprobs[: reuse + 1] if entry else [None]  # type: ignore[index]
                states = hidden[0][b, width - (n - reuse):-1]
                rest = _token_logprobs(states, request.input_ids[reuse + 1:], self._lm_head) if len(states) else []
                prompt_logprobs = list(head) + rest
            request.token_logprobs = list(prompt_logprobs) if prompt_logprobs is not None else [None]
            self.prefix_cache.store(request.adapter, _PrefixEntry(tuple(request.input_ids), layers, prompt_logprobs))
            self.stats["prefills"] += 1
            self.stats["prefill_tokens"] += n - reuse
            self._take_token(request, s, out.logits[b, -1])
            if not request.done:
                joining.append((request, layers, n))
        self._batch.add(joining)

    def _decode_step(self) -> None:
        batch = self._batch
        if self.row_adapters is not None:
            self.row_adapters.set([row.adapter for row in batch.rows])
        additive = batch.step_mask()  # handed to the attention as it is (no per-layer mask building)
        if self._llama_step is not None:
            logits = self._llama_step(torch.tensor([row.output_ids[-1] for row in batch.rows]), batch.positions,
                                      batch.layers, additive)
        else:
            for layer in batch.layers:
                layer.whole = True
            try:
                with self._attention(self.decode_attention):
                    out = self.model(input_ids=torch.tensor([[row.output_ids[-1]] for row in batch.rows]),
                                     past_key_values=batch.cache(), use_cache=True, attention_mask=additive,
                                     position_ids=batch.positions.unsqueeze(1))
            finally:
                for layer in batch.layers:
                    layer.whole = False
            logits = out.logits[:, -1]
        mask = torch.cat([batch.mask, torch.ones(len(batch), 1, dtype=torch.long)], dim=1)
        batch.length += 1
        batch.mask = mask
        batch.positions = batch.positions + 1
        self.stats["steps"] += 1
        self.stats["batched_rows"] += len(batch)
        # plain greedy rows (no logits processor, no logprobs): their tokens in one batched top-k
        plain = [i for i, row in enumerate(batch.rows) if _plain_greedy(row.settings)]
        chosen = dict(zip(plain, torch.topk(logits[plain].float(), 2, dim=-1).indices[:, 0].tolist())) if plain else {}
        for i, row in enumerate(batch.rows):
            if not row.done and not row.cancelled.is_set():
                row.step += 1
                self._take_token(row, row.settings, logits[i], chosen.get(i))  # type: ignore[arg-type]


def _grouped_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0,
                       **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' eager attention without copying keys and values for each query head.

    ``query`` is ``[B, heads, q, dim]``, ``key``/``value`` ``[B, kv_heads, T, dim]``; query head
    ``h`` reads key/value head ``h // groups`` (what ``repeat_kv`` expands), so the query heads
    of one key/value head are stacked as rows of one product. Same products, softmax in fp32.
    """
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    q = query.reshape(batch, kv_heads, groups * q_len, dim)
    weights = torch.matmul(q, key.transpose(2, 3)) * scaling
    if attention_mask is not None:  # [B, 1, q, T]: the same for every head
        mask = attention_mask[:, :, :, : key.shape[-2]]
        weights = (weights.view(batch, kv_heads, groups, q_len, -1) + mask.unsqueeze(2)).view_as(weights)
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights, value).view(batch, heads, q_len, dim)
    return out.transpose(1, 2).contiguous(), None


def _register_grouped_attention() -> str:
    """Make :func:`_grouped_attention` selectable as an attention implementation; return its name."""
    from transformers import AttentionInterface

    name = "autoact_grouped"
    AttentionInterface.register(name, _grouped_attention)
    return name


@contextmanager
def _capture_output(module: torch.nn.Module | None) -> Iterator[list[torch.Tensor]]:
    """Collect what ``module`` returns during the block (nothing when it is None)."""
    seen: list[torch.Tensor] = []
    if module is None:
        yield seen
        return
    handle = module.register_forward_hook(lambda _m, _i, output: seen.append(output))
    try:
        yield seen
    finally:
        handle.remove()


def _token_logprobs(states: torch.Tensor, ids: list[int], head: torch.nn.Module, chunk: int = 256) -> list[float]:
    """``log_softmax(head(states))[t, ids[t]]`` for every position, in fp32, a chunk of positions at
    a time (a 2,000-token prompt's full fp32 logits would take 400 MB)."""
    out: list[float] = []
    targets = torch.tensor(ids).unsqueeze(-1)
    for start in range(0, states.shape[0], chunk):
        part = head(states[start:start + chunk]).float()
        picked = part.gather(-1, targets[start:start + chunk]).squeeze(-1)
        out.extend((picked - torch.logsumexp(part, dim=-1)).tolist())
    return out
