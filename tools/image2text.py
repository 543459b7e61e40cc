"""Image2Text[image]: the precomputed caption and OCR text of the question's image (ScienceQA)."""

from __future__ import annotations

import ast
import re
from typing import Any

from tools.base import ToolContext, ToolSpec

NO_IMAGE = "There is no image for this question."
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")

IMAGE2TEXT_SPEC = ToolSpec(
    name="Image2Text",
    description="Describes the image that comes with the question: a caption and any text "
                "written in it.",
    usage="Image2Text[image]",
)


def _missing(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip() or value.strip().lower() == "no img"


def ocr_texts(ocr: Any) -> list[str]:
    """The text pieces of an OCR result: `[(box, text, confidence), ...]` as a list or its repr.

    Strings are parsed with `ast.literal_eval`; if that fails the quoted strings are pulled out
    with a regex instead. Anything else yields `[]`.
    """
    if isinstance(ocr, str):
        if _missing(ocr):
            return []
        try:
            parsed: Any = ast.literal_eval(ocr.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return [t.strip() for a, b in _QUOTED.findall(ocr) if (t := a or b).strip()]
    else:
        parsed = ocr
    if not isinstance(parsed, (list, tuple)):
        return []
    texts: list[str] = []
    for item in parsed:
        if isinstance(item, str):
            text = item
        elif isinstance(item, dict):
            text = item.get("text")
        elif isinstance(item, (list, tuple)) and len(item) >= 2:
            text = item[1]
        else:
            continue
        if isinstance(text, str) and text.strip():
            texts.append(text.strip())
    return texts


class Image2Text:
    """Reads `caption` and `ocr` from the task row; the argument is not used."""

    def __init__(self, spec: ToolSpec = IMAGE2TEXT_SPEC) -> None:
        self.spec = spec

    def run(self, argument: str, ctx: ToolContext) -> str:
        caption = ctx.row.get("caption")
        texts = ocr_texts(ctx.row.get("ocr"))
        if _missing(caption) and not texts:
            return NO_IMAGE
        parts = []
        if not _missing(caption):
            parts.append(f"Caption: {caption.strip().rstrip('.')}.")
        parts.append(f"Text in the image: {'; '.join(texts)}." if texts
                     else "No text in the image.")
        return " ".join(parts)
