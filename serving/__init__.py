"""Serving: resolve a model and run it behind FastChat's OpenAI-compatible API.

Exports are loaded lazily, so ``python -m serving.worker_main`` does not import the
launcher (or itself twice) through this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.launcher import FastChatStack
    from serving.model_store import ResolvedModel, embedded_gguf_path, resolve_model
    from serving.worker_main import CHATML_TEMPLATE

_EXPORTS = {
    "FastChatStack": "serving.launcher",
    "ResolvedModel": "serving.model_store",
    "embedded_gguf_path": "serving.model_store",
    "resolve_model": "serving.model_store",
    "CHATML_TEMPLATE": "serving.worker_main",
}

__all__ = ["CHATML_TEMPLATE", "FastChatStack", "ResolvedModel", "embedded_gguf_path", "resolve_model"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'serving' has no attribute {name!r}")
