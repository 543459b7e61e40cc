"""Model clients: an OpenAI-compatible completions endpoint (FastChat) behind one small interface.

Two operations are all the agents need:
- `generate`: free text (thoughts, arguments), greedy by default;
- `score`: the log-likelihood of each closed candidate after a prompt (action
  names, right/wrong, answer options), read from the completions API with
  `echo` + `logprobs` so weak models never have to spell a choice themselves.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar, copy_context
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

import httpx
import openai
from langchain_openai import OpenAI

from autoact.errors import EndpointError

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


@runtime_checkable
class CompletionModel(Protocol):
    """What an agent asks of a model."""

    name: str

    def generate(self, prompt: str, *, stop: Sequence[str], max_tokens: int) -> str: ...

    def score(self, prompt: str, candidates: Sequence[str]) -> list[float]: ...


def generate_line(model: CompletionModel, prompt: str, max_tokens: int, blank_lines: int = 2) -> str:
    """The model's first non-blank line after `prompt`.

    Generation stops at a newline, so a model that opens with one (small models often
    answer `Thought 1:` with a line break) would give nothing. A blank line is taken
    as part of the prompt and generation goes on, at most `blank_lines` times: the
    result is the line greedy decoding writes first. Each retry reuses the prompt,
    which a prefix-caching server does not compute again.
    """
    text = model.generate(prompt, stop=["\n"], max_tokens=max_tokens)
    for _ in range(blank_lines):
        if text.strip():
            break
        prompt += text + "\n"
        text = model.generate(prompt, stop=["\n"], max_tokens=max_tokens)
    return text


@dataclass
class EndpointConfig:
    """Where a role's model is served, and how patiently to ask it."""

    base_url: str = DEFAULT_BASE_URL
    model: str = ""
    api_key: str | None = None
    timeout: float = 300.0
    retries: int = 3
    backoff: float = 1.0
    temperature: float = 0.0
    score_norm: Literal["sum", "mean"] = "sum"


_RETRYABLE = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
              openai.RateLimitError, httpx.TransportError)


#: Token usage of the current episode, by role label: `{label: {"prompt_tokens", "completion_tokens",
#: "requests"}}`. The evaluation loop sets a fresh dict per episode; every EndpointModel request adds
#: the server's usage counts to its label's entry (nothing is recorded while it is unset).
TOKEN_USAGE: ContextVar[dict[str, dict[str, int]] | None] = ContextVar("autoact_token_usage", default=None)
_USAGE_LOCK = threading.Lock()  # a scoring call's requests record their usage from several threads


