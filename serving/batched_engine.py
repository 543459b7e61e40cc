"""A continuous-batching generation engine for one base model and its LoRA adapters.

One background thread owns the model. Each loop turn it

1. admits waiting requests (up to ``max_batch_size`` rows in flight): each prompt is
   prefilled on its own, reusing the key/value cache of the longest matching earlier prompt
   of the same adapter (:class:`PrefixCache`), and its first token is chosen;
2. runs **one** decoding step for every row in flight as a single batch, each row with its
   own adapter (stacked LoRA weights, :func:`install_stacked_lora`), the base model's rows
   with none (Llama-family models through :class:`serving.llama_step.LlamaStep`, others
   through transformers' forward);
3. hands every row's new output to its consumer and drops finished or cancelled rows.

Rows have different lengths, so the batch's key/value cache is left-padded and masked;
each row keeps its own position ids. The per-row output logic (stop tokens, stop strings,
``echo``, ``logprobs``, the ``stream_interval`` cadence, usage counts, finish reasons)
follows FastChat 0.2.36's ``generate_stream`` step for step, so a request gets what the
stock worker would give it. Numbers may differ in the last bits (batched kernels round
differently); greedy text is what the tests hold equal.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from serving.stacked_lora import BASE_ADAPTER, RowAdapters, install_stacked_lora

log = logging.getLogger(__name__)

#: FastChat's error codes (fastchat.constants.ErrorCode) for what this engine can refuse.
ERROR_OVERLOADED = 42903
ERROR_CONTEXT = 40303
ERROR_INTERNAL = 50001
ERROR_INVALID_MODEL = 40301


def _cpu_threads() -> int:
    from core.hardware import (
        cpu_threads,  # cores this process may use (affinity, cgroup quota)
    )

    return cpu_threads()


class EngineOverloaded(RuntimeError):
    """The engine's queue is full; the request was not accepted."""


def resolve_dtype(name: str) -> torch.dtype:
    """``auto`` (bf16 on CPUs with bf16 instructions, else fp32), ``bfloat16`` or ``float32``."""
    if name == "auto":
        from core.hardware import cpu_bf16_supported

        return torch.bfloat16 if cpu_bf16_supported() else torch.float32
    table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}: use auto, bfloat16 or float32")
    return table[name]


@dataclass
class Request:
    """One generation request in FastChat's worker format, and its progress."""

    params: dict[str, Any]
    adapter: str  # BASE_ADAPTER or an adapter name
    emit: Callable[[dict[str, Any]], None]  # receives each output dict; the last has finish_reason
    cancelled: threading.Event = field(default_factory=threading.Event)
    # filled in by the engine
    input_ids: list[int] = field(default_factory=list)
    output_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    settings: _Settings | None = None  # the params read once, when the request is admitted
    step: int = 0
    output: str = ""
    ret_logprobs: dict[str, Any] | None = None
    done: bool = False
    submitted: float = field(default_factory=time.monotonic)

    def cancel(self) -> None:
        """Ask the engine to drop this request (its consumer went away)."""
        self.cancelled.set()


@dataclass
class _Settings:
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    max_new_tokens: int
    logprobs: Any
    echo: bool
    stop: Any
    stop_token_ids: list[int]
    processor: Any  # FastChat's logits processors for these settings (empty: raw logits)

    @property
    def greedy(self) -> bool:
        return self.temperature < 1e-5 or self.top_p < 1e-8


def _plain_greedy(s: _Settings | None) -> bool:
    """Whether the next token is the top logit and nothing else is asked of the logits."""
    return s is not None and s.greedy and not s.processor and s.logprobs is None


def _settings(params: Mapping[str, Any], eos_token_id: int | None) -> _Settings:
    """Read a request's parameters with FastChat's defaults."""
    from fastchat.serve.inference import prepare_logits_processor

    stop_ids = list(params.get("stop_token_ids") or [])
    if eos_token_id is not None and eos_token_id not in stop_ids:
        stop_ids.append(eos_token_id)
    return _Settings(
        temperature=float(params.get("temperature", 1.0)),
        top_p=float(params.get("top_p", 1.0)),
        top_k=int(params.get("top_k", -1)),
        repetition_penalty=float(params.get("repetition_penalty", 1.0)),
        max_new_tokens=max(1, int(params.get("max_new_tokens", 256))),
        logprobs=params.get("logprobs", None),
        echo=bool(params.get("echo", True)),
        stop=params.get("stop", None),
        stop_token_ids=stop_ids,
        processor=prepare_logits_processor(float(params.get("temperature", 1.0)),
                                           float(params.get("repetition_penalty", 1.0)),
                                           float(params.get("top_p", 1.0)), int(params.get("top_k", -1))),
    )


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


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


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


