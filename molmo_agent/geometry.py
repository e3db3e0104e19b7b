"""Everything that knows pixels versus normalised coordinates.

Conventions used across the package: sizes are ``(width, height)``; pixel coordinates are floats with the
origin at the top-left corner of the image and ``x`` growing right, ``y`` down; normalised coordinates are
fractions of width/height in [0, 1]. Molmo v1 speaks percent (0-100), Molmo2 speaks 0-1000 integers;
:data:`PERCENT` and :data:`PER_MILLE` name those scales so no other module repeats the constants.

Camera geometry follows OpenCV: pixel ``(u, v)`` is ``(x, y)``, the optical frame has x right, y down and
z forward, depth is metres along z. Half-pixel conventions are deliberately not distinguished (a resize
maps ``x -> x * scale`` and intrinsics scale the same way), which keeps every mapping one linear function
and is far below the precision of a model's point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .points import Point

Size = tuple[int, int]

PERCENT = 100.0
"""Molmo v1 points and AndroidControl action strings: percent of the original image."""
PER_MILLE = 1000.0
"""Molmo2 points and tracks: integers 0-1000 of the image the point belongs to."""


def check_size(size: Size) -> Size:
    """Validate a ``(width, height)`` pair, so conversions never divide by zero."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive (width, height), got {size!r}")
    return int(width), int(height)


def pixels_to_normalized(x: float, y: float, size: Size) -> tuple[float, float]:
    """Pixels of an image of ``size`` -> fractions in [0, 1] (not clamped)."""
    width, height = check_size(size)
    return x / width, y / height


def normalized_to_pixels(x_norm: float, y_norm: float, size: Size) -> tuple[float, float]:
    """Fractions of width/height -> pixels of an image of ``size``."""
    width, height = check_size(size)
    return x_norm * width, y_norm * height


def scaled_to_normalized(x: float, y: float, scale: float) -> tuple[float, float]:
    """A model's scaled coordinates (percent, per-mille) -> fractions in [0, 1]."""
    return x / scale, y / scale


def normalized_to_scaled(x_norm: float, y_norm: float, scale: float) -> tuple[float, float]:
    """Fractions -> a model's scale (used to render training targets and action strings)."""
    return x_norm * scale, y_norm * scale


def in_unit_square(x_norm: float, y_norm: float) -> bool:
    """True when a normalised point lies inside the image (edges included)."""
    return 0.0 <= x_norm <= 1.0 and 0.0 <= y_norm <= 1.0


def make_point(
    x_scaled: float,
    y_scaled: float,
    scale: float,
    size: Size,
    *,
    label: str = "",
    image_index: int = 0,
    object_id: int = 1,
    timestamp: float | None = None,
) -> Point | None:
    """Build a :class:`Point` from model-scale coordinates, or ``None`` when it falls outside the image.

    This is the one place where a model's coordinate scale becomes pixels of the original image.
    """
    x_norm, y_norm = scaled_to_normalized(x_scaled, y_scaled, scale)
    if not in_unit_square(x_norm, y_norm):
        return None
    x, y = normalized_to_pixels(x_norm, y_norm, size)
    return Point(
        x=x,
        y=y,
        x_norm=x_norm,
        y_norm=y_norm,
        label=label,
        image_index=image_index,
        object_id=object_id,
        timestamp=timestamp,
    )


# --- resize, letterbox and crop done by a client -------------------------------------------------------


def _check_finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _check_positive(name: str, value: float) -> float:
    value = _check_finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


