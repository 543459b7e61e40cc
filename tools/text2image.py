"""Text2Image[text]: draw text into a word-wrapped PNG (Pillow's default font); return its path.

The rendered text is also stored in the PNG's `Description` text chunk, so Image2Text can read
it back without a captioning model.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from tools.base import ToolContext, ToolSpec

TEXT2IMAGE_SPEC = ToolSpec(
    name="Text2Image",
    description="Draws the given text as an image and returns the path of the PNG file.",
    usage="Text2Image[text], e.g. Text2Image[A red triangle above a blue square]",
)

TEXT_CHUNK = "Description"
MAX_TEXT_CHARS = 2000
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def wrap_text(text: str, font: Font, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels; a word wider than a line is split by characters."""
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if probe.textlength(candidate, font=font) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for char in word:
                if line and probe.textlength(line + char, font=font) > width:
                    lines.append(line)
                    line = ""
                line += char
        lines.append(line)
    return lines


def render_text(text: str, path: Path, width: int = 512, font_size: int = 20,
                margin: int = 16) -> Path:
    """Write `text` as black-on-white PNG at `path` (parent folders are created)."""
    font = _font(font_size)
    lines = wrap_text(text, font, width - 2 * margin)
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (font_size, 0)
    line_height = ascent + descent + 4
    image = Image.new("RGB", (width, 2 * margin + line_height * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * line_height), line, fill="black", font=font)
    info = PngInfo()
    info.add_itxt(TEXT_CHUNK, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", pnginfo=info)
    return path


class Text2Image:
    """Saves images as `text2image-<hash>.png` in `image_dir` (a fresh temp dir when None)."""

    def __init__(self, image_dir: str | Path | None = None,
                 spec: ToolSpec = TEXT2IMAGE_SPEC) -> None:
        self.spec = spec
        self._image_dir = Path(image_dir) if image_dir is not None else None

    @property
    def image_dir(self) -> Path:
        if self._image_dir is None:  # made on first use, so unused tools leave nothing behind
            self._image_dir = Path(tempfile.mkdtemp(prefix="autoact-images-"))
        return self._image_dir

    def run(self, argument: str, ctx: ToolContext) -> str:
        text = argument.strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1].strip()
        if not text:
            return f"Text2Image needs some text to draw. {self.spec.usage}"
        if len(text) > MAX_TEXT_CHARS:
            return f"Text2Image draws at most {MAX_TEXT_CHARS} characters; got {len(text)}."
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        path = self.image_dir / f"text2image-{digest}.png"
        try:
            render_text(text, path)
        except OSError as err:
            return f"Text2Image could not save the image in {self.image_dir}: {err}"
        return str(path)
