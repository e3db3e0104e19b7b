"""The one place protobuf messages (``molmo_agent.v1``) become library types and back.

The server reads requests and writes responses through these functions, and clients build requests with
them, so both sides agree on every field's meaning (see ``protos/molmo_agent/v1/types.proto``). Nothing here
decodes images: encoded bytes and raw pixels are handed to :mod:`molmo_agent.images`, the one image-input
module. Enum names map by rule (``ACTION_TYPE_LONG_PRESS`` is ``"long_press"``), derived from the generated
descriptors, so adding a value to the proto and the Python enum needs no edit here.

This module imports protobuf only (never grpc), so ``import molmo_agent`` stays light.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .actions import Action, ActionType
from .errors import ActionValidationError, ImageInputError, MolmoAgentError
from .geometry import CameraIntrinsics, RigidTransform
from .images import ImageLike, ImageLimits, array_from_raw, depth_from_raw, load_image, read_image_file
from .points import Point
from .v1 import types_pb2

if TYPE_CHECKING:
    from .model import Timings


class RequestError(MolmoAgentError, ValueError):
    """A request field is invalid (intrinsics, transform, enum): the server answers INVALID_ARGUMENT."""


def _enum_names(enum: Any, prefix: str) -> dict[int, str]:
    """Proto enum numbers -> library names (``PREFIX_LONG_PRESS`` -> ``"long_press"``); 0 is "unset"."""
    return {number: name.removeprefix(prefix).lower() for name, number in enum.items() if number != 0}


_PIXEL_FORMATS = _enum_names(types_pb2.PixelFormat, "PIXEL_FORMAT_")
_DEPTH_ENCODINGS = _enum_names(types_pb2.DepthEncoding, "DEPTH_ENCODING_")
_ACTION_TYPES = _enum_names(types_pb2.ActionType, "ACTION_TYPE_")
_ACTION_NUMBERS = {name: number for number, name in _ACTION_TYPES.items()}
_PIXEL_FORMAT_NUMBERS = {name: number for number, name in _PIXEL_FORMATS.items()}
_DEPTH_ENCODING_NUMBERS = {name: number for number, name in _DEPTH_ENCODINGS.items()}

_OPTIONAL_ACTION_FIELDS = ("x", "y", "x2", "y2", "direction", "text", "app_name", "amount")
"""Action fields declared ``optional`` in the proto: presence (not zero) says whether they are set."""


def _enum_label(enum: Any, number: int) -> str:
    """The proto name of an enum number, or the number itself (proto3 keeps unknown values)."""
    try:
        return enum.Name(number)
    except ValueError:
        return str(number)


def _enum_choices(enum: Any) -> str:
    return ", ".join(name for name, number in enum.items() if number != 0)


# --- images and depth (server side) ------------------------------------------------------------------------


def image_input_from_proto(msg: types_pb2.Image, limits: ImageLimits) -> tuple[ImageLike, bool]:
    """An ``Image`` -> what :func:`~molmo_agent.images.load_image` takes, and whether it is BGR.

    Raw pixels become an array view (no decode); encoded bytes pass through, so decoding, EXIF and the
    decompression-bomb checks stay in :mod:`molmo_agent.images`.

    Raises:
        ImageInputError: Neither source is set, or the raw layout is invalid.
    """
    source = msg.WhichOneof("source")
    if source == "encoded":
        return msg.encoded, False
    if source != "raw":
        raise ImageInputError(
            "image has neither encoded bytes nor raw pixels: set Image.encoded or Image.raw"
        )
    raw = msg.raw
    pixel_format = _PIXEL_FORMATS.get(raw.format)
    if pixel_format is None:
        raise ImageInputError(
            f"raw image format is {_enum_label(types_pb2.PixelFormat, raw.format)}; set RawImage.format to "
            f"one of {_enum_choices(types_pb2.PixelFormat)}"
        )
    array = array_from_raw(raw.data, raw.width, raw.height, raw.stride, pixel_format, limits=limits)
    return array, pixel_format == "bgr8"


def depth_from_proto(
    msg: types_pb2.DepthImage, expected_size: tuple[int, int] | None, limits: ImageLimits
) -> tuple[np.ndarray, float]:
    """A ``DepthImage`` -> ``(H, W)`` array and its metres-per-unit scale, checked against the colour size.

    Raises:
        ImageInputError: Unset encoding, invalid layout, or a size other than ``expected_size``.
    """
    encoding = _DEPTH_ENCODINGS.get(msg.encoding)
    if encoding is None:
        raise ImageInputError(
            f"depth encoding is {_enum_label(types_pb2.DepthEncoding, msg.encoding)}; set "
            f"DepthImage.encoding to one of {_enum_choices(types_pb2.DepthEncoding)}"
        )
    return depth_from_raw(
        msg.data, msg.width, msg.height, msg.stride, encoding, expected_size=expected_size, limits=limits
    )


# --- camera geometry --------------------------------------------------------------------------------------


def intrinsics_from_proto(msg: types_pb2.CameraIntrinsics, *, name: str = "intrinsics") -> CameraIntrinsics:
    """Validated pinhole intrinsics; a NaN or zero focal length fails here, not as a wild 3-D point.

    Raises:
        RequestError: A value is not finite, a focal length is not positive, or the distortion count is
            not one OpenCV accepts. ``name`` is the request field the message names.
    """
    if msg.fx == 0.0 and msg.fy == 0.0:
        raise RequestError(
            f"{name} are empty (fx = fy = 0): send the colour camera's fx, fy, cx, cy in pixels of the image"
        )
    try:
        return CameraIntrinsics(msg.fx, msg.fy, msg.cx, msg.cy, tuple(msg.distortion))
    except ValueError as error:
        raise RequestError(f"invalid {name}: {error}") from None


def transform_from_proto(
    msg: types_pb2.RigidTransform, *, name: str = "camera_to_base"
) -> RigidTransform | None:
    """A row-major 4x4 rigid transform, or ``None`` when the message is empty (the field is optional).

    Rotations that are orthonormal within :data:`~molmo_agent.geometry.RIGID_TOLERANCE` (e.g. printed with
    few digits) are accepted and snapped to an exact rotation.

    Raises:
        RequestError: Not 16 values, or not a rigid transform (the message says why).
    """
    if not msg.matrix:
        return None
    if len(msg.matrix) != 16:
        raise RequestError(
            f"{name} must hold 16 values (a row-major 4x4 matrix, last row 0 0 0 1), got {len(msg.matrix)}"
        )
    try:
        return RigidTransform.from_matrix(np.array(msg.matrix, dtype=np.float64).reshape(4, 4))
    except ValueError as error:
        raise RequestError(f"{name} is not a rigid transform: {error}") from None


def intrinsics_to_proto(
    intrinsics: CameraIntrinsics | Mapping[str, Any] | Sequence[Any] | np.ndarray,
) -> types_pb2.CameraIntrinsics:
    """Accept intrinsics as a client has them: the dataclass, ``{"fx": ...}``, ``(fx, fy, cx, cy)`` or ``K``.

    Values are validated here so a bad calibration fails on the client, not as an INVALID_ARGUMENT later.

    Raises:
        RequestError: Missing or invalid values.
    """
    try:
        checked = _as_intrinsics(intrinsics)
    except (TypeError, ValueError) as error:
        raise RequestError(f"invalid camera intrinsics {intrinsics!r}: {error}") from None
    return types_pb2.CameraIntrinsics(
        fx=checked.fx, fy=checked.fy, cx=checked.cx, cy=checked.cy, distortion=checked.distortion
    )


def _as_intrinsics(value: Any) -> CameraIntrinsics:
    if isinstance(value, CameraIntrinsics):
        return value
    if isinstance(value, Mapping):
        return CameraIntrinsics(**value)
    if isinstance(value, np.ndarray) or len(value) == 3:  # a camera matrix K (three rows)
        return CameraIntrinsics.from_matrix(value)
    return CameraIntrinsics(*value)


def transform_to_proto(transform: RigidTransform | np.ndarray | Sequence[Any]) -> types_pb2.RigidTransform:
    """A 4x4 matrix (or :class:`RigidTransform`) as 16 row-major values, checked to be rigid first.

    Raises:
        RequestError: Not a 4x4 rigid transform.
    """
    if not isinstance(transform, RigidTransform):
        try:
            transform = RigidTransform.from_matrix(np.asarray(transform, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise RequestError(f"invalid rigid transform: {error}") from None
    return types_pb2.RigidTransform(matrix=transform.matrix.ravel().tolist())


# --- points, actions, timings -----------------------------------------------------------------------------


def vec3_to_proto(xyz: np.ndarray | Sequence[float]) -> types_pb2.Vec3:
    """A 3-vector in metres; anything but three finite numbers is a bug in the caller."""
    values = np.asarray(xyz, dtype=np.float64)
    if values.shape != (3,) or not np.isfinite(values).all():
        raise ValueError(f"a 3-D point must be three finite numbers, got {values.tolist()!r}")
    x, y, z = values.tolist()
    return types_pb2.Vec3(x=x, y=y, z=z)


def vec3_from_proto(msg: types_pb2.Vec3) -> np.ndarray:
    return np.array([msg.x, msg.y, msg.z], dtype=np.float64)


def point_to_proto(
    point: Point,
    camera_xyz: np.ndarray | None = None,
    base_xyz: np.ndarray | None = None,
    depth_note: str = "",
) -> types_pb2.Point:
    """A :class:`Point` plus the 3-D positions the server computed for it (set only when known)."""
    msg = types_pb2.Point(
        x=point.x,
        y=point.y,
        x_norm=point.x_norm,
        y_norm=point.y_norm,
        label=point.label,
        image_index=point.image_index,
        object_id=point.object_id,
        depth_note=depth_note,
    )
    if point.timestamp is not None:
        msg.timestamp = point.timestamp
    if camera_xyz is not None:
        msg.camera_xyz.CopyFrom(vec3_to_proto(camera_xyz))
    if base_xyz is not None:
        msg.base_xyz.CopyFrom(vec3_to_proto(base_xyz))
    return msg


def point_from_proto(msg: types_pb2.Point) -> Point:
    """The 2-D point; a timestamp of 0.0 is a real time only when the field is present."""
    return Point(
        x=msg.x,
        y=msg.y,
        x_norm=msg.x_norm,
        y_norm=msg.y_norm,
        label=msg.label,
        image_index=msg.image_index,
        object_id=msg.object_id,
        timestamp=msg.timestamp if msg.HasField("timestamp") else None,
    )


def point_xyz_from_proto(msg: types_pb2.Point) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(camera_xyz, base_xyz)`` in metres, each ``None`` when the server could not compute it."""
    camera = vec3_from_proto(msg.camera_xyz) if msg.HasField("camera_xyz") else None
    base = vec3_from_proto(msg.base_xyz) if msg.HasField("base_xyz") else None
    return camera, base


