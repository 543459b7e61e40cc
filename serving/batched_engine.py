"""A continuous-batching generation engine for one base model and its LoRA adapters.

One background thread owns the model. Each loop turn it

1. admits waiting requests (up to ``max_batch_size`` rows in flight): each prompt is
   prefilled on its own, reusing the key/value cache of the longest matching earlier prompt
   of the same adapter (:class:`serving.prefix_cache.PrefixCache`), and its first token is chosen;
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

This module holds the engine class, its public interface and its thread's loop; the work
of each turn lives in mixins beside it: admission in :mod:`serving.scheduler`, the model
forwards in :mod:`serving.model_step`, requests and FastChat's output in
:mod:`serving.engine_requests`, the batch's cache in :mod:`serving.kv_buffers`, and heap
trimming in :mod:`serving.memory`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from serving.engine_requests import (
    ERROR_INTERNAL,
    EngineOverloaded,
    OutputMixin,
    Request,
)
from serving.kv_buffers import _Batch
from serving.memory import MemoryReleaseMixin
from serving.model_step import ModelStepMixin, _register_grouped_attention
from serving.prefix_cache import PrefixCache
from serving.scheduler import SchedulerMixin
from serving.stacked_lora import BASE_ADAPTER, RowAdapters, install_stacked_lora

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)


def _cpu_threads() -> int:
    from core.hardware import (
        cpu_threads,  # cores this process may use (affinity, cgroup quota)
    )

    return cpu_threads()


def resolve_dtype(name: str, device: str = "cpu") -> torch.dtype:
    """``auto`` (bf16 where ``device`` computes it natively, else fp32), ``bfloat16`` or ``float32``."""
    if name == "auto":
        from core.hardware import bf16_supported

        return torch.bfloat16 if bf16_supported(device) else torch.float32
    table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}: use auto, bfloat16 or float32")
    return table[name]


class BatchedEngine(SchedulerMixin, ModelStepMixin, OutputMixin, MemoryReleaseMixin):
    """Serve generation requests for a base model and named LoRA adapters with continuous batching.

    ``submit`` queues a request and returns at once; outputs reach the request's ``emit``
    callback from the engine thread. ``generate`` is a blocking iterator over one request's
    outputs. Start the thread with :meth:`start` (or use the engine as a context manager).
    ``fused_decode=False`` runs decoding steps through transformers' forward even where
    :mod:`serving.llama_step` supports the model (for comparisons).

    ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``; :func:`core.hardware.resolve_device`)
    holds the weights, the stacked adapters and every cache: the engine thread creates its
    tensors there (a ``torch.device`` context). Thread counts and heap trimming apply on the CPU only.
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
        device: str = "auto",
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from core.hardware import is_cpu, resolve_device

        self.model_path = Path(model_path)
        self.base_name = base_name or self.model_path.name
        self.device = resolve_device(device)
        self.on_cpu = is_cpu(self.device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_queue = max(1, int(max_queue))
        self.stream_interval = max(1, int(stream_interval))
        self.prefill_budget = max(1, int(prefill_budget))  # padded prompt tokens prefilled in one forward
        self.admit_wait_s = admit_wait_s
        self.threads = threads or _cpu_threads()
        if self.on_cpu:
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
        model = model.to(self.device)  # loaded on the CPU, moved whole: base weights and every adapter
        if self.adapters:
            self.row_adapters = install_stacked_lora(model, list(self.adapters))
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
        with torch.device(self.device):
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

    def __enter__(self) -> Self:
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
        if self.on_cpu:
            torch.set_num_threads(self.threads)
        with torch.inference_mode(), torch.device(self.device):  # tensors made in this thread live on the device
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
                except Exception as err:  # fail the rows, keep serving
                    log.exception("decoding step failed")
                    for row in self._batch.rows:
                        self._fail(row, ERROR_INTERNAL, f"decoding failed: {err}")
                    self._batch = _Batch()


def run_all(engine: BatchedEngine, requests: Iterable[Mapping[str, Any]], timeout: float = 600) -> list[dict[str, Any]]:
    """Submit every request at once and return each one's final output, in order."""
    results: list[queue.Queue[dict[str, Any]]] = []
    for params in requests:
        box: queue.Queue[dict[str, Any]] = queue.Queue()
        engine.submit(params, lambda out, box=box: box.put(out) if (out.get("finish_reason") or out.get("error_code")) else None)
        results.append(box)
    return [box.get(timeout=timeout) for box in results]
