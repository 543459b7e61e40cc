"""vLLM's OpenAI-compatible server as an engine: the base model and the role adapters as LoRA modules.

    autoact serve --engine vllm --group runs/NAME/adapters     # on a machine where `vllm` is installed

starts ``python -m vllm.entrypoints.openai.api_server --model BASE --served-model-name NAME
--enable-lora --lora-modules plan=DIR tool=DIR reflect=DIR ...``: one process (vLLM starts its
own engine processes in the same group), no FastChat controller or worker. A request's
``model`` picks the adapter, and vLLM batches rows of different adapters together, as our
batched engine does. FastChat's own ``vllm_worker`` serves no LoRA adapter, which is why this
engine talks to vLLM's server directly.

Where vLLM's completions API differs from FastChat's, and how the clients cope (all of it in
:func:`agents.llm.candidate_logprob`, which reads both):

* an echoed prompt's first token has no logprob (``None``) in vLLM and a number in FastChat:
  scoring walks back from the candidate's last token and never reaches the first;
* vLLM counts the generated token of an echo request in ``completion_tokens`` (FastChat
  says 0): scoring keeps the first ``prompt_tokens`` entries, which both report alike;
* token texts are decoded pieces in both, with spaces marked differently: candidates are
  matched on their letters and digits.

Stop strings, ``max_tokens``, ``temperature``, ``n`` and usage counts behave alike. vLLM
needs ``--max-lora-rank`` at least the largest adapter rank and ``--max-loras`` at least the
number of adapters mixed in one batch; both are set from the adapters served.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from serving.adapters import check_adapters
from serving.processes import LOOPBACK, ServedProcesses

__all__ = ["LORA_RANKS", "VllmServer", "lora_rank", "vllm_available", "vllm_command"]

#: the ranks vLLM's ``--max-lora-rank`` accepts
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
INSTALL_HINT = ("--engine vllm: vLLM is not installed in this environment; on a machine with a GPU run "
                "`pip install vllm` in it (or use --engine batched)")


def vllm_available() -> bool:
    """Whether the ``vllm`` package can be imported here (nothing is imported)."""
    return importlib.util.find_spec("vllm") is not None


def lora_rank(adapters: Mapping[str, Path]) -> int:
    """The smallest rank vLLM accepts that holds every adapter's ``r`` (8 without adapters)."""
    ranks = [8]
    for name, path in adapters.items():
        try:
            ranks.append(int(json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))["r"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"adapter {name}: cannot read its rank from {path}/adapter_config.json ({err})") from None
    needed = max(ranks)
    for rank in LORA_RANKS:
        if rank >= needed:
            return rank
    raise ConfigError(f"adapter rank {needed} is above the {LORA_RANKS[-1]} vLLM serves")


def vllm_command(model: Any, adapters: Mapping[str, Path], *, host: str, port: int, api_key: str | None,
                 dtype: str = "auto", max_batch_size: int = 256, tensor_parallel: int = 1,
                 extra: Sequence[str] = ()) -> list[str]:
    """The interpreter arguments (after ``python``) of vLLM's OpenAI server for `model` and `adapters`."""
    args = ["-m", "vllm.entrypoints.openai.api_server", "--model", str(model.path),
            "--served-model-name", model.name, "--host", host, "--port", str(port),
            "--dtype", {"float32": "float32", "bfloat16": "bfloat16"}.get(dtype, "auto"),
            "--max-num-seqs", str(max_batch_size), "--tensor-parallel-size", str(tensor_parallel)]
    if api_key:
        args += ["--api-key", api_key]
    if adapters:
        args += ["--enable-lora", "--max-lora-rank", str(lora_rank(adapters)), "--max-loras", str(len(adapters)),
                 "--lora-modules", *(f"{name}={Path(path).resolve()}" for name, path in adapters.items())]
    return [*args, *extra]


class VllmServer(ServedProcesses):
    """vLLM's OpenAI-compatible server for one model and its LoRA adapters (see the module docstring).

    Takes :class:`serving.launcher.FastChatStack`'s keywords; ``workers`` becomes vLLM's tensor-parallel
    size (the model split over that many GPUs), and FastChat's controller options do not apply.
    """

    kind = "vLLM"

    def __init__(self, model: Any, host: str = LOOPBACK, port: int = 8000, api_key: str | None = None,
                 log_dir: Path | None = None, startup_timeout: float = 900, adapters: Mapping[str, Path] | None = None,
                 dtype: str = "auto", max_batch_size: int = 256, device: str = "auto", workers: int = 1,
                 extra_args: Sequence[str] = (), **ignored: Any) -> None:
        if not vllm_available():
            raise ConfigError(INSTALL_HINT)
        super().__init__(model, host, port, api_key, log_dir, startup_timeout, adapters)
        if self.adapters:
            check_adapters(self.adapters, model)
        from core.hardware import resolve_device

        self.device = resolve_device(device)  # vLLM picks its own platform; this only checks the request
        self.dtype, self.max_batch_size, self.workers = dtype, max_batch_size, max(1, workers)
        self.extra_args = list(extra_args)

    @property
    def devices(self) -> list[str]:
        return [self.device] * self.workers

    def _start_processes(self, deadline: float) -> None:
        args = vllm_command(self.model, self.adapters, host=self.host, port=self.port, api_key=self.api_key,
                            dtype=self.dtype, max_batch_size=self.max_batch_size, tensor_parallel=self.workers,
                            extra=self.extra_args)
        self._spawn("vllm", args, grace_s=20.0)  # it shuts its engine processes down on SIGTERM
        self._wait(f"models {', '.join(self.model_names)} to appear in {self.base_url}/models", deadline,
                   self._model_listed)
        self._wait("a first completion", deadline, self._completion_works)
