"""Image2Text[image]: the precomputed caption and OCR text of the question's image (ScienceQA)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from PIL import Image

from tools.base import ToolContext, ToolSpec

NO_IMAGE = "There is no image for this question."
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
#: PNG text chunks that may hold a description of the image (Text2Image writes `Description`).
_TEXT_CHUNKS = ("Description", "Caption", "Comment")
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


def image_path(argument: str) -> Path | None:
    """`argument` as an existing image file (by extension), else None."""
    text = argument.strip().strip("\"'")
    if not text or Path(text).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    try:
        path = Path(text).expanduser()
        return path if path.is_file() else None
    except (OSError, ValueError):
        return None


def describe_image_file(path: Path) -> str:
    """What can be said offline about an image file: its embedded description, if any."""
    try:
        with Image.open(path) as image:
            chunks = dict(getattr(image, "text", {}) or {})
            size = f"{image.width}x{image.height}"
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        return f"Cannot read the image {path}: {err}"
    stored = next((chunks[k].strip() for k in _TEXT_CHUNKS if str(chunks.get(k, "")).strip()),
                  None)
    if stored:
        return f"There is no precomputed caption for the image {path}; its embedded text: {stored}"
    return (f"There is no precomputed caption for the image {path} ({size} pixels), and no "
            "captioning model is available offline.")


class Image2Text:
    """Reads `caption` and `ocr` from the task row.

    The argument matters only when the row has no caption and it names an image file: then
    the answer says no caption is available for that file (plus any text embedded in it).
    """

    def __init__(self, spec: ToolSpec = IMAGE2TEXT_SPEC) -> None:
        self.spec = spec

    def run(self, argument: str, ctx: ToolContext) -> str:
        caption = ctx.row.get("caption")
        if _missing(caption) and (path := image_path(argument)) is not None:
            return describe_image_file(path)
        texts = ocr_texts(ctx.row.get("ocr"))
        if _missing(caption) and not texts:
            return NO_IMAGE
        parts = []
        if not _missing(caption):
            parts.append(f"Caption: {caption.strip().rstrip('.')}.")
        parts.append(f"Text in the image: {'; '.join(texts)}." if texts
                     else "No text in the image.")
        return " ".join(parts)
