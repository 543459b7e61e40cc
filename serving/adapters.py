"""LoRA adapters served side by side on one base model (FastChat `multi_model_worker`, shared weights).

`prepare_adapters` turns `{name: adapter dir}` into the worker's model list:

- each adapter is copied into the stack's work directory with its
  `base_model_name_or_path` pointing at the base model being served, so an
  adapter trained on another machine (another cache path) loads here too;
- the base model itself is served under its own name as an *identity*
  adapter: a copy of the first adapter with every `lora_B` matrix zeroed. Its
  LoRA update is exactly zero, so its outputs are the base model's, bit for
  bit, while the weights stay shared (FastChat would otherwise load the base a
  second time).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from core.errors import ConfigError
from core.roles import ADAPTER_NAMES
from serving.model_store import ResolvedModel

__all__ = ["check_adapters", "group_adapters", "parse_adapter_specs", "prepare_adapters"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def parse_adapter_specs(text: str) -> dict[str, Path]:
    """`plan=adapters/plan,tool=adapters/tool` → `{"plan": Path(...), ...}`."""
    out: dict[str, Path] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ConfigError(f"--adapters: {item!r} is not NAME=PATH")
        if not _NAME.match(name):
            raise ConfigError(f"--adapters: {name!r} is not a usable model name (letters, digits, _ . -)")
        if name in out:
            raise ConfigError(f"--adapters: the name {name!r} is given twice")
        out[name] = Path(path)
    if not out:
        raise ConfigError("--adapters: no adapters given")
    return out


def group_adapters(directory: Path) -> dict[str, Path]:
    """The role adapters (`plan`, `tool`, `reflect`, `all`) found in a `train --roles` output directory."""
    directory = Path(directory)
    found = {name: directory / name for name in ADAPTER_NAMES if (directory / name / "adapter_config.json").is_file()}
    if not found:
        raise ConfigError(f"--group {directory}: no adapter in it (expected {', '.join(ADAPTER_NAMES)} "
                          "subdirectories with adapter_config.json, as `autoact train --roles` writes)")
    return found


def _read_config(path: Path) -> dict:
    config_path = path / "adapter_config.json"
    if not config_path.is_file():
        raise ConfigError(f"adapter {path}: no adapter_config.json (not a peft adapter directory)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigError(f"{config_path}: not valid JSON ({err})") from err
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise ConfigError(f"{config_path}: not a LoRA adapter (peft_type {config.get('peft_type')!r})")
    if not any((path / w).is_file() for w in _WEIGHTS):
        raise ConfigError(f"adapter {path}: no adapter weights ({' or '.join(_WEIGHTS)})")
    return config


def _copy(src: Path, dst: Path, config: dict, base: ResolvedModel) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in _WEIGHTS:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    config = {**config, "base_model_name_or_path": str(base.path)}
    (dst / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def _zero_lora_b(adapter: Path) -> None:
    """Zero every `lora_B` matrix of a copied adapter (its update B·A becomes exactly 0)."""
    import torch
    from safetensors.torch import load_file, save_file

    st = adapter / "adapter_model.safetensors"
    if st.is_file():
        tensors = load_file(st)
        save_file({k: torch.zeros_like(v) if "lora_B" in k else v for k, v in tensors.items()}, st)
        return
    binary = adapter / "adapter_model.bin"
    tensors = torch.load(binary, map_location="cpu", weights_only=True)
    torch.save({k: torch.zeros_like(v) if "lora_B" in k else v for k, v in tensors.items()}, binary)


def check_adapters(adapters: Mapping[str, Path], base: ResolvedModel) -> dict[str, tuple[Path, dict]]:
    """Each adapter's resolved directory and config; a ConfigError names what cannot be served."""
    if not adapters:
        raise ConfigError("no adapters to serve")
    if "peft" in str(base.path).lower():
        raise ConfigError(f"base model path {base.path} contains 'peft', which FastChat refuses for a base model")
    if base.name in adapters:
        raise ConfigError(f"an adapter may not be named {base.name!r}: that is the base model's name")
    out = {}
    for name, path in adapters.items():
        path = Path(path).expanduser().resolve()
        out[name] = (path, _read_config(path))
    return out


def prepare_adapters(adapters: Mapping[str, Path], base: ResolvedModel, work_dir: Path) -> list[tuple[str, Path]]:
    """The `(model name, adapter dir)` list the worker serves: the base model's identity adapter first."""
    work_dir = Path(work_dir)
    served: list[tuple[str, Path]] = []
    configs = check_adapters(adapters, base)
    first_path, first_config = next(iter(configs.values()))
    identity = work_dir / "_base"
    _copy(first_path, identity, first_config, base)
    _zero_lora_b(identity)
    served.append((base.name, identity))
    for name, (path, config) in configs.items():
        _copy(path, work_dir / name, config, base)
        served.append((name, work_dir / name))
    return served