@dataclass(frozen=True)
class ResizeTransform:
    """How an original image became the image a model saw, so its points can be mapped back.

    Per axis ``transformed = original * scale + offset``: a resize sets the scales, padding (letterbox)
    adds a positive offset and a crop a negative one. Compose several steps with :meth:`then`.

    Attributes:
        original_size: ``(width, height)`` of the original image.
        transformed_size: ``(width, height)`` of the image the model saw.
        scale_x: Transformed pixels per original pixel, horizontally.
        scale_y: The same vertically.
        offset_x: Where original ``x = 0`` lands in the transformed image.
        offset_y: Where original ``y = 0`` lands.
    """

    original_size: Size
    transformed_size: Size
    scale_x: float = 1.0
    scale_y: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "original_size", check_size(self.original_size))
        object.__setattr__(self, "transformed_size", check_size(self.transformed_size))
        for name in ("scale_x", "scale_y"):
            object.__setattr__(self, name, _check_positive(name, getattr(self, name)))
        for name in ("offset_x", "offset_y"):
            object.__setattr__(self, name, _check_finite(name, getattr(self, name)))

    @classmethod
    def identity(cls, size: Size) -> ResizeTransform:
        """The image was passed unchanged."""
        return cls(size, size)

    @classmethod
    def resize(cls, original_size: Size, new_size: Size) -> ResizeTransform:
        """A plain resize to ``new_size`` (aspect ratio may change)."""
        (ow, oh), (nw, nh) = check_size(original_size), check_size(new_size)
        return cls((ow, oh), (nw, nh), nw / ow, nh / oh)

    @classmethod
    def letterbox(cls, original_size: Size, target_size: Size) -> ResizeTransform:
        """Keep the aspect ratio, fit inside ``target_size`` and centre-pad.

        The content is resized to whole pixels (``round``) and pasted at a whole-pixel offset (``//2``),
        as image libraries do; :attr:`content_box` is where to paste it to match this transform exactly.
        """
        (ow, oh), (tw, th) = check_size(original_size), check_size(target_size)
        scale = min(tw / ow, th / oh)
        nw, nh = max(1, round(ow * scale)), max(1, round(oh * scale))
        return cls((ow, oh), (tw, th), nw / ow, nh / oh, (tw - nw) // 2, (th - nh) // 2)

    @classmethod
    def crop(cls, original_size: Size, box: tuple[int, int, int, int]) -> ResizeTransform:
        """A crop to ``box = (left, top, right, bottom)`` in original pixels (PIL's ``Image.crop`` box)."""
        left, top, right, bottom = box
        if right <= left or bottom <= top:
            raise ValueError(f"crop box must have right > left and bottom > top, got {box!r}")
        return cls(check_size(original_size), (right - left, bottom - top), 1.0, 1.0, -left, -top)

    @property
    def content_box(self) -> tuple[float, float, float, float]:
        """Where the whole original image lands in the transformed one: ``(left, top, right, bottom)``.

        Floats (``right`` may be off by rounding noise); round them to paste a resized image.
        """
        width, height = self.original_size
        right, bottom = self.to_transformed(width, height)
        return self.offset_x, self.offset_y, right, bottom

    def then(self, other: ResizeTransform) -> ResizeTransform:
        """This step followed by ``other`` (whose input must be this step's output)."""
        if other.original_size != self.transformed_size:
            raise ValueError(
                f"cannot chain: this transform produces {self.transformed_size} but the next one expects "
                f"{other.original_size}"
            )
        return ResizeTransform(
            self.original_size,
            other.transformed_size,
            self.scale_x * other.scale_x,
            self.scale_y * other.scale_y,
            self.offset_x * other.scale_x + other.offset_x,
            self.offset_y * other.scale_y + other.offset_y,
        )

    def to_transformed(self, x: float, y: float) -> tuple[float, float]:
        """Original pixels -> pixels of the image the model saw."""
        return x * self.scale_x + self.offset_x, y * self.scale_y + self.offset_y

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        """Pixels of the image the model saw -> original pixels (inverse of :meth:`to_transformed`)."""
        return (x - self.offset_x) / self.scale_x, (y - self.offset_y) / self.scale_y

    def point_to_original(self, point: Point) -> Point:
        """A point the model gave on the transformed image, re-expressed on the original image.

        A point in letterbox padding or outside a crop has no original pixel; it is clamped to the nearest
        edge so the result keeps :class:`Point`'s promise that ``x_norm``/``y_norm`` lie in [0, 1].
        """
        width, height = self.original_size
        x, y = self.to_original(point.x, point.y)
        x, y = min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))
        x_norm, y_norm = pixels_to_normalized(x, y, self.original_size)
        return replace(point, x=x, y=y, x_norm=x_norm, y_norm=y_norm)


