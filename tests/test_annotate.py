"""Drawing points: markers land where the points are, on a copy of the image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from molmo_agent.annotate import default_radius, draw_points
from molmo_agent.points import Point

GREY = (128, 128, 128)


def _point(x: float, y: float, size: tuple[int, int], **kwargs: object) -> Point:
    return Point(x=x, y=y, x_norm=x / size[0], y_norm=y / size[1], **kwargs)


def _changed(before: Image.Image, after: Image.Image) -> np.ndarray:
    return np.any(np.asarray(before.convert("RGB")) != np.asarray(after), axis=-1)


def test_marker_changes_pixel_at_point_and_leaves_input_untouched() -> None:
    image = Image.new("RGB", (200, 100), GREY)
    result = draw_points(image, [_point(150, 30, image.size, label="mug")])
    assert result is not image and result.mode == "RGB" and result.size == image.size
    assert result.getpixel((150, 30)) != GREY
    assert image.getpixel((150, 30)) == GREY
    assert result.getpixel((20, 80)) == GREY


def test_off_centre_point_on_non_square_image_is_drawn_in_place() -> None:
    image = Image.new("RGB", (320, 120), GREY)
    x, y = 250, 90
    result = draw_points(image, [_point(x, y, image.size, object_id=1)], radius=10)
    assert result.getpixel((x + 3, y + 3)) == (230, 25, 75)
    assert result.getpixel((x, y)) != GREY
    # The mirrored location (as if x/y or width/height were swapped or flipped) stays untouched.
    for other in [(320 - x, 120 - y), (y, x % 120), (x, 120 - y)]:
        assert result.getpixel(other) == GREY
    rows, cols = np.nonzero(_changed(image, result)[y - 10 : y + 11, x - 10 : x + 11])
    assert abs(rows.mean() - 10) < 1.5 and abs(cols.mean() - 10) < 1.5


def test_label_is_drawn_up_and_right_of_the_marker() -> None:
    image = Image.new("RGB", (400, 200), GREY)
    x, y, r = 100, 120, 6
    result = draw_points(image, [_point(x, y, image.size, label="red mug", object_id=2)], radius=r)
    changed = _changed(image, result)
    changed[y - 2 * r - 1 : y + 2 * r + 2, x - 2 * r - 1 : x + 2 * r + 2] = False
    rows, cols = np.nonzero(changed)
    assert rows.size > 50
    assert cols.min() >= x + r and rows.max() <= y


def test_only_points_of_the_requested_image_are_drawn() -> None:
    image = Image.new("RGB", (100, 100), GREY)
    points = [_point(20, 20, image.size, image_index=0), _point(80, 80, image.size, image_index=1)]
    first = draw_points(image, points)
    second = draw_points(image, points, image_index=1)
    assert first.getpixel((20, 20)) != GREY and first.getpixel((80, 80)) == GREY
    assert second.getpixel((80, 80)) != GREY and second.getpixel((20, 20)) == GREY


def test_grayscale_input_gives_rgb_and_radius_scales_with_size() -> None:
    result = draw_points(Image.new("L", (50, 40), 200), [_point(49.9, 39.9, (50, 40), label="edge")])
    assert result.mode == "RGB"
    assert default_radius((4000, 3000)) > default_radius((640, 480)) >= 4
