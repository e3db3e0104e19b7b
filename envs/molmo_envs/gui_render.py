"""Drawing of ``SyntheticGui-v0`` screens with OpenCV (the one module where long functions live).

Colours are RGB and the canvas is an RGB ``uint8`` array; OpenCV does not care about channel order. Only
integer geometry and OpenCV's deterministic rasteriser are used, so a scene always renders to the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from .gui_scenes import Element, Scene

Color = tuple[int, int, int]
_AA = cv2.LINE_AA
_WHITE: Color = (255, 255, 255)


def text_width(text: str, font: int, scale: float) -> int:
    """Width in pixels of ``text`` drawn with a Hershey ``font`` at ``scale`` (used by the layout)."""
    (width, _), _ = cv2.getTextSize(text, font, scale, _thickness(scale))
    return int(width)


def _thickness(scale: float) -> int:
    return max(1, round(scale * 1.6))


def font_scale(unit: int) -> float:
    """Text scale for a layout unit (row height in pixels)."""
    return unit / 55.0


def _text(img: np.ndarray, text: str, origin: tuple[int, int], font: int, scale: float, color: Color) -> None:
    cv2.putText(img, text, origin, font, scale, color, _thickness(scale), _AA)


def _centered_text(
    img: np.ndarray, text: str, box: tuple[int, int, int, int], font: int, scale: float, color: Color
) -> None:
    (width, height), _ = cv2.getTextSize(text, font, scale, _thickness(scale))
    x = (box[0] + box[2] - width) // 2
    y = (box[1] + box[3] + height) // 2
    _text(img, text, (x, y), font, scale, color)


def _rounded_rect(
    img: np.ndarray, box: tuple[int, int, int, int], radius: int, color: Color, thickness: int = -1
) -> None:
    """A rounded rectangle, filled (``thickness=-1``) or outlined."""
    x0, y0, x1, y1 = box
    r = max(0, min(radius, (x1 - x0) // 2, (y1 - y0) // 2))
    if thickness < 0:
        cv2.rectangle(img, (x0 + r, y0), (x1 - r, y1), color, -1)
        cv2.rectangle(img, (x0, y0 + r), (x1, y1 - r), color, -1)
        for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
            cv2.circle(img, (cx, cy), r, color, -1, _AA)
        return
    for (ax, ay), (bx, by) in (
        ((x0 + r, y0), (x1 - r, y0)),
        ((x0 + r, y1), (x1 - r, y1)),
        ((x0, y0 + r), (x0, y1 - r)),
        ((x1, y0 + r), (x1, y1 - r)),
    ):
        cv2.line(img, (ax, ay), (bx, by), color, thickness, _AA)
    for (cx, cy), angle in (
        ((x0 + r, y0 + r), 180),
        ((x1 - r, y0 + r), 270),
        ((x1 - r, y1 - r), 0),
        ((x0 + r, y1 - r), 90),
    ):
        cv2.ellipse(img, (cx, cy), (r, r), angle, 0, 90, color, thickness, _AA)


def _shade(color: Color, factor: float) -> Color:
    return tuple(int(min(255, max(0, c * factor))) for c in color)  # type: ignore[return-value]


def _text_color(background: Color) -> Color:
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (25, 25, 25) if luminance > 150 else _WHITE


def _star(cx: int, cy: int, r: int) -> np.ndarray:
    angles = np.arange(10) * np.pi / 5 - np.pi / 2
    radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).round().astype(np.int32)


def _regular(cx: int, cy: int, r: int, sides: int, offset: float) -> np.ndarray:
    angles = np.arange(sides) * 2 * np.pi / sides + offset
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).round().astype(np.int32)


def draw_shape(img: np.ndarray, shape: str, box: tuple[int, int, int, int], color: Color) -> None:
    """Fill one icon shape (``gui_scenes.SHAPES``) inside ``box``: the one drawing of an icon, shared by the
    GUI screens and the training data's plain shape canvases."""
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) // 2, (y0 + y1) // 2, (x1 - x0) // 2
    if shape == "circle":
        cv2.circle(img, (cx, cy), r, color, -1, _AA)
    elif shape == "square":
        _rounded_rect(img, (x0 + 2, y0 + 2, x1 - 2, y1 - 2), max(2, r // 5), color)
    elif shape == "cross":
        arm = max(2, r // 3)
        cv2.rectangle(img, (cx - arm, y0), (cx + arm, y1), color, -1)
        cv2.rectangle(img, (x0, cy - arm), (x1, cy + arm), color, -1)
    else:
        points = {
            "triangle": lambda: _regular(cx, cy + r // 6, r, 3, -np.pi / 2),
            "diamond": lambda: _regular(cx, cy, r, 4, -np.pi / 2),
            "hexagon": lambda: _regular(cx, cy, r, 6, 0.0),
            "star": lambda: _star(cx, cy, r),
        }[shape]()
        cv2.fillPoly(img, [points], color, _AA)


def _draw_element(img: np.ndarray, scene: Scene, element: Element) -> None:
    theme = scene.theme
    u, font = theme.unit, theme.font
    scale = font_scale(u)
    box = element.box
    x0, y0, x1, y1 = box
    color = _color(element.color)
    if element.kind == "button":
        fill = _shade(color, 0.75) if element.taps else color
        _rounded_rect(img, box, (y1 - y0) // 3, fill)
        _centered_text(img, element.label, box, font, scale, _text_color(fill))
    elif element.kind == "icon":
        draw_shape(img, element.shape, box, color)
    elif element.kind == "field":
        assert element.label_at is not None
        _text(img, element.label, element.label_at, font, scale * 0.8, theme.ink)
        _rounded_rect(
            img, box, u // 6, _shade(theme.background, 1.04 if sum(theme.background) < 300 else 1.0)
        )
        focused = scene.focused == element.id
        border = (40, 110, 230) if focused else _shade(theme.ink, 0.5) if sum(theme.ink) > 300 else (150,) * 3
        _rounded_rect(img, box, u // 6, border, 2 if focused else 1)
        pad = u // 4
        if element.text:
            (_, th), _ = cv2.getTextSize(element.text, font, scale, _thickness(scale))
            _text(img, element.text, (x0 + pad, (y0 + y1 + th) // 2), font, scale, theme.ink)
        if focused:
            caret_x = x0 + pad + (text_width(element.text, font, scale) + 3 if element.text else 0)
            cv2.line(img, (caret_x, y0 + pad), (caret_x, y1 - pad), (40, 110, 230), 2)
    elif element.kind == "toggle":
        assert element.label_at is not None
        ink = theme.ink if element.layer == 0 else (30, 30, 30)
        _text(img, element.label, element.label_at, font, scale, ink)
        track = (60, 170, 90) if element.on else (175, 175, 175)
        _rounded_rect(img, box, (y1 - y0) // 2, track)
        r = (y1 - y0) // 2 - 3
        knob_x = x1 - r - 3 if element.on else x0 + r + 3
        cv2.circle(img, (knob_x, (y0 + y1) // 2), r, _WHITE, -1, _AA)
    elif element.kind == "list_item":
        selected = element.taps > 0
        fill = _shade(theme.background, 0.9 if sum(theme.background) > 300 else 1.6)
        _rounded_rect(img, box, u // 5, _shade(color, 1.0) if selected else fill)
        dot = (x0 + u // 2, (y0 + y1) // 2)
        cv2.circle(img, dot, max(3, u // 6), _WHITE if selected else color, -1, _AA)
        ink = _text_color(color) if selected else theme.ink
        (_, th), _ = cv2.getTextSize(element.label, font, scale, _thickness(scale))
        _text(img, element.label, (x0 + u, (y0 + y1 + th) // 2), font, scale, ink)
        cv2.line(img, (x1 - u // 2, dot[1] - u // 6), (x1 - u // 3, dot[1]), ink, 2, _AA)
        cv2.line(img, (x1 - u // 3, dot[1]), (x1 - u // 2, dot[1] + u // 6), ink, 2, _AA)
    elif element.kind == "menu_button":
        ink = _text_color(theme.header)
        step = (y1 - y0) // 4
        for k in (1, 2, 3):
            y = y0 + k * step
            cv2.line(img, (x0 + step, y), (x1 - step, y), ink, max(2, u // 14), _AA)
    elif element.kind == "panel":
        cv2.rectangle(img, (x0, y0), (x1, y1), (248, 248, 250), -1)
        cv2.line(img, (x1, y0), (x1, y1), (200, 200, 200), 1)


def _color(name: str) -> Color:
    from .gui_scenes import COLORS

    return COLORS.get(name, (128, 128, 128))


def render(scene: Scene) -> np.ndarray:
    """The screenshot of ``scene`` in its current state: ``(height, width, 3)`` RGB ``uint8``."""
    width, height = scene.size
    theme = scene.theme
    img = np.empty((height, width, 3), dtype=np.uint8)
    cv2.rectangle(img, (0, 0), (width - 1, height - 1), theme.backdrop, -1)
    ax0, ay0, ax1, ay1 = scene.app_box
    cv2.rectangle(img, (ax0, ay0), (ax1, ay1), theme.background, -1)
    u = theme.unit
    header_h = int(u * 1.5)
    cv2.rectangle(img, (ax0, ay0), (ax1, ay0 + header_h - 1), theme.header, -1)
    scale = font_scale(u)
    _text(img, scene.title, (ax0 + int(u * 1.6), ay0 + int(u * 1.0)), theme.font, scale * 1.1,
          _text_color(theme.header))  # fmt: skip
    drawer = False
    for element in scene.visible():
        if element.layer == 1 and not drawer:
            drawer = True
            body = img[ay0 + header_h : ay1 + 1, ax0 : ax1 + 1]
            np.right_shift(body, 1, out=body)
            body += 10
        _draw_element(img, scene, element)
    return img
