"""Image input: every accepted kind becomes an upright RGB image; every bad input says what is wrong."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from molmo_agent.errors import ImageInputError
from molmo_agent.images import (
    DEFAULT_MAX_PIXELS,
    ImageLimits,
    image_size,
    load_image,
    load_images,
    to_numpy_rgb,
)


def _rgb_array(width: int = 6, height: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` RGB pixels (the body is almost empty)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _half_red_half_blue(width: int = 40, height: int = 20) -> Image.Image:
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    return image


def _with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(image, "JPEG", exif=exif.tobytes(), quality=95)


# --- accepted inputs -----------------------------------------------------------------------------------


def test_pil_rgb_image_is_returned_with_same_pixels() -> None:
    source = Image.fromarray(_rgb_array())
    result = load_image(source)
    assert result.mode == "RGB"
    assert np.array_equal(np.asarray(result), np.asarray(source))


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "1", "CMYK", "I", "I;16", "F", "RGBX", "YCbCr"])
def test_pil_modes_become_rgb(mode: str) -> None:
    result = load_image(Image.new(mode, (7, 3)))
    assert result.mode == "RGB"
    assert result.size == (7, 3)


def test_pil_16_bit_grayscale_is_scaled_not_clipped() -> None:
    image = Image.fromarray(np.array([[0, 100 * 256, 65535]], dtype=np.uint16))
    assert image.mode.startswith("I;16")
    assert to_numpy_rgb(image)[0, :, 0].tolist() == [0, 100, 255]


def test_pil_32_bit_integer_grayscale_is_scaled_as_16_bit() -> None:
    image = Image.fromarray(np.array([[0, 200 * 256, 70000]], dtype=np.int32))
    assert image.mode == "I"
    assert to_numpy_rgb(image)[0, :, 0].tolist() == [0, 200, 255]


def test_pil_float_grayscale_in_unit_range_is_scaled() -> None:
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert to_numpy_rgb(image)[0, :, 0].tolist() == [0, 128, 255]


def test_pil_float_grayscale_outside_unit_range_clips_like_pil() -> None:
    image = Image.fromarray(np.array([[-5.0, 100.0, 300.0]], dtype=np.float32))
    assert to_numpy_rgb(image)[0, :, 0].tolist() == [0, 100, 255]


def test_rgb_array() -> None:
    array = _rgb_array()
    result = load_image(array)
    assert result.size == (6, 4)
    assert np.array_equal(np.asarray(result), array)


def test_bgr_array_swaps_channels() -> None:
    array = np.zeros((2, 3, 3), dtype=np.uint8)
    array[...] = (10, 20, 30)
    assert to_numpy_rgb(load_image(array))[0, 0].tolist() == [10, 20, 30]
    assert to_numpy_rgb(load_image(array, bgr=True))[0, 0].tolist() == [30, 20, 10]


def test_bgra_array_drops_alpha_and_swaps() -> None:
    array = np.zeros((2, 3, 4), dtype=np.uint8)
    array[...] = (10, 20, 30, 40)
    assert to_numpy_rgb(array)[1, 2].tolist() == [10, 20, 30]
    assert np.asarray(load_image(array, bgr=True))[1, 2].tolist() == [30, 20, 10]


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 1)])
def test_gray_arrays_are_replicated_to_rgb(shape: tuple[int, ...]) -> None:
    array = np.arange(20, dtype=np.uint8).reshape(shape)
    result = to_numpy_rgb(array)
    assert result.shape == (4, 5, 3)
    assert np.array_equal(result[..., 0], array.reshape(4, 5))
    assert np.array_equal(result[..., 0], result[..., 2])


def test_gray_array_ignores_bgr_flag() -> None:
    array = np.full((2, 2), 77, dtype=np.uint8)
    assert np.array_equal(to_numpy_rgb(load_image(array, bgr=True)), np.full((2, 2, 3), 77))


def test_uint16_array_is_scaled_to_8_bit() -> None:
    array = np.array([[0, 256, 65535]], dtype=np.uint16)
    assert to_numpy_rgb(array)[0, :, 1].tolist() == [0, 1, 255]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_array_in_unit_range(dtype: type) -> None:
    array = np.array([[[0.0, 0.5, 1.0]]], dtype=dtype)
    assert to_numpy_rgb(array)[0, 0].tolist() == [0, 128, 255]


def test_non_contiguous_arrays_are_fine() -> None:
    base = _rgb_array(12, 8)
    strided = base[::2, ::3]
    fortran = np.asfortranarray(base)
    assert np.array_equal(to_numpy_rgb(strided), strided)
    assert np.array_equal(to_numpy_rgb(fortran), base)
    assert np.array_equal(to_numpy_rgb(base[..., ::-1]), base[..., ::-1])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF"])
def test_encoded_bytes(fmt: str) -> None:
    data = _encode(Image.fromarray(_rgb_array(9, 5)), fmt)
    result = load_image(data)
    assert result.mode == "RGB"
    assert result.size == (9, 5)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp_bytes() -> None:
    assert load_image(_encode(Image.fromarray(_rgb_array()), "WEBP")).size == (6, 4)


def test_png_bytes_are_lossless() -> None:
    array = _rgb_array()
    data = _encode(Image.fromarray(array), "PNG")
    for wrapped in (data, bytearray(data), memoryview(data)):
        assert np.array_equal(to_numpy_rgb(wrapped), array)


def test_sixteen_bit_png_bytes() -> None:
    data = _encode(Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)), "PNG")
    assert to_numpy_rgb(data)[0, :, 0].tolist() == [0, 255]


def test_path_as_str_and_pathlike(tmp_path: Path) -> None:
    array = _rgb_array()
    path = tmp_path / "frame.png"
    Image.fromarray(array).save(path)
    assert np.array_equal(to_numpy_rgb(path), array)
    assert np.array_equal(to_numpy_rgb(str(path)), array)


# --- EXIF orientation ----------------------------------------------------------------------------------


def _assert_rotated_clockwise(result: Image.Image) -> None:
    """Stored 40x20 red left / blue right; rotated 90 degrees clockwise it is red top / blue bottom."""
    assert result.size == (20, 40)
    pixels = np.asarray(result).astype(int)
    top, bottom = pixels[5, 10], pixels[35, 10]
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_exif_orientation_applied_to_bytes() -> None:
    _assert_rotated_clockwise(load_image(_with_orientation(_half_red_half_blue(), 6)))


def test_exif_orientation_applied_to_path_and_pil(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    path.write_bytes(_with_orientation(_half_red_half_blue(), 6))
    _assert_rotated_clockwise(load_image(path))
    with Image.open(path) as opened:
        _assert_rotated_clockwise(load_image(opened))


def test_exif_orientation_1_leaves_image_alone() -> None:
    assert load_image(_with_orientation(_half_red_half_blue(), 1)).size == (40, 20)


# --- rejected inputs -----------------------------------------------------------------------------------


def test_undecodable_bytes() -> None:
    with pytest.raises(
        ImageInputError, match=r"could not decode image bytes \(19 bytes, first bytes b'not an"
    ):
        load_image(b"not an image at all")


def test_empty_bytes() -> None:
    with pytest.raises(ImageInputError, match="0 bytes"):
        load_image(b"")


def test_bytes_over_byte_limit() -> None:
    data = _encode(Image.fromarray(_rgb_array()), "PNG")
    with pytest.raises(ImageInputError, match="max_bytes"):
        load_image(data, limits=ImageLimits(max_bytes=10))


def test_file_over_byte_limit_names_path(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(_rgb_array()).save(path)
    with pytest.raises(ImageInputError, match=r"big\.png.*max_bytes"):
        load_image(path, limits=ImageLimits(max_bytes=10))


@pytest.mark.parametrize(
    "image",
    [np.zeros((0, 5, 3), np.uint8), np.zeros((5, 0), np.uint8), Image.new("RGB", (0, 5))],
    ids=["array-no-rows", "array-no-columns", "pil-zero-width"],
)
def test_zero_size(image: object) -> None:
    with pytest.raises(ImageInputError, match="zero size"):
        load_image(image)


def test_channel_first_array_suggests_transpose() -> None:
    with pytest.raises(ImageInputError, match=r"\(3, 8, 9\).*np\.transpose\(a, \(1, 2, 0\)\)"):
        load_image(np.zeros((3, 8, 9), np.uint8))


def test_four_dimensional_array_mentions_batch() -> None:
    with pytest.raises(ImageInputError, match=r"\(2, 4, 4, 3\).*batch"):
        load_image(np.zeros((2, 4, 4, 3), np.uint8))


@pytest.mark.parametrize("shape", [(4, 4, 2), (7,), (4, 4, 5), ()])
def test_unsupported_shapes_list_expected_forms(shape: tuple[int, ...]) -> None:
    with pytest.raises(ImageInputError, match=r"unsupported image array shape.*\(H, W, 3\) RGB/BGR"):
        load_image(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("dtype", [bool, np.complex64, object, np.int32, np.int8, np.uint32])
def test_unsupported_dtypes(dtype: type) -> None:
    with pytest.raises(ImageInputError, match=r"unsupported image array dtype.*expected uint8, uint16"):
        load_image(np.zeros((4, 4, 3), dtype=dtype))


def test_float_array_out_of_range() -> None:
    with pytest.raises(ImageInputError, match=r"within \[0, 1\], got min 0 and max 255"):
        load_image(np.array([[0.0, 255.0]], dtype=np.float32))


def test_float_array_with_nan() -> None:
    with pytest.raises(ImageInputError, match="NaN"):
        load_image(np.array([[0.0, np.nan]], dtype=np.float32))


def test_array_over_pixel_limit() -> None:
    with pytest.raises(
        ImageInputError, match=r"6x4 = 24 pixels.*limit of 10.*ImageLimits\(max_pixels=\.\.\.\)"
    ):
        load_image(_rgb_array(), limits=ImageLimits(max_pixels=10))


def test_raised_pixel_limit_accepts() -> None:
    assert load_image(_rgb_array(), limits=ImageLimits(max_pixels=24)).size == (6, 4)


def test_decompression_bomb_header_rejected_by_pillow_check() -> None:
    data = _png_claiming(100_000, 100_000)
    with pytest.raises(ImageInputError, match="too large"):
        load_image(data)


def test_decompression_bomb_header_rejected_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Pillow's own check disabled, our header check must still stop it before any pixel is decoded."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    def forbidden_load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data decoded for an over-limit image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden_load)
    with pytest.raises(ImageInputError, match=r"100000x100000 = 10,000,000,000 pixels.*50,000,000"):
        load_image(_png_claiming(100_000, 100_000))


def test_pillow_bomb_warning_zone_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between Pillow's limit and twice it, Pillow only warns; we still refuse to decode."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = _png_claiming(40, 40)
    with pytest.raises(ImageInputError, match="MAX_IMAGE_PIXELS"):
        load_image(data, limits=ImageLimits(max_pixels=DEFAULT_MAX_PIXELS))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_data(fmt: str, tmp_path: Path) -> None:
    data = _encode(Image.fromarray(_rgb_array(64, 64)), fmt)
    truncated = data[: len(data) // 2]
    with pytest.raises(ImageInputError, match=r"could not decode"):
        load_image(truncated)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(truncated)
    with pytest.raises(ImageInputError, match=r"cut\."):
        load_image(path)


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.png"
    with pytest.raises(ImageInputError, match=r"not found: .*nowhere\.png"):
        load_image(missing)


def test_url_is_not_fetched() -> None:
    with pytest.raises(ImageInputError, match="URLs are not fetched"):
        load_image("https://example.com/cat.png")


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="directory"):
        load_image(tmp_path)


def test_file_that_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(ImageInputError, match=r"could not decode image file .*notes.png.* \(5 bytes"):
        load_image(path)


@pytest.mark.parametrize(
    ("value", "name"), [(None, "None"), (42, "int"), (3.5, "float"), ([1, 2], "list"), ({}, "dict")]
)
def test_wrong_types_name_type_and_accepted_types(value: object, name: str) -> None:
    with pytest.raises(ImageInputError, match=rf"{name}.*PIL\.Image\.Image, a numpy array"):
        load_image(value)


def test_image_input_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        load_image(None)


def test_image_limits_validation() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        ImageLimits(max_pixels=0)
    with pytest.raises(ValueError, match="max_bytes"):
        ImageLimits(max_bytes=-1)


# --- batches and helpers -------------------------------------------------------------------------------


def test_load_images_single_and_batch() -> None:
    array = _rgb_array()
    png = _encode(Image.fromarray(array), "PNG")
    assert len(load_images(array)) == 1
    assert len(load_images(png)) == 1
    batch = load_images([array, png, Image.fromarray(array)])
    assert [img.size for img in batch] == [(6, 4)] * 3
    assert len(load_images((array, array))) == 2


def test_load_images_splits_4d_array() -> None:
    stack = np.stack([_rgb_array(), _rgb_array()])
    assert [img.size for img in load_images(stack)] == [(6, 4), (6, 4)]


def test_load_images_bgr_applies_to_all() -> None:
    pixel = np.full((1, 1, 3), (1, 2, 3), np.uint8)
    assert [to_numpy_rgb(img)[0, 0].tolist() for img in load_images([pixel, pixel], bgr=True)] == [
        [3, 2, 1]
    ] * 2


def test_load_images_error_names_index() -> None:
    with pytest.raises(ImageInputError, match=r"image 1 of 2: could not decode"):
        load_images([_rgb_array(), b"garbage"])


def test_load_images_single_error_has_no_index() -> None:
    with pytest.raises(ImageInputError, match=r"^could not decode"):
        load_images(b"garbage")


def test_load_images_empty() -> None:
    with pytest.raises(ImageInputError, match="no images"):
        load_images([])


def test_image_size() -> None:
    assert image_size(Image.new("RGB", (7, 3))) == (7, 3)
    assert image_size(np.zeros((3, 7, 3), np.uint8)) == (7, 3)
    with pytest.raises(ImageInputError):
        image_size(b"abc")  # type: ignore[arg-type]


def test_to_numpy_rgb_is_writable_uint8() -> None:
    result = to_numpy_rgb(Image.new("L", (4, 2), 9))
    assert result.shape == (2, 4, 3) and result.dtype == np.uint8
    result[0, 0] = 1