@dataclass
class EndpointModel:
    """A model behind an OpenAI-compatible `/v1/completions` endpoint (langchain-openai client)."""

    config: EndpointConfig
    usage_label: str = ""  # the key its usage is recorded under (the role; default: the model name)
    calls: int = field(default=0, init=False)
    _clients: dict[tuple, OpenAI] = field(default_factory=dict, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.config.model

    def _client(self, max_tokens: int, echo: bool) -> OpenAI:
        key = (max_tokens, echo)
        if key not in self._clients:
            extra: dict[str, Any] = {"echo": True} if echo else {}
            self._clients[key] = OpenAI(
                model=self.config.model, base_url=self.config.base_url,
                api_key=self.config.api_key or "EMPTY", temperature=self.config.temperature,
                max_tokens=max_tokens, max_retries=0, timeout=self.config.timeout,
                logprobs=1 if echo else None, model_kwargs=extra,
            )
        return self._clients[key]

    def _call(self, what: str, fn):
        """Run one request with bounded retries and backoff; fail with URL and model named."""
        last: Exception | None = None
        for attempt in range(self.config.retries + 1):
            try:
                self.calls += 1
                return fn()
            except _RETRYABLE as e:
                last = e
                if attempt < self.config.retries:
                    time.sleep(self.config.backoff * 2**attempt)
            except openai.APIStatusError as e:
                raise EndpointError(
                    f"{what} failed at {self.config.base_url} for model {self.config.model!r}: "
                    f"HTTP {e.status_code}: {_message(e)}") from None
        raise EndpointError(
            f"{what} failed at {self.config.base_url} for model {self.config.model!r} after "
            f"{self.config.retries + 1} attempts: {type(last).__name__}: {last}") from None

    def _record_usage(self, result: Any) -> None:
        sink = TOKEN_USAGE.get()
        if sink is None:
            return
        usage = (result.llm_output or {}).get("token_usage", {})
        with _USAGE_LOCK:
            entry = sink.setdefault(self.usage_label or self.name,
                                    {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0})
            entry["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            entry["completion_tokens"] += int(usage.get("completion_tokens") or 0)
            entry["requests"] += 1

    def generate(self, prompt: str, *, stop: Sequence[str], max_tokens: int) -> str:
        llm = self._client(max_tokens, echo=False)
        result = self._call("generation", lambda: llm.generate([prompt], stop=list(stop) or None))
        self._record_usage(result)
        return result.generations[0][0].text

    def score(self, prompt: str, candidates: Sequence[str]) -> list[float]:
        """Log-likelihood of each candidate after `prompt`: one echo request per candidate.

        The requests are sent at once, so a batching worker scores them in one forward pass
        (they share the prompt, which its prefix cache holds); the stock worker takes them in turn.
        """
        llm = self._client(1, echo=True)

        def one(cand: str) -> float:
            result = self._call("scoring", lambda: llm.generate([prompt + cand]))
            self._record_usage(result)
            info = result.generations[0][0].generation_info or {}
            usage = (result.llm_output or {}).get("token_usage", {})
            return candidate_logprob(info.get("logprobs"), cand, usage.get("prompt_tokens"), self.config.score_norm)

        if len(candidates) <= 1:
            return [one(c) for c in candidates]
        context = copy_context()  # the episode's usage record travels into the request threads
        with ThreadPoolExecutor(max_workers=len(candidates)) as pool:
            return list(pool.map(lambda c: context.copy().run(one, c), candidates))


def candidate_logprob(logprobs: dict | None, candidate: str, prompt_tokens: int | None,
                      norm: Literal["sum", "mean"] = "sum") -> float:
    """Log-likelihood of the trailing `candidate` text of an echoed prompt.

    Keeps the first `prompt_tokens` entries (the server appends at least one
    generated token; FastChat reports `completion_tokens` 0 for it, so the prompt
    count is the reliable one), then walks back from the last prompt token until
    the tokens cover the candidate's characters. A token that straddles the
    boundary (" B" after "Finish[") counts as the candidate's.
    """
    if not logprobs or not logprobs.get("tokens"):
        raise EndpointError("the endpoint returned no logprobs for an echo request; "
                            "scoring needs a server that supports echo + logprobs (or use --free-actions)")
    tokens = list(logprobs["tokens"])
    values = list(logprobs["token_logprobs"])
    if prompt_tokens:
        tokens, values = tokens[:prompt_tokens], values[:prompt_tokens]
    total, count, covered = 0.0, 0, 0
    for text, value in zip(reversed(tokens), reversed(values)):
        if covered >= len(candidate):
            break
        covered += len(text)
        if value is None:
            break
        total += float(value)
        count += 1
    if count == 0:
        return -math.inf
    return total / count if norm == "mean" else total


def _message(e: openai.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    return str(body.get("message") or body.get("error") or e.message)[:300]


def list_models(base_url: str, api_key: str | None = None, timeout: float = 10.0) -> list[str]:
    """Model names an OpenAI-compatible server offers; EndpointError if it cannot be reached."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(url, headers=headers, timeout=timeout)
        resp.raise_for_status()
    except httpx.HTTPError as e:
        raise EndpointError(f"cannot list models at {url}: {e}. Is a server running? "
                            f"Start one with `autoact serve`.") from None
    return [m["id"] for m in resp.json().get("data", [])]