def fit_within(size: Size, max_pixels: int) -> Size:
    """The largest size with the same aspect ratio and at most ``max_pixels`` pixels (``size`` if it fits).

    Used to downscale a camera frame before sending it, paired with :meth:`ResizeTransform.resize` to map
    the answer back.
    """
    width, height = check_size(size)
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels!r}")
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    new_width, new_height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    new_width = min(new_width, max_pixels // new_height)
    new_height = min(new_height, max_pixels // new_width)
    return new_width, new_height


# --- pinhole camera and depth ---------------------------------------------------------------------------

_DISTORTION_LENGTHS = (0, 4, 5, 8, 12, 14)
"""Coefficient counts OpenCV accepts: k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4 [tx ty]]]]."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """A pinhole camera (OpenCV model), validated up front so a typo fails here and not as a wild 3-D point.

    Attributes:
        fx, fy: Focal lengths in pixels.
        cx, cy: Principal point in pixels.
        distortion: OpenCV coefficients ``(k1, k2, p1, p2[, k3, ...])``; empty means none.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("fx", "fy"):
            object.__setattr__(self, name, _check_positive(name, getattr(self, name)))
        for name in ("cx", "cy"):
            object.__setattr__(self, name, _check_finite(name, getattr(self, name)))
        distortion = tuple(_check_finite("distortion coefficient", d) for d in self.distortion)
        if len(distortion) not in _DISTORTION_LENGTHS:
            raise ValueError(
                f"distortion must have one of {_DISTORTION_LENGTHS} coefficients (OpenCV order k1, k2, p1, "
                f"p2, k3, ...), got {len(distortion)}"
            )
        object.__setattr__(self, "distortion", distortion)

    @classmethod
    def from_matrix(
        cls, matrix: np.ndarray | Sequence[Sequence[float]], distortion: Sequence[float] = ()
    ) -> CameraIntrinsics:
        """From a 3x3 camera matrix ``K`` as calibration tools write it."""
        k = np.asarray(matrix, dtype=np.float64)
        if k.shape != (3, 3):
            raise ValueError(f"camera matrix must be 3x3, got shape {k.shape}")
        return cls(k[0, 0], k[1, 1], k[0, 2], k[1, 2], tuple(distortion))

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix ``K`` OpenCV expects."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def has_distortion(self) -> bool:
        return any(d != 0.0 for d in self.distortion)

    def scaled(self, sx: float, sy: float | None = None) -> CameraIntrinsics:
        """Intrinsics of the same camera after its image was resized by ``sx`` (and ``sy``; default ``sx``).

        Distortion coefficients act on normalised coordinates, so they survive a resize unchanged.
        """
        sx = _check_positive("sx", sx)
        sy = sx if sy is None else _check_positive("sy", sy)
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy)


UNDISTORT_ITERATIONS = 5
"""Fixed-point iterations inverting the distortion: ``cv2.undistortPoints``'s default, so results match."""


def _tilt_inverse(tau_x: float, tau_y: float) -> np.ndarray:
    """Inverse of OpenCV's tilted-sensor projection matrix (coefficients 13 and 14 of the 14-term model)."""
    cx, sx, cy, sy = math.cos(tau_x), math.sin(tau_x), math.cos(tau_y), math.sin(tau_y)
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, sx], [0.0, -sx, cx]])
    rot_y = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    rot = rot_y @ rot_x
    project_z = np.array([[rot[2, 2], 0.0, -rot[0, 2]], [0.0, rot[2, 2], -rot[1, 2]], [0.0, 0.0, 1.0]])
    return np.linalg.inv(project_z @ rot)