def action_to_proto(action: Action) -> types_pb2.Action:
    """An :class:`Action` with only the fields it sets (``optional`` fields keep "unset" distinct from 0)."""
    number = _ACTION_NUMBERS.get(action.type.value)
    if number is None:
        raise ActionValidationError(f"{action.type.value} action has no ActionType in the wire protocol")
    msg = types_pb2.Action(type=number, keys=action.keys or ())
    for field in _OPTIONAL_ACTION_FIELDS:
        value = getattr(action, field)
        if value is not None:
            setattr(msg, field, value)
    return msg


def action_from_proto(msg: types_pb2.Action) -> Action:
    """A validated :class:`Action`; a missing type or a field its type needs fails here.

    Raises:
        ActionValidationError: Unset or unknown type, or fields that do not fit the type.
    """
    kind = _ACTION_TYPES.get(msg.type)
    if kind is None:
        raise ActionValidationError(
            f"action type is {_enum_label(types_pb2.ActionType, msg.type)}; set Action.type to one of "
            f"{_enum_choices(types_pb2.ActionType)}"
        )
    fields = {field: getattr(msg, field) for field in _OPTIONAL_ACTION_FIELDS if msg.HasField(field)}
    return Action(type=ActionType(kind), keys=tuple(msg.keys) or None, **fields)


