"""Prompt templates (package data) and the one builder used at inference and for training data."""

from prompts.builder import (
    PromptBuilder,
    load_template,
    render_tools,
    render_transcript,
)

__all__ = ["PromptBuilder", "load_template", "render_tools", "render_transcript"]
