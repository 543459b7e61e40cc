"""Serving: resolve a model and run it behind FastChat's OpenAI-compatible API."""

from serving.launcher import FastChatStack
from serving.model_store import ResolvedModel, embedded_gguf_path, resolve_model
from serving.worker_main import CHATML_TEMPLATE

__all__ = ["CHATML_TEMPLATE", "FastChatStack", "ResolvedModel", "embedded_gguf_path", "resolve_model"]
