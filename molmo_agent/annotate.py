"""The one drawing module: markers for a model's points, to show a person what the model pointed at.

Also draws the agent's actions (:func:`draw_action`) for trajectory pages. Used by the CLI (``point --save``),
the demo, the trajectory recorder and examples; kept apart so no other module grows drawing code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from .actions import Action, ActionType
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


# --- actions (the agent loop's trajectory pages) ---------------------------------------------------------

_ACTION_COLOURS = {
    ActionType.CLICK: _PALETTE[0],
    ActionType.DOUBLE_CLICK: _PALETTE[2],
    ActionType.RIGHT_CLICK: _PALETTE[4],
    ActionType.LONG_PRESS: _PALETTE[3],
    ActionType.DRAG: _PALETTE[1],
    ActionType.TYPE: _PALETTE[6],
    ActionType.INPUT_TEXT: _PALETTE[6],
    ActionType.SCROLL: _PALETTE[5],
}
"""One colour per kind of action, so a glance at a trajectory tells clicks from drags."""
_DEFAULT_ACTION_COLOUR = _PALETTE[7]


def draw_action(image: Image.Image, action: Action) -> Image.Image:
    """A copy of ``image`` (RGB) showing what ``action`` does, with a caption naming it.

    Clicks get the point marker (a double click adds a second ring, a right click a square, a long press a
    thick halo), a drag an arrow from start to end, typed text a label box at the target (or at the top),
    a scroll an arrow at the screen edge it moves towards. Coordinates are pixels of ``image``.
    """
    canvas = image.convert("RGB")
    r = default_radius(canvas.size)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, 3 * r))
    colour = _ACTION_COLOURS.get(action.type, _DEFAULT_ACTION_COLOUR)
    kind = action.type
    if action.point is not None:
        x, y = action.point
        if kind is ActionType.DRAG and action.x2 is not None and action.y2 is not None:
            _draw_arrow(draw, (x, y), (action.x2, action.y2), colour, r)
        _draw_action_marker(draw, kind, x, y, r, colour, canvas.size)
    if kind in (ActionType.TYPE, ActionType.INPUT_TEXT) and action.text is not None:
        _draw_typed_text(draw, action, r, font, canvas.size)
    if kind is ActionType.SCROLL and action.direction is not None:
        _draw_scroll_arrow(draw, action.direction, r, colour, canvas.size)
    _draw_caption(draw, _caption(action), r, font, canvas.size)
    return canvas


def _draw_action_marker(
    draw: ImageDraw.ImageDraw,
    kind: ActionType,
    x: float,
    y: float,
    r: int,
    colour: tuple[int, int, int],
    size: tuple[int, int],
) -> None:
    """The point marker, decorated so the four kinds of press look different."""
    width = max(1, r // 3)
    if kind is ActionType.DOUBLE_CLICK:
        ring = 2 * r
        draw.ellipse((x - ring, y - ring, x + ring, y + ring), outline=colour, width=width)
    elif kind is ActionType.RIGHT_CLICK:
        side = 2 * r
        draw.rectangle((x - side, y - side, x + side, y + side), outline=colour, width=width)
    elif kind is ActionType.LONG_PRESS:
        halo = 2 * r
        draw.ellipse((x - halo, y - halo, x + halo, y + halo), outline=colour, width=max(2, r))
    object_id = _PALETTE.index(colour) + 1
    _draw_marker(draw, Point(x, y, x / size[0], y / size[1], object_id=object_id), r)


def _draw_arrow(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    colour: tuple[int, int, int],
    r: int,
    width: int | None = None,
) -> None:
    """A shaft with a filled head at ``end``, outlined so it reads on any background."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    width = max(2, r // 2) if width is None else width
    draw.line((x0, y0, x1, y1), fill=_OUTLINE, width=width + 2)
    draw.line((x0, y0, x1, y1), fill=colour, width=width)
    if length == 0:
        return
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    head = min(2.5 * r, length)
    base_x, base_y = x1 - ux * head, y1 - uy * head
    half = head * 0.6
    corners = [(x1, y1), (base_x - uy * half, base_y + ux * half), (base_x + uy * half, base_y - ux * half)]
    draw.polygon(corners, fill=colour, outline=_OUTLINE)


def _draw_scroll_arrow(
    draw: ImageDraw.ImageDraw, direction: str, r: int, colour: tuple[int, int, int], size: tuple[int, int]
) -> None:
    """A bold arrow along the middle of the edge the content scrolls towards (clear of the caption)."""
    width, height = size
    span = min(8 * r, min(size) // 3)
    margin, bottom = 2 * r, 5 * r
    cx, cy = width / 2, height / 2
    start, end = {
        "up": ((cx, margin + span), (cx, margin)),
        "down": ((cx, height - bottom - span), (cx, height - bottom)),
        "left": ((margin + span, cy), (margin, cy)),
        "right": ((width - margin - span, cy), (width - margin, cy)),
    }[direction]
    _draw_arrow(draw, start, end, colour, 2 * r, width=r)


def _draw_typed_text(
    draw: ImageDraw.ImageDraw,
    action: Action,
    r: int,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    size: tuple[int, int],
) -> None:
    """The text in quotes, below the target when there is one, else centred at the top of the screen."""
    text = f"\u201c{action.text}\u201d"
    if action.point is not None:
        x, y = action.point
        _draw_text_box(draw, text, (x - r, y + 2 * r), r, font, size)
    else:
        left, _, right, _ = draw.textbbox((0, 0), text, font=font)
        _draw_text_box(draw, text, ((size[0] - (right - left)) / 2, r), r, font, size)


def _draw_caption(
    draw: ImageDraw.ImageDraw,
    text: str,
    r: int,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    size: tuple[int, int],
) -> None:
    """The action, in words, in the bottom-left corner."""
    _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
    _draw_text_box(draw, text, (0, size[1] - (bottom - top) - 2 * max(1, r // 4)), r, font, size)


def _draw_text_box(
    draw: ImageDraw.ImageDraw,
    text: str,
    xy: tuple[float, float],
    r: int,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    size: tuple[int, int],
) -> None:
    """Light text on a dark box whose top-left is ``xy``, shifted to stay inside the image."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(1, r // 4)
    box_width, box_height = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(max(xy[0], 0), max(size[0] - box_width, 0))
    y = min(max(xy[1], 0), max(size[1] - box_height, 0))
    draw.rectangle((x, y, x + box_width, y + box_height), fill=_TEXT_BACKGROUND)
    draw.text((x + pad - left, y + pad - top), text, fill=_TEXT, font=font)


def _caption(action: Action) -> str:
    """``click (120, 340)``, ``drag (10, 20) -> (300, 20)``, ``hotkey ctrl+s``: the action in one line."""
    parts = [action.type.value]
    if action.point is not None:
        parts.append(f"({action.point[0]:.0f}, {action.point[1]:.0f})")
    if action.x2 is not None and action.y2 is not None:
        parts.append(f"-> ({action.x2:.0f}, {action.y2:.0f})")
    if action.direction:
        parts.append(action.direction)
    if action.keys:
        parts.append("+".join(action.keys))
    if action.app_name:
        parts.append(action.app_name)
    if action.text and action.type not in (ActionType.TYPE, ActionType.INPUT_TEXT):
        parts.append(f"\u201c{action.text}\u201d")
    return " ".join(parts)
