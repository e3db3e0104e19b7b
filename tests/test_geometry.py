"""Coordinate conversion: client resizes/crops, pinhole deprojection, depth lookup and rigid transforms."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from molmo_agent.geometry import (
    PER_MILLE,
    PERCENT,
    CameraIntrinsics,
    ResizeTransform,
    RigidTransform,
    deproject,
    fit_within,
    make_point,
    normalized_to_pixels,
    pixels_to_normalized,
    point_to_3d,
    robust_depth,
    undistort_pixel,
)
from molmo_agent.points import Point


def _point(x: float, y: float, size: tuple[int, int]) -> Point:
    return Point(x=x, y=y, x_norm=x / size[0], y_norm=y / size[1], label="mug", image_index=2, object_id=3)


def _rotation_z(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# --- existing helpers ----------------------------------------------------------------------------------


def test_existing_normalisation_helpers() -> None:
    assert pixels_to_normalized(480, 270, (960, 540)) == (0.5, 0.5)
    assert normalized_to_pixels(0.25, 0.5, (1920, 1080)) == (480.0, 540.0)
    point = make_point(500, 250, PER_MILLE, (1920, 1080))
    assert point is not None and (point.x, point.y) == (960.0, 270.0)
    assert make_point(101, 5, PERCENT, (10, 10)) is None


# --- ResizeTransform -----------------------------------------------------------------------------------


def test_resize_round_trip_is_exact_for_representable_scales() -> None:
    t = ResizeTransform.resize((1920, 1080), (960, 270))
    assert (t.scale_x, t.scale_y) == (0.5, 0.25)
    assert t.to_transformed(100.0, 100.0) == (50.0, 25.0)
    assert t.to_original(50.0, 25.0) == (100.0, 100.0)


def test_resize_round_trip_for_arbitrary_scales() -> None:
    t = ResizeTransform.resize((1280, 720), (333, 517))
    rng = np.random.default_rng(1)
    for x, y in rng.uniform(0, 1280, size=(50, 2)):
        assert t.to_original(*t.to_transformed(x, y)) == pytest.approx((x, y), abs=1e-9)


def test_letterbox_wide_image_pads_top_and_bottom() -> None:
    t = ResizeTransform.letterbox((640, 480), (512, 512))
    assert (t.scale_x, t.scale_y) == (0.8, 0.8)
    assert (t.offset_x, t.offset_y) == (0, 64)
    assert t.content_box == (0, 64, 512.0, 448.0)
    assert t.to_transformed(320, 240) == pytest.approx((256, 256))
    assert t.to_original(256, 256) == pytest.approx((320, 240))
    assert t.to_original(0, 64) == (0.0, 0.0)


def test_letterbox_tall_image_pads_left_and_right() -> None:
    t = ResizeTransform.letterbox((300, 600), (400, 400))
    assert (t.offset_x, t.offset_y) == (100, 0)
    assert t.to_transformed(300, 600) == (300.0, 400.0)


def test_letterbox_whole_pixel_content_matches_pil_letterbox() -> None:
    """The transform describes exactly what resize-then-paste-at-content_box produces."""
    from PIL import Image

    t = ResizeTransform.letterbox((333, 200), (224, 224))
    left, top, right, bottom = (round(v) for v in t.content_box)
    assert t.content_box == pytest.approx((left, top, right, bottom), abs=1e-9)
    original = Image.new("RGB", (333, 200))
    original.putpixel((200, 50), (255, 255, 255))
    boxed = Image.new("RGB", (224, 224))
    boxed.paste(original.resize((right - left, bottom - top), Image.Resampling.BOX), (left, top))
    bright = np.argwhere(np.asarray(boxed)[..., 0] > 0)
    row, col = bright.mean(axis=0)
    assert t.to_original(col + 0.5, row + 0.5) == pytest.approx((200.5, 50.5), abs=1.0)


def test_crop() -> None:
    t = ResizeTransform.crop((1920, 1080), (100, 50, 612, 562))
    assert t.transformed_size == (512, 512)
    assert t.to_transformed(100, 50) == (0.0, 0.0)
    assert t.to_original(10.5, 20.25) == (110.5, 70.25)
    with pytest.raises(ValueError, match="right > left"):
        ResizeTransform.crop((100, 100), (50, 0, 50, 10))


def test_composition_matches_sequential_application() -> None:
    crop = ResizeTransform.crop((1920, 1080), (320, 0, 1600, 1080))
    letterbox = ResizeTransform.letterbox((1280, 1080), (448, 448))
    both = crop.then(letterbox)
    assert both.original_size == (1920, 1080) and both.transformed_size == (448, 448)
    for x, y in [(320, 0), (1000, 500), (1599, 1079)]:
        assert both.to_transformed(x, y) == pytest.approx(
            letterbox.to_transformed(*crop.to_transformed(x, y))
        )
        assert both.to_original(*both.to_transformed(x, y)) == pytest.approx((x, y))


def test_composition_checks_sizes() -> None:
    with pytest.raises(ValueError, match="cannot chain"):
        ResizeTransform.resize((100, 100), (50, 50)).then(ResizeTransform.resize((60, 60), (30, 30)))


def test_point_to_original_on_non_square_image() -> None:
    t = ResizeTransform.resize((1920, 1080), (960, 540))
    result = t.point_to_original(_point(480, 135, (960, 540)))
    assert (result.x, result.y) == (960.0, 270.0)
    assert (result.x_norm, result.y_norm) == (0.5, 0.25)
    assert (result.label, result.image_index, result.object_id) == ("mug", 2, 3)


def test_point_to_original_through_letterbox_rederives_normalised_coordinates() -> None:
    t = ResizeTransform.letterbox((1280, 720), (640, 640))
    assert (t.offset_x, t.offset_y) == (0, 140)
    seen = _point(160, 140 + 90, (640, 640))
    result = t.point_to_original(seen)
    assert (result.x, result.y) == pytest.approx((320, 180))
    assert (result.x_norm, result.y_norm) == pytest.approx((0.25, 0.25))
    assert seen.y_norm != pytest.approx(result.y_norm)


def test_point_in_padding_is_clamped_to_the_image() -> None:
    t = ResizeTransform.letterbox((1280, 720), (640, 640))
    result = t.point_to_original(_point(10, 5, (640, 640)))
    assert result.y == 0.0 and result.y_norm == 0.0
    assert result.x == pytest.approx(20.0)


def test_resize_transform_validation() -> None:
    with pytest.raises(ValueError):
        ResizeTransform.resize((0, 10), (5, 5))
    with pytest.raises(ValueError, match="scale_x"):
        ResizeTransform((10, 10), (10, 10), scale_x=0.0)
    with pytest.raises(ValueError, match="offset_y"):
        ResizeTransform((10, 10), (10, 10), offset_y=math.nan)
    assert ResizeTransform.identity((4, 3)).to_original(1.5, 2.5) == (1.5, 2.5)


@pytest.mark.parametrize(
    ("size", "max_pixels", "expected"),
    [
        ((640, 480), 1_000_000, (640, 480)),
        ((4000, 3000), 3_000_000, (2000, 1500)),
        ((100000, 1), 10, (10, 1)),
    ],
)
def test_fit_within(size: tuple[int, int], max_pixels: int, expected: tuple[int, int]) -> None:
    assert fit_within(size, max_pixels) == expected


def test_fit_within_never_exceeds_and_keeps_aspect() -> None:
    rng = np.random.default_rng(2)
    for width, height, limit in zip(
        rng.integers(1, 10000, 200), rng.integers(1, 10000, 200), rng.integers(1, 5_000_000, 200), strict=True
    ):
        new_width, new_height = fit_within((int(width), int(height)), int(limit))
        assert new_width * new_height <= max(limit, 1) or (new_width, new_height) == (1, 1)
        assert 1 <= new_width <= width and 1 <= new_height <= height
        if min(new_width, new_height) >= 50:
            assert new_width / new_height == pytest.approx(width / height, rel=0.05)
    with pytest.raises(ValueError):
        fit_within((10, 10), 0)


# --- intrinsics, undistortion, deprojection ------------------------------------------------------------

K = CameraIntrinsics(fx=500.0, fy=400.0, cx=320.0, cy=240.0)
DISTORTED = CameraIntrinsics(
    fx=600.0, fy=610.0, cx=330.0, cy=245.0, distortion=(-0.28, 0.09, 0.001, -0.0005, -0.01)
)


def test_intrinsics_matrix_and_scaling() -> None:
    assert np.array_equal(K.matrix, [[500, 0, 320], [0, 400, 240], [0, 0, 1]])
    half = K.scaled(0.5)
    assert (half.fx, half.fy, half.cx, half.cy) == (250.0, 200.0, 160.0, 120.0)
    assert DISTORTED.scaled(2.0, 3.0).distortion == DISTORTED.distortion
    assert CameraIntrinsics.from_matrix(K.matrix) == K


def test_scaled_intrinsics_agree_with_resize_transform() -> None:
    """Deprojecting a point on a resized image with scaled intrinsics equals mapping it back first."""
    t = ResizeTransform.resize((640, 480), (320, 160))
    small = K.scaled(t.scale_x, t.scale_y)
    u, v = 100.0, 70.0
    assert deproject(u, v, 2.0, small) == pytest.approx(deproject(*t.to_original(u, v), 2.0, K))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fx": 0.0, "fy": 1.0, "cx": 0.0, "cy": 0.0},
        {"fx": 1.0, "fy": -2.0, "cx": 0.0, "cy": 0.0},
        {"fx": math.inf, "fy": 1.0, "cx": 0.0, "cy": 0.0},
        {"fx": 1.0, "fy": 1.0, "cx": math.nan, "cy": 0.0},
        {"fx": 1.0, "fy": 1.0, "cx": 0.0, "cy": 0.0, "distortion": (0.1, 0.2, 0.3)},
        {"fx": 1.0, "fy": 1.0, "cx": 0.0, "cy": 0.0, "distortion": (0.1, math.nan, 0.0, 0.0)},
    ],
)
def test_intrinsics_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CameraIntrinsics(**kwargs)


def test_undistort_is_identity_without_distortion() -> None:
    assert undistort_pixel(12.5, 400.25, K) == (12.5, 400.25)
    zeros = CameraIntrinsics(500.0, 400.0, 320.0, 240.0, distortion=(0.0, 0.0, 0.0, 0.0))
    assert undistort_pixel(12.5, 400.25, zeros) == (12.5, 400.25)


def _project(points: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    pixels, _ = cv2.projectPoints(
        points, np.zeros(3), np.zeros(3), intrinsics.matrix, np.array(intrinsics.distortion, dtype=np.float64)
    )
    return pixels.reshape(-1, 2)


def test_undistort_inverts_opencv_projection() -> None:
    points = np.array([[0.3, -0.2, 1.0], [-0.5, 0.35, 1.5], [0.05, 0.02, 0.8]])
    distorted = _project(points, DISTORTED)
    ideal = _project(points, CameraIntrinsics(DISTORTED.fx, DISTORTED.fy, DISTORTED.cx, DISTORTED.cy))
    assert not np.allclose(distorted, ideal, atol=1.0)
    for (u, v), expected in zip(distorted, ideal, strict=True):
        assert undistort_pixel(u, v, DISTORTED) == pytest.approx(tuple(expected), abs=1e-3)


@pytest.mark.parametrize("terms", [4, 5, 8, 12, 14])
def test_undistort_equals_opencv_for_every_distortion_model(terms: int) -> None:
    """Our numpy inverse (no OpenCV in the formats layer) against ``cv2.undistortPoints`` itself."""
    rng = np.random.default_rng(terms)
    for _ in range(100):
        distortion = tuple(rng.normal(0.0, 0.1, size=terms))
        camera = CameraIntrinsics(500.0, 480.0, 320.0, 240.0, distortion=distortion)
        u, v = rng.uniform(0, 640), rng.uniform(0, 480)
        pixel = np.array([[[u, v]]], dtype=np.float64)
        expected = cv2.undistortPoints(pixel, camera.matrix, np.array(distortion), P=camera.matrix)[0, 0]
        assert undistort_pixel(u, v, camera) == pytest.approx(tuple(expected), abs=1e-8)


def test_deproject_hand_computed() -> None:
    assert deproject(420.0, 140.0, 2.0, K) == pytest.approx([0.4, -0.5, 2.0])
    assert deproject(320.0, 240.0, 1.5, K) == pytest.approx([0.0, 0.0, 1.5])
    with pytest.raises(ValueError, match="depth_m"):
        deproject(1.0, 1.0, 0.0, K)


def test_deproject_with_distortion_recovers_the_3d_point() -> None:
    point = np.array([-0.42, 0.31, 1.7])
    ((u, v),) = _project(point[None], DISTORTED)
    assert deproject(u, v, point[2], DISTORTED) == pytest.approx(point, abs=1e-5)


# --- depth ---------------------------------------------------------------------------------------------


def test_robust_depth_ignores_holes_and_flying_pixels() -> None:
    depth = np.full((20, 30), 1.25, dtype=np.float32)
    depth[10, 10] = 0.0
    depth[9, 11] = np.nan
    depth[11, 9] = 9.0
    assert robust_depth(depth, 10.0, 10.0) == pytest.approx(1.25)


def test_robust_depth_uint16_millimetres() -> None:
    depth = np.zeros((10, 10), dtype=np.uint16)
    depth[4:7, 4:7] = 1500
    depth[5, 5] = 0
    assert robust_depth(depth, 5.4, 4.6, depth_scale=0.001) == pytest.approx(1.5)


def test_robust_depth_all_holes_is_none() -> None:
    depth = np.zeros((10, 10), dtype=np.uint16)
    depth[0, 0] = 800
    assert robust_depth(depth, 7, 7, window=5, depth_scale=0.001) is None
    assert robust_depth(depth, 1, 1, window=3, depth_scale=0.001) == pytest.approx(0.8)


def test_robust_depth_window_clipped_at_the_corner() -> None:
    depth = np.arange(1, 101, dtype=np.float64).reshape(10, 10)
    assert robust_depth(depth, 0, 0, window=5) == float(np.median(depth[:3, :3]))
    assert robust_depth(depth, 9.2, 9.4, window=1) == 100.0


def test_robust_depth_errors() -> None:
    with pytest.raises(ValueError, match=r"2-D.*\(4, 4, 1\)"):
        robust_depth(np.ones((4, 4, 1)), 1, 1)
    with pytest.raises(ValueError, match="outside the 4x4 depth image"):
        robust_depth(np.ones((4, 4)), 10, 1)
    with pytest.raises(ValueError, match="window"):
        robust_depth(np.ones((4, 4)), 1, 1, window=0)
    with pytest.raises(ValueError, match="u must be finite"):
        robust_depth(np.ones((4, 4)), math.nan, 1)


def test_point_to_3d() -> None:
    depth = np.full((480, 640), 2000, dtype=np.uint16)
    depth[100:110, 100:110] = 0
    point = _point(420.0, 140.0, (640, 480))
    assert point_to_3d(point, depth, K, depth_scale=0.001) == pytest.approx([0.4, -0.5, 2.0])
    assert point_to_3d((420.0, 140.0), depth, K, depth_scale=0.001) == pytest.approx([0.4, -0.5, 2.0])
    assert point_to_3d((105.0, 105.0), depth, K, depth_scale=0.001, window=3) is None


# --- rigid transforms ----------------------------------------------------------------------------------


def test_rigid_identity_and_apply_shapes() -> None:
    identity = RigidTransform.identity()
    assert identity.apply([1.0, 2.0, 3.0]).tolist() == [1.0, 2.0, 3.0]
    t = RigidTransform.from_rotation_translation(_rotation_z(90), [1.0, 0.0, 0.5])
    assert t.apply([1.0, 0.0, 0.0]) == pytest.approx([1.0, 1.0, 0.5])
    many = t.apply(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert many.shape == (2, 3)
    assert many == pytest.approx(np.array([[1.0, 1.0, 0.5], [0.0, 0.0, 0.5]]))
    with pytest.raises(ValueError, match=r"\(3,\) or \(N, 3\)"):
        t.apply(np.zeros((2, 4)))


def test_rigid_inverse_and_composition() -> None:
    a = RigidTransform.from_rotation_translation(_rotation_z(30), [0.1, -0.2, 0.3])
    b = RigidTransform.from_rotation_translation(_rotation_z(-75) @ _rotation_z(10).T, [1.0, 2.0, -1.0])
    points = np.random.default_rng(3).normal(size=(10, 3))
    assert a.inverse().apply(a.apply(points)) == pytest.approx(points)
    assert np.allclose((a @ a.inverse()).matrix, np.eye(4))
    assert (a @ b).apply(points) == pytest.approx(a.apply(b.apply(points)))
    assert np.array_equal(a.compose(b).matrix, (a @ b).matrix)


def test_rigid_matrix_is_read_only_copy() -> None:
    source = np.eye(4)
    t = RigidTransform(source)
    source[0, 3] = 5.0
    assert t.translation.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        t.matrix[0, 3] = 1.0


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.eye(3), "4x4"),
        (np.diag([1.0, 1.0, 1.0, 2.0]), "last row"),
        (np.diag([2.0, 2.0, 2.0, 1.0]), "orthonormal"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "reflection"),
        (np.full((4, 4), np.nan), "finite"),
    ],
)
def test_rigid_validation(matrix: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RigidTransform(matrix)


def test_rigid_from_matrix_accepts_rounded_rotation_and_snaps_it() -> None:
    rounded = np.eye(4)
    rounded[:3, :3] = np.round(_rotation_z(33), 4)
    rounded[:3, 3] = (0.5, 0.25, 1.0)
    with pytest.raises(ValueError, match="orthonormal"):
        RigidTransform(rounded)
    t = RigidTransform.from_matrix(rounded, atol=1e-3)
    assert np.allclose(t.rotation.T @ t.rotation, np.eye(3), atol=1e-12)
    assert t.rotation == pytest.approx(_rotation_z(33), abs=1e-4)
    assert t.translation.tolist() == [0.5, 0.25, 1.0]
