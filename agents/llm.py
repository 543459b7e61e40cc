"""Model clients: an OpenAI-compatible completions endpoint (FastChat) behind one small interface.

Two operations are all the agents need:
- `generate`: free text (thoughts, arguments), greedy by default;
- `score`: the log-likelihood of each closed candidate after a prompt (action
  names, right/wrong, answer options), read from the completions API with
  `echo` + `logprobs` so weak models never have to spell a choice themselves.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Literal,
    Protocol,
    Sequence,
    TypeVar,
    runtime_checkable,
)

import httpx
import openai
from langchain_openai import OpenAI

from core import interrupt
from core.errors import EndpointError

log = logging.getLogger("autoact.endpoint")
T = TypeVar("T")

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
    """Where a role's model is served, and how patiently to ask it.

    `timeout` is the deadline of one request, all its attempts and waits included
    (0: none); `retries` more attempts are made within it after a transient fault
    (a connection error, a 5xx status, a malformed answer).
    """

    base_url: str = DEFAULT_BASE_URL
    model: str = ""
    api_key: str | None = None
    timeout: float = 300.0
    retries: int = 3
    backoff: float = 1.0
    temperature: float = 0.0
    score_norm: Literal["sum", "mean"] = "sum"


class MalformedResponse(EndpointError):
    """A 200 answer that does not hold what was asked (a transient fault: requests retry it)."""


_UNREACHABLE = (openai.APIConnectionError, openai.APITimeoutError, httpx.TransportError)
_TIMEOUTS = (openai.APITimeoutError, httpx.TimeoutException)  # a wait that took the request's deadline
_RETRYABLE = (*_UNREACHABLE, openai.InternalServerError, openai.RateLimitError, MalformedResponse)
_NOTICE_EVERY = 60.0  # seconds between two notices about the same silent server
_notices: dict[str, float] = {}
_NOTICE_LOCK = threading.Lock()


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
                max_tokens=max_tokens, max_retries=0, timeout=self.config.timeout or None,
                logprobs=1 if echo else None, model_kwargs=extra,
            )
        return self._clients[key]

    def _where(self, what: str) -> str:
        return f"{what} at {self.config.base_url} for model {self.config.model!r}"

    def _call(self, what: str, fn: Callable[[float | None], T]) -> T:
        """Run one request within its deadline, retrying transient faults; EndpointError in one line.

        `fn(seconds)` sends the request with that much time left (None: no deadline) and
        returns what was asked for, raising MalformedResponse when the answer lacks it.
        """
        limit = self.config.timeout
        deadline = time.monotonic() + limit if limit else math.inf
        last: Exception | None = None
        attempts = unreachable = 0
        while attempts <= self.config.retries:
            interrupt.check()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            attempts += 1
            try:
                self.calls += 1
                return fn(None if math.isinf(left) else left)
            except _RETRYABLE as e:
                last = e
                unreachable = unreachable + 1 if isinstance(e, _UNREACHABLE) else 0
                # a connection dropped once is often a kept-alive one the server just closed, and the next
                # attempt gets through: say so only when it fails again, or when the wait took a deadline
                if isinstance(e, _TIMEOUTS) or unreachable > 1:
                    self._notice_silence(e)
            except openai.APIStatusError as e:
                raise EndpointError(f"{self._where(what)}: HTTP {e.status_code}: {_message(e)}"
                                    f"{_advice(e.status_code)}") from None
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:  # a body the client chokes on
                last = MalformedResponse(f"the answer is not a completion ({type(e).__name__}: {e})")
            if attempts <= self.config.retries:
                interrupt.sleep(min(self.config.backoff * 2 ** (attempts - 1), max(0.0, deadline - time.monotonic())))
        raise EndpointError(f"{self._where(what)}: {_failure(last, attempts, limit)}") from None

    def _notice_silence(self, error: Exception) -> None:
        """Say once a minute per server that it stopped answering, and how long requests wait."""
        now = time.monotonic()
        with _NOTICE_LOCK:
            if now - _notices.get(self.config.base_url, -math.inf) < _NOTICE_EVERY:
                return
            _notices[self.config.base_url] = now
        deadline = f"{self.config.timeout:g} s (--timeout)" if self.config.timeout else "no deadline (--timeout 0)"
        log.warning("%s does not answer (%s); each request is retried until its deadline of %s, then the row "
                    "is recorded as an error and retried by the next run", self.config.base_url,
                    _one_line(f"{type(error).__name__}: {error}"), deadline)

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

        def request(seconds: float | None) -> str:
            result = llm.generate([prompt], stop=list(stop) or None, timeout=seconds)
            text = _first_generation(result).text
            if not isinstance(text, str):
                raise MalformedResponse(f"the completion's text is {type(text).__name__}, not a string")
            self._record_usage(result)
            return text

        return self._call("generation", request)

    def score(self, prompt: str, candidates: Sequence[str]) -> list[float]:
        """Log-likelihood of each candidate after `prompt`: one echo request per candidate.

        The requests are sent at once, so a batching worker scores them in one forward pass
        (they share the prompt, which its prefix cache holds); the stock worker takes them in turn.
        A response without usable logprobs is a transient fault, retried within the deadline.
        """
        llm = self._client(1, echo=True)

        def one(cand: str) -> float:
            def request(seconds: float | None) -> float:
                result = llm.generate([prompt + cand], timeout=seconds)
                info = _first_generation(result).generation_info or {}
                usage = (result.llm_output or {}).get("token_usage", {})
                value = candidate_logprob(info.get("logprobs"), cand, usage.get("prompt_tokens"),
                                          self.config.score_norm)
                self._record_usage(result)
                return value
            return self._call("scoring", request)

        if len(candidates) <= 1:
            return [one(c) for c in candidates]
        return interrupt.map_threads(one, candidates)


def _first_generation(result: Any) -> Any:
    try:
        return result.generations[0][0]
    except (IndexError, TypeError, AttributeError):
        raise MalformedResponse("the answer holds no choices") from None


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _failure(last: Exception | None, attempts: int, limit: float) -> str:
    """Why a request gave up after its attempts, and what to do."""
    tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
    if isinstance(last, MalformedResponse):
        return f"{_one_line(str(last))} ({tries}); the server does not answer as an OpenAI completions API should"
    if isinstance(last, openai.APITimeoutError) or last is None:
        return (f"no answer within the request's deadline of {limit:g} s ({tries}); the server may be hung or "
                "overloaded: check it, or raise --timeout")
    if isinstance(last, (openai.APIConnectionError, httpx.TransportError)):
        return (f"cannot connect {tries} ({_one_line(str(last.__cause__ or last))}). Is a server running? "
                "Start one with `autoact serve`, or pass its --base-url")
    if isinstance(last, openai.APIStatusError):
        return f"HTTP {last.status_code} {tries}: {_message(last)}; the server kept failing: check its log"
    return f"{type(last).__name__} {tries}: {_one_line(str(last))}"


def _advice(status: int) -> str:
    if status in (401, 403):
        return ". The server refused the API key: pass the right one with --api-key"
    if status == 404:
        return ". Check --base-url and the model name (GET BASE_URL/models lists the served models)"
    return ""


def candidate_logprob(logprobs: dict | None, candidate: str, prompt_tokens: int | None,
                      norm: Literal["sum", "mean"] = "sum") -> float:
    """Log-likelihood of the trailing `candidate` text of an echoed prompt.

    Keeps the first `prompt_tokens` entries (the server appends at least one
    generated token; FastChat reports `completion_tokens` 0 for it, so the prompt
    count is the reliable one), then walks back from the last prompt token until
    the tokens cover the candidate's characters. A token that straddles the
    boundary (" B" after "Finish[") counts as the candidate's. Logprobs that are
    missing, of unequal lengths, or whose tokens do not spell the candidate raise
    MalformedResponse, naming what is wrong.
    """
    if not isinstance(logprobs, dict) or not logprobs.get("tokens"):
        raise MalformedResponse("the answer to an echo request holds no logprobs; scoring needs a server that "
                                "returns echo + logprobs (or use --free-actions)")
    tokens, values = logprobs["tokens"], logprobs.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        raise MalformedResponse(f"the logprobs are misaligned: {_size(tokens)} tokens but {_size(values)} "
                                "token_logprobs")
    if prompt_tokens:
        if prompt_tokens > len(tokens):
            raise MalformedResponse(f"the logprobs are misaligned: {len(tokens)} tokens for a prompt of "
                                    f"{prompt_tokens}")
        tokens, values = tokens[:prompt_tokens], values[:prompt_tokens]
    total, count, covered, tail = 0.0, 0, 0, ""
    for text, value in zip(reversed(tokens), reversed(values)):
        if covered >= len(candidate):
            break
        if not isinstance(text, str) or not (value is None or isinstance(value, (int, float))):
            raise MalformedResponse("the logprobs are malformed: a token or its logprob has the wrong type")
        covered += len(text)
        tail = text + tail
        if value is None:
            break
        total += float(value)
        count += 1
    if not _spells(tail, candidate):
        raise MalformedResponse(f"the logprobs are misaligned: the echoed tokens end in {tail[-40:]!r}, not in the "
                                f"candidate {candidate[-40:]!r}")
    if count == 0:
        return -math.inf
    return total / count if norm == "mean" else total


def _size(value: Any) -> str:
    return str(len(value)) if isinstance(value, list) else "no list of"


def _spells(tail: str, candidate: str) -> bool:
    """Whether echoed token text ends with an ASCII candidate, comparing letters and digits only
    (servers mark spaces in their own ways; other characters they may split into bytes)."""
    if not candidate.isascii():
        return True

    def key(text: str) -> str:
        return "".join(ch for ch in text if ch.isascii() and ch.isalnum()).lower()
    return key(tail).endswith(key(candidate))


def _message(e: openai.APIStatusError) -> str:
    """What the server said, in one line."""
    body = e.body if isinstance(e.body, dict) else {}
    said = body.get("message") or body.get("error") or e.message
    if isinstance(said, dict):
        said = said.get("message") or said
    return _one_line(str(said))


def list_models(base_url: str, api_key: str | None = None, timeout: float = 10.0) -> list[str]:
    """Model names an OpenAI-compatible server offers; EndpointError (one line) if it cannot say."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        raise EndpointError(f"cannot list models at {url}: {type(e).__name__}: {_one_line(str(e))}. Is a server "
                            "running? Start one with `autoact serve`, or pass its --base-url") from None
    if resp.status_code >= 400:
        try:
            body = resp.json()
            said = body.get("error", body) if isinstance(body, dict) else body
            said = said.get("message", said) if isinstance(said, dict) else said
        except ValueError:
            said = resp.text
        raise EndpointError(f"cannot list models at {url}: HTTP {resp.status_code}: {_one_line(str(said))}"
                            f"{_advice(resp.status_code)}") from None
    try:
        entries = resp.json()["data"]
        names = [m["id"] for m in entries]
        if not all(isinstance(n, str) for n in names):
            raise TypeError("an id is not a string")
    except (ValueError, KeyError, TypeError) as e:
        kind = resp.headers.get("content-type", "?")
        raise EndpointError(f"{url} does not answer as an OpenAI-compatible API ({kind}: {_one_line(resp.text, 80)!r};"
                            f" {type(e).__name__}: {e}): check --base-url, which should end in /v1") from None
    return names
