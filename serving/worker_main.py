"""Run a FastChat worker module after preparing FastChat in this process.

    python -m serving.worker_main [fastchat.serve.multi_model_worker] --model-path ... [worker args]

The first argument names the FastChat module to run when it starts with ``fastchat.serve.``
(default ``fastchat.serve.model_worker``); every other argument goes to that module. Before
it runs, this process gets:

* the ChatML template :data:`CHATML_TEMPLATE` (FastChat has none for SmolLM2), with the
  end-of-turn token ids read from the first ``--model-path``;
* a faster prompt-logprob computation (see :func:`patch_prompt_logprobs`; disabled by
  ``AUTOACT_LOGPROB_PATCH=0``).

This module imports nothing heavy at import time, so its constants are cheap to reuse.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import runpy
import sys
from pathlib import Path

CHATML_TEMPLATE = "smollm2"
CHATML_SYSTEM_MESSAGE = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHATML_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
DEFAULT_MODULE = "fastchat.serve.model_worker"
PATCH_ENV = "AUTOACT_LOGPROB_PATCH"  # set to 0 to run FastChat's generate_stream unchanged

log = logging.getLogger(__name__)

# FastChat 0.2.36 (fastchat/serve/inference.py, generate_stream) turns the whole
# [prompt_len, vocab] log-softmax matrix into nested Python lists to read one value per row.
# For a 600-token prompt and SmolLM2's 49152-token vocabulary that is ~30M Python floats.
_SLOW_PROMPT_LOGPROBS = """\
                shift_logits = torch.log_softmax(shift_logits, dim=-1).tolist()
                for label_id, logit in zip(
                    shift_input_ids[0].tolist(), shift_logits[0]
                ):
                    token_logprobs.append(logit[label_id])
"""
# Same values (same log_softmax, one gathered entry per prompt token), no list of the matrix.
_FAST_PROMPT_LOGPROBS = """\
                shift_logits = torch.log_softmax(shift_logits, dim=-1)
                token_logprobs.extend(
                    shift_logits[0].gather(-1, shift_input_ids[0].unsqueeze(-1)).squeeze(-1).tolist()
                )
"""


def chatml_stop_token_ids(model_path: str | Path) -> list[int]:
    """Ids of the ChatML end-of-turn tokens in the model's ``tokenizer.json`` (empty if unknown).

    Ids differ between vocabularies, so they are read from the model (for a LoRA adapter, from
    its base model) instead of hard-coded;
    FastChat adds the tokenizer's eos token to the stop tokens in any case.
    """
    path = Path(model_path)
    if not (path / "tokenizer.json").is_file() and (path / "adapter_config.json").is_file():
        try:  # a LoRA adapter: its base model has the tokenizer
            path = Path(json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"])
        except (OSError, ValueError, KeyError, TypeError):
            return []
    try:
        data = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    added = data.get("added_tokens", []) if isinstance(data, dict) else []
    ids = {t.get("content"): t.get("id") for t in added if isinstance(t, dict)}
    return [ids[tok] for tok in CHATML_STOP_TOKENS if isinstance(ids.get(tok), int)]


def register_chatml_template(stop_token_ids: list[int] | None = None) -> None:
    """Register the ChatML template with FastChat in this process (replacing an earlier one).

    Rendered prompt: ``<|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{text}``
    ``<|im_end|>\\n<|im_start|>assistant\\n`` — SmolLM2's own chat template.
    """
    from fastchat.conversation import (
        Conversation,
        SeparatorStyle,
        register_conv_template,
    )

    register_conv_template(
        Conversation(
            name=CHATML_TEMPLATE,
            system_template="<|im_start|>system\n{system_message}",
            system_message=CHATML_SYSTEM_MESSAGE,
            roles=("<|im_start|>user", "<|im_start|>assistant"),
            sep_style=SeparatorStyle.CHATML,
            sep="<|im_end|>",
            stop_token_ids=list(stop_token_ids or []),
        ),
        override=True,
    )


def patch_prompt_logprobs() -> bool:
    """Make ``fastchat.serve.inference.generate_stream`` compute prompt logprobs cheaply.

    Workers obtain their generate function from ``get_generate_stream_function``, which
    imports ``generate_stream`` from ``fastchat.serve.inference`` when called (worker start),
    so rebinding the module attribute before the worker starts is enough. The function is
    recompiled from its own source with only the prompt-logprob statement replaced; the
    response format and values stay the same. Returns False (and changes nothing) when the
    installed FastChat does not contain the expected statement.
    """
    from fastchat.serve import inference

    original = inference.generate_stream
    if getattr(original, "_autoact_patched", False):
        return True
    source = inspect.getsource(original)
    if source.count(_SLOW_PROMPT_LOGPROBS) != 1:
        log.warning("FastChat's generate_stream changed; prompt logprobs left unpatched")
        return False
    first_line = inspect.getsourcelines(original)[1]
    patched = "\n" * (first_line - 1) + source.replace(_SLOW_PROMPT_LOGPROBS, _FAST_PROMPT_LOGPROBS)
    exec(compile(patched, inspect.getsourcefile(original) or "<fastchat>", "exec"), vars(inference))  # noqa: S102 - FastChat's own source
    inference.generate_stream._autoact_patched = True  # type: ignore[attr-defined]
    return True


def _first_model_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--model-path" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--model-path="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> None:
    """Prepare FastChat, then run the chosen FastChat module as ``__main__`` with ``argv``."""
    args = list(sys.argv[1:] if argv is None else argv)
    module = args.pop(0) if args and args[0].startswith("fastchat.serve.") else DEFAULT_MODULE
    model_path = _first_model_path(args)
    register_chatml_template(chatml_stop_token_ids(model_path) if model_path else [])
    if os.environ.get(PATCH_ENV, "1") != "0":
        patch_prompt_logprobs()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