def undistort_pixel(u: float, v: float, intrinsics: CameraIntrinsics) -> tuple[float, float]:
    """Where pixel ``(u, v)`` would be seen by the same camera without lens distortion.

    Deprojection formulas assume an ideal pinhole; skipping this step bends points near the image edges.
    OpenCV's distortion model (radial k1-k6, tangential p1 p2, thin prism s1-s4, tilt) inverted by the same
    fixed-point iteration ``cv2.undistortPoints`` uses, written with numpy so the formats need no OpenCV.
    """
    if not intrinsics.has_distortion:
        return float(u), float(v)
    k = list(intrinsics.distortion) + [0.0] * (14 - len(intrinsics.distortion))
    x = y = 0.0
    with np.errstate(all="ignore"):
        x0, y0 = (u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy
        if k[12] or k[13]:
            untilted = _tilt_inverse(k[12], k[13]) @ np.array([x0, y0, 1.0])
            scale = 1.0 / untilted[2] if untilted[2] else 1.0
            x0, y0 = float(untilted[0] * scale), float(untilted[1] * scale)
        x, y = x0, y0
        for _ in range(UNDISTORT_ITERATIONS):
            r2 = x * x + y * y
            inverse = (1 + ((k[7] * r2 + k[6]) * r2 + k[5]) * r2) / (
                1 + ((k[4] * r2 + k[1]) * r2 + k[0]) * r2
            )
            if inverse < 0:  # the model folds over here: OpenCV gives up and keeps the distorted point
                x, y = (u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy
                break
            dx = 2 * k[2] * x * y + k[3] * (r2 + 2 * x * x) + k[8] * r2 + k[9] * r2 * r2
            dy = k[2] * (r2 + 2 * y * y) + 2 * k[3] * x * y + k[10] * r2 + k[11] * r2 * r2
            x, y = (x0 - dx) * inverse, (y0 - dy) * inverse
        ideal_u, ideal_v = x * intrinsics.fx + intrinsics.cx, y * intrinsics.fy + intrinsics.cy
    if not (math.isfinite(ideal_u) and math.isfinite(ideal_v)):
        raise ValueError(f"cannot undistort pixel ({u}, {v}) with {intrinsics}: the model diverges there")
    return float(ideal_u), float(ideal_v)


def robust_depth(
    depth: np.ndarray, u: float, v: float, *, window: int = 5, depth_scale: float = 1.0
) -> float | None:
    """Depth in metres at pixel ``(u, v)``: the median of valid values in a ``window`` square around it.

    One depth pixel is often a hole (0 or NaN) or a flying pixel at an object edge; the median of a small
    window is robust to both. ``depth_scale`` converts stored units to metres (0.001 for uint16
    millimetres, 1.0 for float metres). ``None`` means every value in the window is a hole.

    A point on the image's far edge (``u == width``: a normalised x of 1.0, or Molmo2's coordinate 1000)
    reads the last column (row): it is on the image, and rounding alone would step past it.

    Raises:
        ValueError: ``depth`` is not 2-D, or ``(u, v)`` lies outside it (usually depth not aligned to, or
            not the same resolution as, the colour image).
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(
            f"depth must be a 2-D (H, W) array, got shape {depth.shape}; for (H, W, 1) pass d[..., 0]"
        )
    if window < 1:
        raise ValueError(f"window must be at least 1 pixel, got {window!r}")
    _check_positive("depth_scale", depth_scale)
    u, v = _check_finite("u", u), _check_finite("v", v)
    height, width = depth.shape
    if not (0 <= u <= width and 0 <= v <= height) or width == 0 or height == 0:
        raise ValueError(
            f"pixel ({u}, {v}) lies outside the {width}x{height} depth image; is depth aligned to the colour "
            "image at the same resolution?"
        )
    col, row = min(round(u), width - 1), min(round(v), height - 1)
    half = window // 2
    patch = depth[max(row - half, 0) : row + half + 1, max(col - half, 0) : col + half + 1].astype(np.float64)
    valid = patch[np.isfinite(patch) & (patch > 0)]
    return float(np.median(valid)) * depth_scale if valid.size else None


def deproject(u: float, v: float, depth_m: float, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Pixel plus depth -> ``(X, Y, Z)`` metres in the camera's optical frame (x right, y down, z forward).

    Raises:
        ValueError: The result is not finite: extreme (finite) intrinsics, distortion or depth overflow
            float64, and a robot must never be sent to ``inf``.
    """
    depth_m = _check_positive("depth_m", depth_m)
    x, y = undistort_pixel(u, v, intrinsics)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xyz = np.array(
            [
                (x - intrinsics.cx) / intrinsics.fx * depth_m,
                (y - intrinsics.cy) / intrinsics.fy * depth_m,
                depth_m,
            ]
        )
    return _finite_result(xyz, f"deprojecting pixel ({u}, {v}) at {depth_m} m with {intrinsics}")


def point_to_3d(
    point_or_uv: Point | tuple[float, float],
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    *,
    depth_scale: float,
    window: int = 5,
) -> np.ndarray | None:
    """A model's point on a colour image with aligned depth -> 3-D camera-frame point, or ``None`` on a hole.

    ``depth_scale`` has no default on purpose: millimetres mistaken for metres is the classic bug.
    The depth is looked up at the raw pixel (depth is aligned with the distorted image); only the ray is
    undistorted.
    """
    u, v = (point_or_uv.x, point_or_uv.y) if isinstance(point_or_uv, Point) else point_or_uv
    z = robust_depth(depth, u, v, window=window, depth_scale=depth_scale)
    return None if z is None else deproject(u, v, z, intrinsics)


def _finite_result(values: np.ndarray, what: str) -> np.ndarray:
    """Finite inputs overflowing to ``inf``/``nan`` is a calibration problem to report, not a number."""
    if not np.isfinite(values).all():
        raise ValueError(f"{what} overflows to a non-finite result; check the calibration values")
    return values


# --- rigid transforms (camera -> robot base) ------------------------------------------------------------

RIGID_TOLERANCE = 1e-6
"""How far a rotation may be from orthonormal (and the last row from 0 0 0 1) and still be accepted."""


def _check_rigid(matrix: np.ndarray, atol: float) -> None:
    if matrix.shape != (4, 4):
        raise ValueError(f"a rigid transform is a 4x4 matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("a rigid transform must contain only finite numbers")
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=atol):
        raise ValueError(f"the last row of a rigid transform must be [0, 0, 0, 1], got {matrix[3].tolist()}")
    rotation = matrix[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), rtol=0.0, atol=atol):
        raise ValueError("the rotation part is not orthonormal (scaled, sheared or not a rotation)")
    if np.linalg.det(rotation) < 0:
        raise ValueError("the rotation part has determinant -1: it is a reflection, not a rotation")


def _nearest_rotation(rotation: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(rotation)
    return u @ vt


@dataclass(frozen=True, eq=False)
class RigidTransform:
    """A rotation plus translation as a 4x4 matrix, e.g. the extrinsic mapping camera frame to robot base.

    Composition reads like matrices: ``(base_from_camera @ camera_from_tool).apply(p)`` equals
    ``base_from_camera.apply(camera_from_tool.apply(p))``. The matrix is stored as a read-only copy, so the
    frozen dataclass really is immutable.
    """

    matrix: np.ndarray

    def __post_init__(self) -> None:
        matrix = np.array(self.matrix, dtype=np.float64)
        _check_rigid(matrix, RIGID_TOLERANCE)
        matrix.setflags(write=False)
        object.__setattr__(self, "matrix", matrix)

    @classmethod
    def from_matrix(
        cls, matrix: np.ndarray | Sequence[Sequence[float]], *, atol: float = RIGID_TOLERANCE
    ) -> RigidTransform:
        """Accept a matrix whose rotation is orthonormal only within ``atol`` (e.g. rounded in a file).

        The rotation is snapped to the nearest exact one, so later compositions do not accumulate the error.
        """
        m = np.array(matrix, dtype=np.float64)
        _check_rigid(m, atol)
        m[:3, :3] = _nearest_rotation(m[:3, :3])
        m[3] = (0.0, 0.0, 0.0, 1.0)
        return cls(m)

    @classmethod
    def from_rotation_translation(cls, rotation: np.ndarray, translation: Sequence[float]) -> RigidTransform:
        """Build from the pieces a pose usually comes as (e.g. ``cv2.Rodrigues`` output and a position)."""
        rotation = np.asarray(rotation, dtype=np.float64)
        translation = np.asarray(translation, dtype=np.float64)
        if rotation.shape != (3, 3) or translation.shape != (3,):
            raise ValueError(
                f"expected a 3x3 rotation and a 3-vector translation, got {rotation.shape} "
                f"and {translation.shape}"
            )
        matrix = np.eye(4)
        matrix[:3, :3], matrix[:3, 3] = rotation, translation
        return cls(matrix)

    @classmethod
    def identity(cls) -> RigidTransform:
        """Camera frame and target frame coincide (a placeholder until a calibration exists)."""
        return cls(np.eye(4))

    @property
    def rotation(self) -> np.ndarray:
        return self.matrix[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        return self.matrix[:3, 3]

    def apply(self, points: np.ndarray | Sequence[float]) -> np.ndarray:
        """Transform one point ``(3,)`` or many ``(N, 3)``; the result has the input's shape."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape[-1:] != (3,) or pts.ndim not in (1, 2):
            raise ValueError(f"points must have shape (3,) or (N, 3), got {pts.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            moved = pts @ self.rotation.T + self.translation
        if np.isfinite(pts).all():
            _finite_result(moved, "applying the rigid transform")
        return moved

    def inverse(self) -> RigidTransform:
        """The reverse mapping (robot base -> camera for an extrinsic), exact for a rigid transform."""
        rotation_t = self.rotation.T
        return RigidTransform.from_rotation_translation(rotation_t, -rotation_t @ self.translation)

    def compose(self, other: RigidTransform) -> RigidTransform:
        """``other`` first, then this transform."""
        return RigidTransform(self.matrix @ other.matrix)

    def __matmul__(self, other: RigidTransform) -> RigidTransform:
        if not isinstance(other, RigidTransform):
            return NotImplemented
        return self.compose(other)
