"""The key/value cache of the rows in flight, kept in preallocated buffers.

Owns :class:`_BufferLayer` (one layer's buffers, written in place, behind the interface that
transformers' attention expects of a cache layer) and :class:`_Batch` (the rows being
decoded, left-padded to a common width, with their mask and position ids).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from serving.engine_requests import Request


class _BufferLayer:
    """One layer's batch cache as preallocated ``[B, heads, capacity, dim]`` buffers.

    Implements what transformers' cache layers offer the attention code (``update``,
    ``get_seq_length``, ``get_mask_sizes``), but writes each step's keys and values in place
    and returns views, instead of concatenating the whole cache every step. The buffers
    double when full.
    """

    is_sliding = False
    is_compileable = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        self.kbuf, self.vbuf, self.length = keys, values, length
        self.is_initialized = True
        # hand the attention whole buffers (contiguous; columns past ``length`` are zeros the
        # caller's mask hides) instead of views of the columns in use, which matmul copies
        self.whole = False

    @property
    def keys(self) -> torch.Tensor:
        return self.kbuf[:, :, : self.length]

    @property
    def values(self) -> torch.Tensor:
        return self.vbuf[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor,
               cache_kwargs: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n = key_states.shape[-2]
        self.reserve(n)
        self.kbuf[:, :, self.length:self.length + n] = key_states
        self.vbuf[:, :, self.length:self.length + n] = value_states
        self.length += n
        if self.whole:
            return self.kbuf, self.vbuf
        return self.keys, self.values

    def reserve(self, n: int) -> int:
        """Make room for ``n`` more columns; return the capacity."""
        if self.length + n > self.kbuf.shape[2]:
            self.kbuf = _with_capacity(self.kbuf, self.length, 2 * (self.length + n))
            self.vbuf = _with_capacity(self.vbuf, self.length, 2 * (self.length + n))
        return self.kbuf.shape[2]

    def get_seq_length(self, *args: Any) -> int:
        return self.length

    def get_mask_sizes(self, cache_position: torch.Tensor) -> tuple[int, int]:
        return self.length + cache_position.shape[0], 0

    def get_max_cache_shape(self) -> int:
        return -1


def _cache_over(layers: list[_BufferLayer]) -> Any:
    """A transformers cache whose layers are these buffers."""
    from transformers.cache_utils import Cache, DynamicCache

    cache = DynamicCache.__new__(DynamicCache)
    Cache.__init__(cache, layers=layers)  # type: ignore[arg-type]
    return cache


def _with_capacity(buf: torch.Tensor, used: int, capacity: int) -> torch.Tensor:
    out = buf.new_zeros(buf.shape[0], buf.shape[1], capacity, buf.shape[3])
    out[:, :, :used] = buf[:, :, :used]
    return out


class _Batch:
    """The rows in flight and their left-padded key/value cache (right-aligned: every row's
    last token sits in column ``length - 1``)."""

    def __init__(self) -> None:
        self.rows: list[Request] = []
        self.layers: list[_BufferLayer] = []
        self.length = 0  # columns in use
        self.mask = torch.zeros(0, 0, dtype=torch.long)  # [B, length]: 1 real, 0 padding
        self.positions = torch.zeros(0, dtype=torch.long)  # next position id per row

    def __len__(self) -> int:
        return len(self.rows)

    def cache(self) -> Any:
        """A transformers cache over the buffers (the model writes the new step into them)."""
        return _cache_over(self.layers)

    def step_mask(self) -> torch.Tensor:
        """Make room for one more column in every layer and return the additive
        ``[B, 1, 1, capacity]`` mask of the next decoding step: each row sees its real columns
        and the new one; padding and unused capacity are hidden."""
        capacity = 0
        for layer in self.layers:
            capacity = layer.reserve(1)
        visible = torch.zeros(len(self.rows), capacity, dtype=torch.bool)
        visible[:, : self.length] = self.mask.bool()
        visible[:, self.length] = True
        dtype = self.layers[0].kbuf.dtype
        return torch.zeros(visible.shape, dtype=dtype).masked_fill_(~visible, torch.finfo(dtype).min)[:, None, None]

    def add(self, items: list[tuple[Request, list[tuple[torch.Tensor, torch.Tensor]], int]]) -> None:
        """Append prefilled rows (each a request, its cache ``[1, heads, n, dim]`` per layer, and n),
        left-padding them and the rows already here to a common width; one copy per layer."""
        if not items:
            return
        width = max(self.length, *(n for _, _, n in items))
        shift = width - self.length  # existing rows move right when a new row is longer
        old_rows, rows = len(self.rows), len(self.rows) + len(items)
        new_layers = []
        for i in range(len(items[0][1])):
            k0, v0 = items[0][1][i]
            kbuf = k0.new_zeros(rows, k0.shape[1], width + 64, k0.shape[3])
            vbuf = v0.new_zeros(rows, v0.shape[1], width + 64, v0.shape[3])
            if old_rows:
                kbuf[:old_rows, :, shift:width] = self.layers[i].keys
                vbuf[:old_rows, :, shift:width] = self.layers[i].values
            for j, (_, layers, n) in enumerate(items, old_rows):
                kbuf[j, :, width - n:width] = layers[i][0][0]
                vbuf[j, :, width - n:width] = layers[i][1][0]
            new_layers.append(_BufferLayer(kbuf, vbuf, width))
        self.layers = new_layers
        mask = torch.zeros(rows, width, dtype=torch.long)
        if old_rows:
            mask[:old_rows, shift:] = self.mask
        for j, (_, _, n) in enumerate(items, old_rows):
            mask[j, width - n:] = 1
        self.mask = mask
        self.positions = torch.cat([self.positions, torch.tensor([n for _, _, n in items], dtype=torch.long)])
        self.length = width
        self.rows.extend(request for request, _, _ in items)

    def keep(self, keep: list[int]) -> None:
        """Keep only the rows at these indices, and drop columns that are padding in every row."""
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.__init__()  # type: ignore[misc]
            return
        index = torch.tensor(keep, dtype=torch.long)
        mask = self.mask.index_select(0, index)
        first = int(mask.any(0).long().argmax())  # first column some row uses
        if first >= max(64, self.length // 4):  # enough padding on the left to be worth new, narrower buffers
            self.mask = mask[:, first:]
            width = self.length - first
            self.layers = [_BufferLayer(_with_capacity(layer.kbuf.index_select(0, index)[:, :, first:], width,
                                                       width + 64),
                                        _with_capacity(layer.vbuf.index_select(0, index)[:, :, first:], width,
                                                       width + 64),
                                        width)
                           for layer in self.layers]
            self.length = width
        else:  # move the kept rows up within the same buffers: only rows after the first dropped one are copied
            self.mask = mask
            moved = next(i for i, j in enumerate(keep + [-1]) if i != j)
            source = index[moved:]
            for layer in self.layers:
                for buf in (layer.kbuf, layer.vbuf):
                    if len(source):
                        buf[moved:len(keep)] = buf.index_select(0, source)
                layer.kbuf, layer.vbuf = layer.kbuf[:len(keep)], layer.vbuf[:len(keep)]
        self.positions = self.positions.index_select(0, index)
        self.rows = [self.rows[i] for i in keep]
