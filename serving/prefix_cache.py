"""Reuse of prompt key/value caches across requests that share a prefix.

Owns :class:`PrefixCache` (recent prompts' caches per adapter, least recently used dropped
first, bounded in tokens) and its entries.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class _PrefixEntry:
    ids: tuple[int, ...]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # [1, heads, len, dim] per layer
    logprobs: list[float | None] | None  # prompt logprobs (first is None), when computed


class PrefixCache:
    """Key/value caches of recent prompts, per adapter, reused for prompts sharing a prefix.

    Bounded by ``max_tokens`` cached tokens in all; the least recently used entries go first.
    Entries are never modified in place (the model appends by concatenation).
    """

    def __init__(self, max_tokens: int = 16384, min_reuse: int = 16) -> None:
        self.max_tokens = max_tokens
        self.min_reuse = min_reuse
        self._entries: OrderedDict[tuple[str, tuple[int, ...]], _PrefixEntry] = OrderedDict()
        self._tokens = 0
        self.hits = 0
        self.reused_tokens = 0

    def lookup(self, adapter: str, ids: list[int], need_logprobs: bool) -> tuple[_PrefixEntry | None, int]:
        """The entry sharing the longest prefix with ``ids`` and how many tokens may be reused.

        At most ``len(ids) - 1`` tokens are reused, and one less than the common prefix, so
        the logits of the last reused position (which predict the first new token) are
        computed afresh.
        """
        best, best_len = None, 0
        for (name, key), entry in self._entries.items():
            if name != adapter or (need_logprobs and entry.logprobs is None):
                continue
            common = _common_prefix(key, ids)
            if common > best_len:
                best, best_len = entry, common
        reuse = min(best_len, len(ids)) - 1
        if best is None or reuse < self.min_reuse:
            return None, 0
        self._entries.move_to_end((adapter, best.ids))
        self.hits += 1
        self.reused_tokens += reuse
        return best, reuse

    def store(self, adapter: str, entry: _PrefixEntry) -> None:
        if self.max_tokens <= 0 or len(entry.ids) > self.max_tokens:
            return
        key = (adapter, entry.ids)
        old = self._entries.pop(key, None)
        if old is not None:
            self._tokens -= len(old.ids)
        self._entries[key] = entry
        self._tokens += len(entry.ids)
        while self._tokens > self.max_tokens:
            _, dropped = self._entries.popitem(last=False)
            self._tokens -= len(dropped.ids)

    def __len__(self) -> int:
        return len(self._entries)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