def timing_to_proto(timings: Timings, queued_ms: float, total_ms: float, batch_size: int) -> types_pb2.Timing:
    """The model's per-stage times plus what only the server knows (queueing, end-to-end, batch size)."""
    return types_pb2.Timing(
        queued_ms=queued_ms,
        decode_ms=timings.decode_ms,
        preprocess_ms=timings.preprocess_ms,
        model_ms=timings.model_ms,
        parse_ms=timings.parse_ms,
        total_ms=total_ms,
        batch_size=batch_size,
    )


# --- images and depth (client side) -----------------------------------------------------------------------

IMAGE_ENCODINGS = ("raw", "auto", "jpeg", "png")
"""How :func:`image_to_proto` sends pixels; ``"auto"`` is the same as ``"raw"``."""


def image_to_proto(
    image: ImageLike,
    *,
    bgr: bool = False,
    encoding: str = "raw",
    jpeg_quality: int = 90,
    into: types_pb2.Image | None = None,
) -> types_pb2.Image:
    """Anything :func:`~molmo_agent.images.load_image` accepts, in the cheapest form for the server.

    ``"raw"`` (or ``"auto"``): a uint8 ``(H, W, 3)`` array goes as its bytes, RGB8 or BGR8 (``bgr=True``:
    an OpenCV frame is sent without any conversion), ``(H, W)`` as MONO8, other arrays and PIL images as
    RGB8; encoded bytes and files go as they are (they are already compressed). ``"jpeg"``/``"png"``:
    every input is loaded and re-encoded, trading client CPU for bandwidth.

    ``into`` fills an existing message (e.g. ``request.images.add()``) instead of a new one: with protobuf's
    upb runtime, appending a finished message copies it, which costs milliseconds for a raw frame.

    Raises:
        ImageInputError: The input is not an image (as :func:`load_image` says) or the file is unreadable.
        ValueError: Unknown ``encoding`` or ``jpeg_quality`` outside 1-100.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(
            f"unknown image encoding {encoding!r}; expected one of: {', '.join(IMAGE_ENCODINGS)}"
        )
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be within 1-100, got {jpeg_quality!r}")
    message = types_pb2.Image() if into is None else into
    if encoding in ("jpeg", "png"):
        message.encoded = _encode(load_image(image, bgr=bgr), encoding, jpeg_quality)
    elif isinstance(image, bytes | bytearray | memoryview):
        message.encoded = bytes(image)
    elif isinstance(image, str | os.PathLike):
        message.encoded = read_image_file(image)
    else:
        _fill_raw(message.raw, *_raw_pixels(image, bgr=bgr))
    return message


def _raw_pixels(image: ImageLike, *, bgr: bool) -> tuple[np.ndarray, str]:
    """uint8 arrays pass through untouched; everything else is normalised by :func:`load_image` first."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        pixels = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
        if pixels.ndim == 2:
            return pixels, "mono8"
        if pixels.ndim == 3 and pixels.shape[2] == 3:
            return pixels, "bgr8" if bgr else "rgb8"
    return np.asarray(load_image(image, bgr=bgr)), "rgb8"


