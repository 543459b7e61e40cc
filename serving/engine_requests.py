"""What a request is to the engine, and what it answers in FastChat's worker format.

Owns FastChat's error codes for what the engine refuses, the :class:`Request` record and its
parameters read with FastChat's defaults (:func:`_settings`), and :class:`OutputMixin`: the
engine's per-row token choice and output (stop tokens and strings, ``echo``, ``logprobs``,
the ``stream_interval`` cadence, usage, finish reasons), step for step as FastChat 0.2.36's
``generate_stream`` does it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

#: FastChat's error codes (fastchat.constants.ErrorCode) for what this engine can refuse.
ERROR_OVERLOADED = 42903
ERROR_CONTEXT = 40303
ERROR_INTERNAL = 50001
ERROR_INVALID_MODEL = 40301


class EngineOverloaded(RuntimeError):
    """The engine's queue is full; the request was not accepted."""


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


class OutputMixin:
    """The engine's side of a row's output: choose its token, emit what FastChat would emit.

    Mixed into :class:`serving.batched_engine.BatchedEngine`, whose attributes it reads.
    """

    stats: dict[str, float]
    stream_interval: int
    tokenizer: Any

    def _fail(self, request: Request, code: int, message: str) -> None:
        request.done = True
        request.emit({"text": message, "error_code": code})

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