class BatchedEngine:
    """Serve generation requests for a base model and named LoRA adapters with continuous batching.

    ``submit`` queues a request and returns at once; outputs reach the request's ``emit``
    callback from the engine thread. ``generate`` is a blocking iterator over one request's
    outputs. Start the thread with :meth:`start` (or use the engine as a context manager).
    ``fused_decode=False`` runs decoding steps through transformers' forward even where
    :mod:`serving.llama_step` supports the model (for comparisons).
    """

    def __init__(
        self,
        model_path: str | Path,
        adapters: Mapping[str, str | Path] | None = None,
        base_name: str | None = None,
        dtype: str = "auto",
        max_batch_size: int = 32,
        max_queue: int = 256,
        context_len: int | None = None,
        stream_interval: int = 2,
        prefix_cache_tokens: int = 32768,
        threads: int | None = None,
        prefill_budget: int = 2048,
        admit_wait_s: float = 0.25,
        fused_decode: bool = True,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = Path(model_path)
        self.base_name = base_name or self.model_path.name
        self.dtype = resolve_dtype(dtype)
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_queue = max(1, int(max_queue))
        self.stream_interval = max(1, int(stream_interval))
        self.prefill_budget = max(1, int(prefill_budget))  # padded prompt tokens prefilled in one forward
        self.admit_wait_s = admit_wait_s
        self.threads = threads or _cpu_threads()
        torch.set_num_threads(self.threads)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=self.dtype)
        self.adapters = {name: Path(path) for name, path in (adapters or {}).items()}
        self.row_adapters: RowAdapters | None = None
        if self.base_name in self.adapters:
            raise ValueError(f"an adapter may not be named {self.base_name!r}: that is the base model's name")
        if self.adapters:
            from peft import PeftModel

            names = list(self.adapters)
            model = PeftModel.from_pretrained(model, str(self.adapters[names[0]]), adapter_name=names[0])
            for name in names[1:]:
                model.load_adapter(str(self.adapters[name]), adapter_name=name)
            self.row_adapters = install_stacked_lora(model, names)
        self.model = model.eval()
        # decoding steps of Llama-family models skip transformers' per-layer machinery (serving/llama_step.py)
        from serving.llama_step import LlamaStep, supports

        self._llama_step = LlamaStep(model) if fused_decode and supports(model) else None
        # prompt logprobs: the decoder's final norm output, turned into logits by the output layer
        self._final_norm: torch.nn.Module = model.get_decoder().norm
        self._lm_head: torch.nn.Module = model.get_output_embeddings()
        config = model.config
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        self._layers = int(text.num_hidden_layers)
        self._kv_shape = (int(getattr(text, "num_key_value_heads", None) or text.num_attention_heads),
                          int(getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads))
        # prompts: the model's own attention (SDPA); single-token decoding steps: plain matmul attention
        # over the shared key/value heads, which is faster for one query row on CPU (measured: 81 vs
        # 126 ms per bf16 step at batch 16 for matmul vs SDPA's flash kernel)
        self.decode_attention = _register_grouped_attention()
        if context_len is None:
            from fastchat.utils import get_context_length

            context_len = get_context_length(config)
        self.context_len = int(context_len)
        self.prefix_cache = PrefixCache(prefix_cache_tokens)
        self._waiting: queue.Queue[Request] = queue.Queue()
        self._batch = _Batch()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.stats: dict[str, float] = {"steps": 0, "batched_rows": 0, "prefills": 0, "prefill_tokens": 0,
                                        "generated_tokens": 0, "prefill_forwards": 0, "prefill_s": 0.0,
                                        "decode_s": 0.0, "releases": 0, "release_s": 0.0}
        self.release_every_s = 15.0  # seconds between returns of freed memory to the system
        self._released_at, self._released_at_work = time.monotonic(), 0.0

    # -- public ------------------------------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        """The base model's name, then the adapters'."""
        return [self.base_name, *self.adapters]

    @property
    def queue_length(self) -> int:
        """Requests waiting plus rows in flight."""
        return self._waiting.qsize() + len(self._batch)

    def start(self) -> BatchedEngine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="batched-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def __enter__(self) -> BatchedEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def adapter_for(self, model_name: str | None) -> str:
        """The peft adapter name serving ``model_name`` (the base model: :data:`BASE_ADAPTER`)."""
        if model_name in (None, "", self.base_name):
            return BASE_ADAPTER
        if model_name in self.adapters:
            return model_name
        raise KeyError(f"model {model_name!r} is not served here (serving {', '.join(self.model_names)})")

    def submit(self, params: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> Request:
        """Queue a request (FastChat worker params; ``model`` picks the adapter).

        Raises :class:`EngineOverloaded` when ``max_queue`` requests are already queued or
        running, and ``KeyError`` for a model name not served here.
        """
        adapter = self.adapter_for(params.get("model"))
        if self.queue_length >= self.max_queue:
            raise EngineOverloaded(
                f"the worker is overloaded: {self.queue_length} requests queued or running "
                f"(limit {self.max_queue}); retry later"
            )
        request = Request(params=dict(params), adapter=adapter, emit=emit)
        self._waiting.put(request)
        self._wake.set()
        return request

    def generate(self, params: Mapping[str, Any], timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Submit and yield the request's outputs until the last (which has a finish reason)."""
        outputs: queue.Queue[dict[str, Any]] = queue.Queue()
        request = self.submit(params, outputs.put)
        try:
            while True:
                out = outputs.get(timeout=timeout)
                yield out
                if out.get("finish_reason") is not None or out.get("error_code", 0):
                    return
        finally:
            request.cancel()

    def generate_one(self, params: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """The final output of a request (what FastChat's ``/worker_generate`` returns)."""
        out: dict[str, Any] = {}
        for out in self.generate(params, timeout=timeout):
            pass
        return out

    # -- engine thread -----------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            while not self._stop.is_set():
                self._drop_finished()
                admitted = False
                if self._admission_due():
                    start = time.perf_counter()
                    admitted = self._admit()
                    self.stats["prefill_s"] += time.perf_counter() - start
                if len(self._batch) == 0:
                    if not admitted:
                        if not self._wake.wait(timeout=0.5):  # half a second without a request
                            self._release_memory(quiet=True)
                        self._wake.clear()
                    continue
                self._release_memory(quiet=False)
                start = time.perf_counter()
                try:
                    self._decode_step()
                    self.stats["decode_s"] += time.perf_counter() - start
                except Exception as err:  # noqa: BLE001 - fail the rows, keep serving
                    log.exception("decoding step failed")
                    for row in self._batch.rows:
                        self._fail(row, ERROR_INTERNAL, f"decoding failed: {err}")
                    self._batch = _Batch()

    def _release_memory(self, quiet: bool) -> None:
        """Hand freed heap memory back to the system after work: when the engine has gone quiet,
        and every ``release_every_s`` while it stays busy.

        Prompts and caches are large, short-lived tensors, and glibc keeps much of what they free.
        Measured with 24-prompt waves of 200–1,500 words: after four waves the worker held 2,991 MiB,
        and ``malloc_trim`` brought it down to 1,622 MiB, prefix cache included. One trim takes about
        0.1 s, so a busy engine trims only now and then.
        """
        now, work = time.monotonic(), self.stats["steps"] + self.stats["prefills"]
        if (_MALLOC_TRIM is None or work == self._released_at_work  # nothing ran since the last release
                or (not quiet and now - self._released_at < self.release_every_s)):
            return
        start = time.perf_counter()
        _MALLOC_TRIM(0)
        self.stats["release_s"] += time.perf_counter() - start
        self.stats["releases"] += 1
        self._released_at, self._released_at_work = now, work

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
            except Exception as err:  # noqa: BLE001 - bad requests must not stop the engine
                log.exception("prefill failed")
                for request, *_ in group:
                    self._fail(request, ERROR_INTERNAL, f"prefill failed: {err}")

    def _fail(self, request: Request, code: int, message: str) -> None:
        request.done = True
        request.emit({"text": message, "error_code": code})

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

    def _drop_finished(self) -> None:
        batch = self._batch
        keep = [i for i, row in enumerate(batch.rows) if not row.done and not row.cancelled.is_set()]
        batch.keep(keep)

    def _take_token(self, row: Request, s: _Settings, raw_logits: torch.Tensor, token: int | None = None) -> None:
        """Choose the row's next token from its last-position logits (or take ``token``, already
        chosen from them greedily) and emit, as FastChat does."""
        if token is None:
            raw_logits = raw_logits.float()
            processor = s.processor
            if processor:
                history = torch.as_tensor([row.output_ids]) if s.repetition_penalty > 1.0 else None
                last = processor(history, raw_logits.unsqueeze(0))[0]
            else:
                last = raw_logits
            if s.greedy:
                token = int(torch.topk(last, 2).indices[0])
            else:
                token = int(torch.multinomial(torch.softmax(last, dim=-1), num_samples=2)[0])
            if s.logprobs is not None:
                row.token_logprobs.append(float(torch.log_softmax(raw_logits, dim=-1)[token]))
        row.output_ids.append(token)
        self.stats["generated_tokens"] += 1
        self._emit(row, s, stopped=token in s.stop_token_ids)

    def _emit(self, row: Request, s: _Settings, stopped: bool) -> None:
        from fastchat.utils import is_partial_stop

        i = row.step
        last_step = i == s.max_new_tokens - 1
        if i % self.stream_interval == 0 or last_step or stopped:
            if s.echo:
                ids, rfind_start = row.output_ids, len(row.params["prompt"])
            else:
                ids, rfind_start = row.output_ids[len(row.input_ids):], 0
            output = self.tokenizer.decode(ids, skip_special_tokens=True, spaces_between_special_tokens=False,
                                           clean_up_tokenization_spaces=True)
            if s.logprobs is not None:
                shown = row.token_logprobs if s.echo else row.token_logprobs[len(row.input_ids):]
                texts = [self.tokenizer.decode(t) for t in ids]
                offsets, pos = [], 0
                for text in texts:
                    offsets.append(pos)
                    pos += len(text)
                row.ret_logprobs = {"text_offset": offsets, "tokens": texts, "token_logprobs": list(shown),
                                    "top_logprobs": [{}] * len(shown)}
            partially_stopped = False
            if s.stop:
                for each in [s.stop] if isinstance(s.stop, str) else list(s.stop):
                    pos = output.rfind(each, rfind_start)
                    if pos != -1:
                        output = output[:pos]
                        stopped = True
                        break
                    partially_stopped = is_partial_stop(output, each)
                    if partially_stopped:
                        break
            row.output = output
            if not partially_stopped:
                row.emit(self._payload(row, None))
        if stopped or last_step:
            row.done = True
            row.emit(self._payload(row, "stop" if stopped else "length"))

    @staticmethod
    def _payload(row: Request, finish_reason: str | None) -> dict[str, Any]:
        prompt = len(row.input_ids)
        return {
            "text": row.output,
            "error_code": 0,
            "logprobs": row.ret_logprobs,
            "usage": {"prompt_tokens": prompt, "completion_tokens": row.step, "total_tokens": prompt + row.step},
            "finish_reason": finish_reason,
        }


def _libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, which returns free heap memory to the system (None elsewhere)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


_MALLOC_TRIM = _libc_malloc_trim()


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


def run_all(engine: BatchedEngine, requests: Iterable[Mapping[str, Any]], timeout: float = 600) -> list[dict[str, Any]]:
    """Submit every request at once and return each one's final output, in order."""
    results: list[queue.Queue[dict[str, Any]]] = []
    for params in requests:
        box: queue.Queue[dict[str, Any]] = queue.Queue()
        engine.submit(params, lambda out, box=box: box.put(out) if (out.get("finish_reason") or out.get("error_code")) else None)
        results.append(box)
    return [box.get(timeout=timeout) for box in results]
