"""The terminal: one console that prints user data literally, styled lines, and warnings on stderr."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.text import Text

console = Console(stderr=False, markup=False)  # user data (paths, answers, errors) is printed literally


def styled(*parts: str | tuple[str, str]) -> Text:
    """One line of literal text; `(text, style)` parts are shown in that style."""
    return Text.assemble(*parts)


def log_to_stderr() -> None:
    """autoact's warnings (a server that stopped answering, a fallback taken) as `warning: …` lines."""
    logger = logging.getLogger("autoact")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.setLevel(logging.WARNING)
        logger.addHandler(handler)
        logger.propagate = False


