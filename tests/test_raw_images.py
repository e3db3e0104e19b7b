"""Raw pixel and depth input: views of the caller's bytes, every layout mistake explained before any copy."""

from __future__ import annotations

import numpy as np
import pytest

from molmo_agent.errors import ImageInputError
from molmo_agent.images import (
    DEPTH_ENCODINGS,
    RAW_FORMATS,
    ImageLimits,
    array_from_raw,
    depth_from_raw,
    load_image,
    read_image_file,
)


def _pixels(height: int, width: int, channels: int) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)


def _padded(array: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Rows with ``pad`` junk bytes after each, as camera drivers deliver aligned frames."""
    rows = array.reshape(array.shape[0], -1)
    junk = np.full((rows.shape[0], pad), 0xAB, dtype=np.uint8)
    return np.hstack([rows, junk]).tobytes(), rows.shape[1] + pad


def test_formats_and_encodings_tables():
    assert RAW_FORMATS == {"rgb8": 3, "bgr8": 3, "mono8": 1}
    assert DEPTH_ENCODINGS["uint16_mm"] == (np.uint16, 0.001)
    assert DEPTH_ENCODINGS["float32_m"] == (np.float32, 1.0)


@pytest.mark.parametrize("pixel_format", ["rgb8", "bgr8"])
def test_colour_round_trip_is_a_view(pixel_format):
    source = _pixels(4, 6, 3)
    data = source.tobytes()
    array = array_from_raw(data, 6, 4, 0, pixel_format)
    assert array.shape == (4, 6, 3) and array.dtype == np.uint8
    np.testing.assert_array_equal(array, source)
    assert not array.flags.writeable  # a view into the immutable bytes, not a copy
    image = load_image(array, bgr=pixel_format == "bgr8")
    expected = source[..., ::-1] if pixel_format == "bgr8" else source
    np.testing.assert_array_equal(np.asarray(image), expected)


def test_mono_round_trip():
    source = _pixels(5, 7, 1)
    array = array_from_raw(source.tobytes(), 7, 5, 7, "mono8")
    assert array.shape == (5, 7)
    np.testing.assert_array_equal(array, source)
    np.testing.assert_array_equal(np.asarray(load_image(array))[..., 1], source)


@pytest.mark.parametrize(("pixel_format", "channels"), [("rgb8", 3), ("mono8", 1)])
def test_padded_stride_skips_the_padding(pixel_format, channels):
    source = _pixels(3, 5, channels)
    data, stride = _padded(source, pad=7)
    np.testing.assert_array_equal(array_from_raw(data, 5, 3, stride, pixel_format), source)


def test_last_row_needs_no_padding():
    source = _pixels(3, 5, 3)
    data, stride = _padded(source, pad=4)
    trimmed = data[: len(data) - 4]
    np.testing.assert_array_equal(array_from_raw(trimmed, 5, 3, stride, "rgb8"), source)


def test_memoryview_and_bytearray_are_accepted():
    source = _pixels(2, 3, 3)
    for data in (memoryview(source.tobytes()), bytearray(source.tobytes()), memoryview(source)):
        np.testing.assert_array_equal(array_from_raw(data, 3, 2, 0, "rgb8"), source)


@pytest.mark.parametrize(("width", "height"), [(0, 0), (0, 4), (4, 0), (-2, 3)])
def test_zero_size_is_rejected_with_the_values(width, height):
    with pytest.raises(ImageInputError, match=rf"zero size \({width}x{height}\)"):
        array_from_raw(b"\0" * 64, width, height, 0, "rgb8")


def test_short_data_names_expected_and_received_counts():
    with pytest.raises(ImageInputError) as info:
        array_from_raw(b"\0" * 50, 4, 5, 0, "rgb8")
    assert str(info.value) == "raw data is 50 bytes, expected at least 60 for 4x5 rgb8 with stride 12"


def test_short_data_with_stride_counts_only_the_last_rows_pixels():
    with pytest.raises(ImageInputError, match=r"raw data is 23 bytes, expected at least 24 .* stride 10"):
        array_from_raw(b"\0" * 23, 4, 3, 10, "mono8")
    assert array_from_raw(b"\0" * 24, 4, 3, 10, "mono8").shape == (3, 4)


def test_stride_shorter_than_a_row_is_rejected():
    with pytest.raises(ImageInputError, match=r"stride 8 of 4x2 rgb8 is shorter than one row .*12 bytes"):
        array_from_raw(b"\0" * 100, 4, 2, 8, "rgb8")


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(
        ImageInputError, match=r"unknown raw pixel format 'rgba8'; expected one of: rgb8, bgr8"
    ):
        array_from_raw(b"\0" * 100, 2, 2, 0, "rgba8")


def test_pixel_limit_is_checked_before_the_data():
    """A tiny message claiming a huge image fails on the limit, never reaching the byte count or memory."""
    with pytest.raises(ImageInputError, match=r"raw image is 100000x100000 = .* above the limit"):
        array_from_raw(b"\0" * 3, 100_000, 100_000, 0, "rgb8")
    with pytest.raises(ImageInputError, match="above the limit of 20"):
        array_from_raw(b"\0" * 3, 5, 5, 0, "mono8", limits=ImageLimits(max_pixels=20))


def test_non_bytes_data_is_an_image_input_error():
    with pytest.raises(ImageInputError, match="must be contiguous bytes"):
        array_from_raw("not bytes", 1, 1, 0, "mono8")  # type: ignore[arg-type]


def test_depth_uint16_millimetres():
    source = np.array([[0, 1000, 65535], [250, 2, 3]], dtype=np.uint16)
    depth, scale = depth_from_raw(source.astype("<u2").tobytes(), 3, 2, 0, "uint16_mm")
    assert scale == 0.001
    assert depth.dtype == np.uint16 and depth.dtype.isnative and depth.flags.writeable
    np.testing.assert_array_equal(depth, source)


def test_depth_float32_metres_with_nan_holes_and_stride():
    source = np.array([[0.5, np.nan], [1.25, 3.0]], dtype=np.float32)
    rows = source.astype("<f4").view(np.uint8).reshape(2, -1)
    data = np.hstack([rows, np.zeros((2, 4), np.uint8)]).tobytes()
    depth, scale = depth_from_raw(data, 2, 2, 12, "float32_m")
    assert scale == 1.0 and depth.dtype == np.float32
    np.testing.assert_array_equal(depth, source)


def test_depth_reads_little_endian_regardless_of_platform():
    depth, _ = depth_from_raw(bytes([0x01, 0x02]), 1, 1, 0, "uint16_mm")
    assert depth[0, 0] == 0x0201


def test_depth_size_mismatch_is_explained():
    with pytest.raises(ImageInputError) as info:
        depth_from_raw(b"\0" * 8, 2, 2, 0, "uint16_mm", expected_size=(4, 3))
    assert str(info.value) == (
        "depth is 2x2 but the colour image is 4x3: depth must be aligned to the colour image pixel for pixel"
    )
    depth, _ = depth_from_raw(b"\0" * 8, 2, 2, 0, "uint16_mm", expected_size=(2, 2))
    assert depth.shape == (2, 2)


def test_depth_validation_errors():
    with pytest.raises(ImageInputError, match=r"unknown depth encoding 'uint8'; expected one of: uint16_mm"):
        depth_from_raw(b"\0" * 8, 2, 2, 0, "uint8")
    with pytest.raises(
        ImageInputError, match=r"depth data is 7 bytes, expected at least 8 for 2x2 uint16_mm"
    ):
        depth_from_raw(b"\0" * 7, 2, 2, 0, "uint16_mm")
    with pytest.raises(ImageInputError, match=r"depth image has zero size \(0x2\)"):
        depth_from_raw(b"", 0, 2, 0, "float32_m")
    with pytest.raises(ImageInputError, match="depth image is 6x6 = 36 pixels, above the limit"):
        depth_from_raw(b"", 6, 6, 0, "float32_m", limits=ImageLimits(max_pixels=35))


def test_read_image_file_returns_the_bytes_and_names_missing_files(tmp_path):
    path = tmp_path / "frame.png"
    path.write_bytes(b"\x89PNG not really")
    assert read_image_file(path) == b"\x89PNG not really"
    with pytest.raises(ImageInputError, match="image file not found"):
        read_image_file(tmp_path / "missing.png")
    with pytest.raises(ImageInputError, match="above the limit of 4 bytes"):
        read_image_file(path, limits=ImageLimits(max_bytes=4))
