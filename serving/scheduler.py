"""Admission: from the queue of waiting requests to prefilled rows of the batch.

Owns :class:`SchedulerMixin` (when to admit, how many, tokenizing and prefix lookup, grouping
prompts into prefill forwards under a token budget, dropping finished rows) and
:func:`_split_siblings`, which holds back requests that will find their prompt cached once an
earlier one of the same wave is prefilled.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import TYPE_CHECKING, Any

from serving.engine_requests import (
    ERROR_CONTEXT,
    ERROR_INTERNAL,
    Request,
    _Settings,
    _settings,
)
from serving.prefix_cache import PrefixCache, _common_prefix, _PrefixEntry

if TYPE_CHECKING:
    from serving.kv_buffers import _Batch

log = logging.getLogger("serving.batched_engine")  # the engine's logger, as before the split

_Ready = tuple[Request, _Settings, _PrefixEntry | None, int]  # a prepared request and its reused tokens


def _split_siblings(ready: list[_Ready], min_gain: int) -> tuple[list[_Ready], list[_Ready]]:
    """Requests to prefill now, and siblings to prefill right after them from the prefix cache.

    Scoring a closed choice sends one request per candidate, all with the same long prompt.
    Prefilled together, each would compute that prompt again; so a request whose uncached
    tokens share at least ``min_gain`` more tokens with an earlier request of the same
    adapter (one that computes logprobs too, if it needs them) waits for that one's cache.
    """
    leaders: list[_Ready] = []
    followers: list[_Ready] = []
    for item in ready:
        request, s, _, reuse = item
        shares = any(other.adapter == request.adapter and (s.logprobs is None or other_s.logprobs is not None)
                     and _common_prefix(other.input_ids, request.input_ids) - 1 - reuse >= min_gain
                     for other, other_s, _, _ in leaders)
        (followers if shares else leaders).append(item)
    return leaders, followers


class SchedulerMixin:
    """The engine's admission of waiting requests into the batch.

    Mixed into :class:`serving.batched_engine.BatchedEngine`, whose attributes it reads;
    ``_prefill`` and ``_fail`` come from the other mixins.
    """

    _waiting: queue.Queue[Request]
    _batch: _Batch
    max_batch_size: int
    admit_wait_s: float
    prefill_budget: int
    prefix_cache: PrefixCache
    context_len: int
    tokenizer: Any

    def _admission_due(self) -> bool:
        """Whether to prefill waiting requests now.

        A prefill forward costs about as much as a decoding step however few prompts it holds,
        so while rows are decoding, arrivals are gathered until a quarter of the free rows
        are waiting or the oldest has waited ``admit_wait_s``; an idle engine admits at once.
        """
        with self._waiting.mutex:
            waiting = len(self._waiting.queue)
            oldest = self._waiting.queue[0].submitted if waiting else None
        if oldest is None:
            return False
        free = self.max_batch_size - len(self._batch)
        if len(self._batch) == 0 or free <= 0:
            return free > 0
        return waiting >= max(1, free // 4) or time.monotonic() - oldest >= self.admit_wait_s

    def _admit(self) -> bool:
        """Prefill waiting requests while there is room in the batch; True if any was admitted."""
        ready: list[_Ready] = []
        while len(self._batch) + len(ready) < self.max_batch_size:
            try:
                request = self._waiting.get_nowait()
            except queue.Empty:
                break
            if request.cancelled.is_set():
                continue
            prepared = self._prepare(request)
            if prepared is not None:
                ready.append(prepared)
        leaders, followers = _split_siblings(ready, self.prefix_cache.min_reuse)
        self._prefill_groups(leaders)
        if followers:  # their shared prefix is cached now: look it up again
            self._prefill_groups([(request, s, *self.prefix_cache.lookup(request.adapter, request.input_ids,
                                                                          s.logprobs is not None))
                                  for request, s, _, _ in followers])
        return bool(ready)

    def _prefill_groups(self, ready: list[_Ready]) -> None:
        """Prefill prompts together, up to a budget of padded new tokens per forward."""
        ready = sorted(ready, key=lambda r: len(r[0].input_ids) - r[3])
        groups: list[list] = []
        group: list = []
        for item in ready:
            widest = len(item[0].input_ids) - item[3]
            if group and widest * (len(group) + 1) > self.prefill_budget:
                groups.append(group)
                group = []
            group.append(item)
        if group:
            groups.append(group)
        for group in groups:
            try:
                self._prefill(group)
            except Exception as err:  # bad requests must not stop the engine
                log.exception("prefill failed")
                for request, *_ in group:
                    self._fail(request, ERROR_INTERNAL, f"prefill failed: {err}")

    def _prepare(self, request: Request) -> _Ready | None:
        """Tokenize (keeping the prompt's tail, as FastChat does) and look up a reusable prefix."""
        try:
            s = request.settings = _settings(request.params, self.tokenizer.eos_token_id)
            ids = self.tokenizer(request.params["prompt"]).input_ids
        except Exception as err:  # noqa: BLE001 - e.g. a missing or non-text prompt
            self._fail(request, ERROR_INTERNAL, f"bad request: {err!r}")
            return None
        max_src_len = self.context_len - s.max_new_tokens - 1
        if max_src_len <= 0:
            self._fail(request, ERROR_CONTEXT, f"max_new_tokens {s.max_new_tokens} leaves no room for the prompt "
                                               f"in the context of {self.context_len} tokens")
            return None
        ids = ids[-max_src_len:]
        request.input_ids = ids
        request.output_ids = list(ids)
        entry, reuse = self.prefix_cache.lookup(request.adapter, ids, s.logprobs is not None)
        return request, s, entry, reuse

    def _drop_finished(self) -> None:
        batch = self._batch
        keep = [i for i, row in enumerate(batch.rows) if not row.done and not row.cancelled.is_set()]
        batch.keep(keep)
