"""Images as ``data:`` URLs for an engine's chat-completions API.

PNG is lossless, so the engine decodes exactly the pixels an in-process model sees and the answers match
token for token; it is chosen for small images and for screenshots (flat colours compress well). Large
photos go as high-quality JPEG, which is several times smaller on the wire; their answers may then differ
from in-process ones by what JPEG changes. ``png`` / ``jpeg`` force one or the other.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

FORMATS = ("auto", "png", "jpeg")
PNG_MAX_PIXELS = 1_000_000
"""Up to about 1 MP every image goes as PNG: a few hundred kB at most, not worth a lossy step."""
SCREENSHOT_MAX_COLOURS = 512
"""A 64x64 thumbnail (4,096 pixels) with at most this many colours is a screenshot; photos have more."""
JPEG_QUALITY = 95


def choose_format(image: Image.Image, preference: str = "auto") -> str:
    """``"PNG"`` or ``"JPEG"`` for ``image`` under ``preference`` (one of :data:`FORMATS`)."""
    if preference == "png":
        return "PNG"
    if preference == "jpeg":
        return "JPEG"
    width, height = image.size
    if width * height <= PNG_MAX_PIXELS or _looks_like_screenshot(image):
        return "PNG"
    return "JPEG"


def _looks_like_screenshot(image: Image.Image) -> bool:
    thumbnail = image.convert("RGB").resize((64, 64), Image.Resampling.NEAREST)
    return thumbnail.getcolors(maxcolors=SCREENSHOT_MAX_COLOURS) is not None


def data_url(image: Image.Image, preference: str = "auto") -> str:
    """The image encoded as a ``data:image/...;base64,...`` URL."""
    fmt = choose_format(image, preference)
    buffer = io.BytesIO()
    rgb = image.convert("RGB")
    if fmt == "JPEG":
        rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        rgb.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{fmt.lower()};base64,{encoded}"
