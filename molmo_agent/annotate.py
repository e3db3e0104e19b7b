"""The one drawing module: markers for a model's points, to show a person what the model pointed at.

Used by the CLI (``point --save``), the demo and examples; kept apart so no other module grows drawing code.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from .points import Point

_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (255, 225, 25),
)
"""Distinct, saturated colours; consecutive object ids get different ones."""
_OUTLINE = (255, 255, 255)
_CROSSHAIR = (0, 0, 0)
_TEXT = (255, 255, 255)
_TEXT_BACKGROUND = (0, 0, 0)


def default_radius(size: tuple[int, int]) -> int:
    """A marker radius visible on a phone screenshot and a 4K frame alike (about 1.7% of the shorter side)."""
    return max(5, round(min(size) / 60))


def draw_points(
    image: Image.Image,
    points: Sequence[Point],
    *,
    radius: int | None = None,
    image_index: int = 0,
) -> Image.Image:
    """A copy of ``image`` (RGB) with each point of ``image_index`` drawn as a marker labelled ``label #id``.

    Points carry pixels of the original image, so ``image`` must be the original the model was given
    (not a resized copy); points of other images in a batch are skipped.
    """
    canvas = image.convert("RGB")
    r = default_radius(canvas.size) if radius is None else max(1, int(radius))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, 3 * r))
    for point in points:
        if point.image_index == image_index:
            _draw_marker(draw, point, r)
            _draw_label(draw, point, r, font, canvas.size)
    return canvas


def _draw_marker(draw: ImageDraw.ImageDraw, point: Point, r: int) -> None:
    """A filled disc with a light outline and a dark crosshair: readable on light and dark backgrounds."""
    x, y = point.x, point.y
    colour = _PALETTE[(point.object_id - 1) % len(_PALETTE)]
    outline = max(1, r // 3)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=_OUTLINE, width=outline)
    arm = 2 * r
    line = max(1, r // 4)
    draw.line((x - arm, y, x - r // 2, y), fill=_CROSSHAIR, width=line)
    draw.line((x + r // 2, y, x + arm, y), fill=_CROSSHAIR, width=line)
    draw.line((x, y - arm, x, y - r // 2), fill=_CROSSHAIR, width=line)
    draw.line((x, y + r // 2, x, y + arm), fill=_CROSSHAIR, width=line)


def _draw_label(
    draw: ImageDraw.ImageDraw,
    point: Point,
    r: int,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    size: tuple[int, int],
) -> None:
    """The label up and to the right of the marker, flipped to the other side when it would fall off."""
    text = f"{point.label} #{point.object_id}" if point.label else f"#{point.object_id}"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(1, r // 4)
    box_width, box_height = right - left + 2 * pad, bottom - top + 2 * pad
    x = point.x + r + pad
    if x + box_width > size[0]:
        x = point.x - r - pad - box_width
    y = point.y - r - pad - box_height
    if y < 0:
        y = point.y + r + pad
    x = min(max(x, 0), size[0] - box_width)
    y = min(max(y, 0), size[1] - box_height)
    draw.rectangle((x, y, x + box_width, y + box_height), fill=_TEXT_BACKGROUND)
    draw.text((x + pad - left, y + pad - top), text, fill=_TEXT, font=font)
