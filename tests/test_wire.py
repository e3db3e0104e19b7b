"""Protobuf <-> library conversions: round trips for every type, and bad fields refused with clear errors."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from molmo_agent.actions import Action, ActionType
from molmo_agent.errors import ActionValidationError, ImageInputError, MolmoAgentError
from molmo_agent.geometry import CameraIntrinsics, RigidTransform
from molmo_agent.images import DEPTH_ENCODINGS, RAW_FORMATS, ImageLimits, load_image
from molmo_agent.model import Timings
from molmo_agent.points import Point
from molmo_agent.v1 import types_pb2
from molmo_agent.wire import (
    RequestError,
    action_from_proto,
    action_to_proto,
    depth_from_proto,
    depth_to_proto,
    image_input_from_proto,
    image_to_proto,
    intrinsics_from_proto,
    intrinsics_to_proto,
    point_from_proto,
    point_to_proto,
    point_xyz_from_proto,
    timing_to_proto,
    transform_from_proto,
    transform_to_proto,
)

LIMITS = ImageLimits()


def _rgb(height: int = 5, width: int = 7) -> np.ndarray:
    return np.random.default_rng(2).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _over_the_wire(msg):
    """Serialise and parse, so presence and enum handling are what a real peer sees."""
    return type(msg).FromString(msg.SerializeToString())


def _received_pixels(msg: types_pb2.Image) -> np.ndarray:
    value, bgr = image_input_from_proto(_over_the_wire(msg), LIMITS)
    return np.asarray(load_image(value, bgr=bgr, limits=LIMITS))


def test_request_error_is_a_package_value_error():
    assert issubclass(RequestError, MolmoAgentError) and issubclass(RequestError, ValueError)


def test_proto_enums_name_exactly_the_layouts_images_knows():
    formats = {name.removeprefix("PIXEL_FORMAT_").lower() for name, n in types_pb2.PixelFormat.items() if n}
    encodings = {
        name.removeprefix("DEPTH_ENCODING_").lower() for name, n in types_pb2.DepthEncoding.items() if n
    }
    assert formats == set(RAW_FORMATS) and encodings == set(DEPTH_ENCODINGS)


def test_importing_wire_does_not_import_grpc():
    code = "import molmo_agent.wire, sys; print('grpc' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- points -----------------------------------------------------------------------------------------------


def test_point_round_trip_without_timestamp_or_3d():
    point = Point(x=12.5, y=3.0, x_norm=0.25, y_norm=0.1, label="mug", image_index=1, object_id=2)
    msg = _over_the_wire(point_to_proto(point))
    assert not msg.HasField("timestamp")
    assert point_from_proto(msg) == point
    assert point_xyz_from_proto(msg) == (None, None)


def test_point_timestamp_zero_is_kept_distinct_from_absent():
    point = Point(x=1.0, y=2.0, x_norm=0.5, y_norm=0.5, timestamp=0.0)
    msg = _over_the_wire(point_to_proto(point))
    assert msg.HasField("timestamp")
    assert point_from_proto(msg).timestamp == 0.0


def test_point_carries_3d_positions_and_depth_note():
    point = Point(x=1.0, y=2.0, x_norm=0.5, y_norm=0.5)
    msg = _over_the_wire(point_to_proto(point, np.array([0.1, -0.2, 1.5]), np.array([1.0, 2.0, 3.0])))
    camera, base = point_xyz_from_proto(msg)
    np.testing.assert_allclose(camera, [0.1, -0.2, 1.5])
    np.testing.assert_allclose(base, [1.0, 2.0, 3.0])
    noted = _over_the_wire(point_to_proto(point, depth_note="no depth reading"))
    assert noted.depth_note == "no depth reading" and not noted.HasField("camera_xyz")


def test_point_3d_must_be_three_finite_numbers():
    point = Point(x=1.0, y=2.0, x_norm=0.5, y_norm=0.5)
    with pytest.raises(ValueError, match="three finite numbers"):
        point_to_proto(point, camera_xyz=np.array([0.0, math.nan, 1.0]))


# --- actions ----------------------------------------------------------------------------------------------

EXAMPLES = {
    ActionType.CLICK: Action(ActionType.CLICK, x=10.0, y=20.5),
    ActionType.LONG_PRESS: Action(ActionType.LONG_PRESS, x=0.0, y=0.0),
    ActionType.SCROLL: Action(ActionType.SCROLL, direction="down", amount=3),
    ActionType.INPUT_TEXT: Action(ActionType.INPUT_TEXT, text=""),
    ActionType.OPEN_APP: Action(ActionType.OPEN_APP, app_name="Settings"),
    ActionType.NAVIGATE_HOME: Action(ActionType.NAVIGATE_HOME),
    ActionType.NAVIGATE_BACK: Action(ActionType.NAVIGATE_BACK),
    ActionType.WAIT: Action(ActionType.WAIT),
    ActionType.DOUBLE_CLICK: Action(ActionType.DOUBLE_CLICK, x=5.0, y=6.0),
    ActionType.RIGHT_CLICK: Action(ActionType.RIGHT_CLICK, x=5.0, y=6.0),
    ActionType.DRAG: Action(ActionType.DRAG, x=1.0, y=2.0, x2=300.0, y2=2.0),
    ActionType.HOTKEY: Action(ActionType.HOTKEY, keys=("ctrl", "s")),
    ActionType.TYPE: Action(ActionType.TYPE, text="hello"),
    ActionType.DONE: Action(ActionType.DONE, text="42"),
}


def test_every_action_type_has_an_example_and_a_wire_value():
    assert set(EXAMPLES) == set(ActionType)
    proto_names = {name for name, number in types_pb2.ActionType.items() if number != 0}
    assert proto_names == {f"ACTION_TYPE_{kind.name}" for kind in ActionType}


@pytest.mark.parametrize("kind", list(ActionType))
def test_action_round_trip(kind):
    action = EXAMPLES[kind]
    msg = _over_the_wire(action_to_proto(action))
    assert types_pb2.ActionType.Name(msg.type) == f"ACTION_TYPE_{kind.name}"
    assert action_from_proto(msg) == action


def test_action_optional_fields_absent_versus_zero():
    msg = _over_the_wire(action_to_proto(Action(ActionType.NAVIGATE_HOME)))
    for field in ("x", "y", "x2", "y2", "direction", "text", "app_name", "amount"):
        assert not msg.HasField(field)
    assert list(msg.keys) == []
    back = action_from_proto(msg)
    assert back.x is None and back.text is None and back.keys is None and back.amount is None

    zero = _over_the_wire(action_to_proto(Action(ActionType.CLICK, x=0.0, y=0.0)))
    assert zero.HasField("x") and zero.HasField("y")
    assert action_from_proto(zero).point == (0.0, 0.0)


def test_action_type_unspecified_is_a_validation_error():
    with pytest.raises(ActionValidationError, match=r"ACTION_TYPE_UNSPECIFIED; set Action\.type to one of"):
        action_from_proto(types_pb2.Action(x=1.0, y=2.0))
    with pytest.raises(ActionValidationError, match="action type is 99"):
        action_from_proto(types_pb2.Action.FromString(b"\x08\x63"))


def test_action_missing_required_field_is_a_validation_error():
    with pytest.raises(ActionValidationError, match="missing required field 'y'"):
        action_from_proto(types_pb2.Action(type=types_pb2.ACTION_TYPE_CLICK, x=1.0))


# --- timings ----------------------------------------------------------------------------------------------


def test_timing_to_proto():
    timings = Timings(decode_ms=1.5, preprocess_ms=2.0, model_ms=30.0, parse_ms=0.25)
    msg = _over_the_wire(timing_to_proto(timings, queued_ms=4.0, total_ms=40.0, batch_size=3))
    assert (msg.queued_ms, msg.decode_ms, msg.preprocess_ms) == (4.0, 1.5, 2.0)
    assert (msg.model_ms, msg.parse_ms, msg.total_ms, msg.batch_size) == (30.0, 0.25, 40.0, 3)


# --- images -----------------------------------------------------------------------------------------------


def test_raw_rgb_array_is_sent_as_its_bytes():
    source = _rgb()
    msg = image_to_proto(source)
    assert msg.WhichOneof("source") == "raw"
    assert msg.raw.format == types_pb2.PIXEL_FORMAT_RGB8 and msg.raw.data == source.tobytes()
    np.testing.assert_array_equal(_received_pixels(msg), source)


def test_raw_bgr_array_is_sent_unconverted_and_swapped_by_the_server():
    source = _rgb()
    msg = image_to_proto(source, bgr=True)
    assert msg.raw.format == types_pb2.PIXEL_FORMAT_BGR8 and msg.raw.data == source.tobytes()
    np.testing.assert_array_equal(_received_pixels(msg), source[..., ::-1])


def test_non_contiguous_array_is_sent_correctly():
    source = _rgb(8, 10)[1:6, 2:9]
    np.testing.assert_array_equal(_received_pixels(image_to_proto(source)), source)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_raw_mono(shape):
    source = np.random.default_rng(3).integers(0, 256, size=shape, dtype=np.uint8)
    msg = image_to_proto(source)
    assert msg.raw.format == types_pb2.PIXEL_FORMAT_MONO8
    grey = source.reshape(5, 7)
    np.testing.assert_array_equal(_received_pixels(msg), np.stack([grey] * 3, axis=-1))


def test_pil_image_and_other_arrays_go_as_rgb8():
    source = _rgb()
    msg = image_to_proto(Image.fromarray(source))
    assert msg.raw.format == types_pb2.PIXEL_FORMAT_RGB8
    np.testing.assert_array_equal(_received_pixels(msg), source)
    as_float = image_to_proto(source.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(_received_pixels(as_float), source)


def _png_bytes(source: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(source).save(buffer, format="PNG")
    return buffer.getvalue()


def test_encoded_bytes_and_files_pass_through(tmp_path):
    source = _rgb()
    png = _png_bytes(source)
    for encoding in ("raw", "auto"):
        msg = image_to_proto(png, encoding=encoding)
        assert msg.encoded == png
        np.testing.assert_array_equal(_received_pixels(msg), source)
    path = tmp_path / "frame.png"
    path.write_bytes(png)
    for value in (path, str(path)):
        msg = image_to_proto(value)
        assert msg.encoded == png
        np.testing.assert_array_equal(_received_pixels(msg), source)


def test_png_and_jpeg_encoding():
    ramp = np.linspace(0, 255, 32, dtype=np.uint8)
    source = np.stack([np.tile(ramp, (24, 1)), np.tile(ramp[:24, None], (1, 32)), np.full((24, 32), 90)], -1)
    source = source.astype(np.uint8)  # smooth gradients, which JPEG keeps well
    png = image_to_proto(source, encoding="png")
    assert png.encoded.startswith(b"\x89PNG")
    np.testing.assert_array_equal(_received_pixels(png), source)
    jpeg = image_to_proto(source[..., ::-1], bgr=True, encoding="jpeg", jpeg_quality=95)
    assert jpeg.encoded.startswith(b"\xff\xd8")
    error = np.abs(_received_pixels(jpeg).astype(int) - source.astype(int))
    assert error.mean() < 3


def test_image_to_proto_rejects_bad_options_and_inputs(tmp_path):
    with pytest.raises(ValueError, match="unknown image encoding 'webp'"):
        image_to_proto(_rgb(), encoding="webp")
    with pytest.raises(ValueError, match="jpeg_quality"):
        image_to_proto(_rgb(), encoding="jpeg", jpeg_quality=0)
    with pytest.raises(ImageInputError, match="image file not found"):
        image_to_proto(tmp_path / "missing.png")
    with pytest.raises(ImageInputError, match="zero size"):
        image_to_proto(np.zeros((0, 4, 3), np.uint8))


def test_image_with_no_source_is_an_image_error():
    with pytest.raises(ImageInputError, match="image has neither encoded bytes nor raw pixels"):
        image_input_from_proto(types_pb2.Image(), LIMITS)


def test_raw_image_without_format_is_an_image_error():
    msg = types_pb2.Image(raw=types_pb2.RawImage(width=1, height=1, data=b"\0\0\0"))
    with pytest.raises(ImageInputError, match=r"PIXEL_FORMAT_UNSPECIFIED; set RawImage\.format to one of"):
        image_input_from_proto(msg, LIMITS)


def test_raw_image_layout_errors_come_from_images():
    raw = types_pb2.RawImage(width=4, height=4, format=types_pb2.PIXEL_FORMAT_RGB8, data=b"\0" * 10)
    with pytest.raises(ImageInputError, match="raw data is 10 bytes, expected at least 48"):
        image_input_from_proto(types_pb2.Image(raw=raw), LIMITS)


# --- depth ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "encoding", "scale"),
    [
        (np.array([[0, 1500], [65535, 7]], dtype=np.uint16), types_pb2.DEPTH_ENCODING_UINT16_MM, 0.001),
        (np.array([[0.0, np.nan], [1.5, 9.25]], dtype=np.float32), types_pb2.DEPTH_ENCODING_FLOAT32_M, 1.0),
        (np.array([[1, 2], [3, 4]], dtype=">u2"), types_pb2.DEPTH_ENCODING_UINT16_MM, 0.001),
    ],
)
def test_depth_round_trip(values, encoding, scale):
    msg = _over_the_wire(depth_to_proto(values))
    assert msg.encoding == encoding and (msg.width, msg.height) == (2, 2)
    depth, depth_scale = depth_from_proto(msg, (2, 2), LIMITS)
    assert depth_scale == scale
    np.testing.assert_array_equal(depth, values)


def test_depth_to_proto_refuses_guessing_units():
    with pytest.raises(ImageInputError, match="uint16 millimetres or float32 metres"):
        depth_to_proto(np.zeros((2, 2), np.float64))
    with pytest.raises(ImageInputError, match=r"got shape \(2, 2, 3\)"):
        depth_to_proto(np.zeros((2, 2, 3), np.uint16))


def test_depth_from_proto_errors():
    with pytest.raises(ImageInputError, match=r"DEPTH_ENCODING_UNSPECIFIED; set DepthImage\.encoding"):
        depth_from_proto(types_pb2.DepthImage(width=1, height=1, data=b"\0\0"), None, LIMITS)
    msg = depth_to_proto(np.zeros((2, 3), np.uint16))
    with pytest.raises(ImageInputError, match="depth is 3x2 but the colour image is 4x4"):
        depth_from_proto(msg, (4, 4), LIMITS)


# --- camera geometry --------------------------------------------------------------------------------------


def test_intrinsics_round_trip_from_every_accepted_form():
    expected = CameraIntrinsics(600.0, 601.0, 320.0, 240.0, (0.1, -0.05, 0.0, 0.0, 0.01))
    forms = [
        expected,
        {"fx": 600.0, "fy": 601.0, "cx": 320.0, "cy": 240.0, "distortion": (0.1, -0.05, 0.0, 0.0, 0.01)},
        (600.0, 601.0, 320.0, 240.0, (0.1, -0.05, 0.0, 0.0, 0.01)),
    ]
    for form in forms:
        assert intrinsics_from_proto(_over_the_wire(intrinsics_to_proto(form))) == expected
    for k in (expected.matrix, expected.matrix.tolist()):
        assert intrinsics_from_proto(intrinsics_to_proto(k)) == CameraIntrinsics(600.0, 601.0, 320.0, 240.0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fx": math.nan, "fy": 500.0}, "invalid intrinsics: fx must be finite, got nan"),
        ({"fx": 500.0, "fy": -1.0}, "invalid intrinsics: fy must be positive"),
        ({"fx": 500.0, "fy": 500.0, "cx": math.inf}, "cx must be finite"),
        ({"fx": 500.0, "fy": 500.0, "distortion": [0.1]}, "distortion must have one of"),
        ({}, "intrinsics are empty"),
    ],
)
def test_bad_intrinsics_are_request_errors(fields, message):
    with pytest.raises(RequestError, match=message):
        intrinsics_from_proto(types_pb2.CameraIntrinsics(**fields))


def test_intrinsics_to_proto_validates_on_the_client():
    with pytest.raises(RequestError, match="fx must be positive"):
        intrinsics_to_proto((0.0, 1.0, 2.0, 3.0))
    with pytest.raises(RequestError, match="invalid camera intrinsics"):
        intrinsics_to_proto({"fx": 1.0})


def _pose() -> RigidTransform:
    angle = 0.3
    rotation = np.array(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]]
    )
    return RigidTransform.from_rotation_translation(rotation, [0.5, -0.1, 1.2])


def test_transform_round_trip():
    pose = _pose()
    for form in (pose, pose.matrix, pose.matrix.tolist()):
        back = transform_from_proto(_over_the_wire(transform_to_proto(form)))
        np.testing.assert_allclose(back.matrix, pose.matrix, atol=1e-12)


def test_empty_transform_is_none():
    assert transform_from_proto(types_pb2.RigidTransform()) is None


def test_transform_with_15_values_is_a_request_error():
    msg = types_pb2.RigidTransform(matrix=np.eye(4).ravel()[:15].tolist())
    with pytest.raises(RequestError, match=r"camera_to_base must hold 16 values .* got 15"):
        transform_from_proto(msg)


@pytest.mark.parametrize(
    ("matrix", "reason"),
    [
        (np.diag([2.0, 1.0, 1.0, 1.0]), "not orthonormal"),
        (np.diag([-1.0, 1.0, 1.0, 1.0]), "reflection"),
        (np.vstack([np.eye(4)[:3], [0.0, 0.0, 1.0, 1.0]]), "last row"),
        (np.full((4, 4), math.nan), "finite"),
    ],
)
def test_non_rigid_transform_is_a_request_error_with_the_reason(matrix, reason):
    msg = types_pb2.RigidTransform(matrix=matrix.ravel().tolist())
    with pytest.raises(RequestError, match=f"camera_to_base is not a rigid transform: .*{reason}"):
        transform_from_proto(msg)
    with pytest.raises(RequestError, match=reason):
        transform_to_proto(matrix)