def _fill_raw(raw: types_pb2.RawImage, pixels: np.ndarray, pixel_format: str) -> None:
    """Fill the message in place: building a sub-message and passing it to a constructor copies it again
    (about 5 ms for a 1280x720 frame with the upb runtime)."""
    height, width = pixels.shape[:2]
    if width == 0 or height == 0:
        raise ImageInputError(f"array has zero size ({width}x{height}); an image needs at least one pixel")
    raw.width, raw.height, raw.stride = width, height, 0
    raw.format = _PIXEL_FORMAT_NUMBERS[pixel_format]
    raw.data = np.ascontiguousarray(pixels).tobytes()


def _encode(image: Image.Image, encoding: str, jpeg_quality: int) -> bytes:
    buffer = io.BytesIO()
    if encoding == "jpeg":
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


_DEPTH_DTYPES = {np.dtype(np.uint16): "uint16_mm", np.dtype(np.float32): "float32_m"}


def depth_to_proto(depth: np.ndarray) -> types_pb2.DepthImage:
    """A depth image as the wire stores it: uint16 millimetres or float32 metres, little-endian.

    The dtype decides the unit, as in the proto; other dtypes are refused rather than guessed.

    Raises:
        ImageInputError: Not ``(H, W)`` (or ``(H, W, 1)``), or not uint16/float32.
    """
    values = np.asarray(depth)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    encoding = _DEPTH_DTYPES.get(values.dtype.newbyteorder("="))
    if values.ndim != 2 or encoding is None:
        raise ImageInputError(
            f"depth must be an (H, W) array of uint16 millimetres or float32 metres, got shape "
            f"{values.shape} dtype {values.dtype}; convert e.g. with (metres * 1000).astype(np.uint16) or "
            "metres.astype(np.float32)"
        )
    height, width = values.shape
    return types_pb2.DepthImage(
        width=width,
        height=height,
        stride=0,
        encoding=_DEPTH_ENCODING_NUMBERS[encoding],
        data=values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes(),
    )


__all__ = [
    "IMAGE_ENCODINGS",
    "RequestError",
    "action_from_proto",
    "action_to_proto",
    "depth_from_proto",
    "depth_to_proto",
    "image_input_from_proto",
    "image_to_proto",
    "intrinsics_from_proto",
    "intrinsics_to_proto",
    "point_from_proto",
    "point_to_proto",
    "point_xyz_from_proto",
    "timing_to_proto",
    "transform_from_proto",
    "transform_to_proto",
    "vec3_from_proto",
    "vec3_to_proto",
]
