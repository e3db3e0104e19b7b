"""Image input in one place: every way a user can hand us an image becomes an RGB PIL image here.

Callers (the model backends, the gRPC server, the agent loop, the CLI) never decode, rotate or convert images
themselves, so one set of rules applies everywhere: EXIF orientation is honoured (a phone photo is pointed at
the way a person sees it), pixel-count limits are checked from the header before any pixel data is decoded
(a decompression bomb never allocates), and every failure is an :class:`~molmo_agent.errors.ImageInputError`
whose message says what was received and what is accepted.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

import numpy as np
from PIL import Image, ImageOps

from .errors import ImageInputError

DEFAULT_MAX_PIXELS = 50_000_000
"""Larger than any camera or screen we expect (an 8K frame is 33 M pixels), far below a bomb."""
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Encoded size limit: a generous JPEG/PNG of a 50 M pixel image fits."""
DEFAULT_MAX_TOTAL_PIXELS = 64_000_000
"""All images of one request together: eight 4K frames or one 8K frame fit; eight 7000x7000 images (1.2 GB
decoded) do not. Checked from the headers before any image is decoded."""

ImageLike: TypeAlias = Image.Image | np.ndarray | bytes | bytearray | memoryview | str | os.PathLike
"""Everything :func:`load_image` accepts."""

_ACCEPTED = (
    "a PIL.Image.Image, a numpy array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), encoded image bytes "
    "(bytes, bytearray, memoryview) or a file path (str, os.PathLike)"
)
_ACCEPTED_SHAPES = "(H, W) grayscale, (H, W, 1), (H, W, 3) RGB/BGR or (H, W, 4) RGBA/BGRA"
_ACCEPTED_DTYPES = "uint8, uint16 (scaled to 8 bit) or float with values in [0, 1]"
_WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


@dataclass(frozen=True)
class ImageLimits:
    """Limits applied to every input, so a hostile or mistaken input fails fast instead of exhausting memory.

    Attributes:
        max_pixels: Largest ``width * height`` accepted (checked before decoding).
        max_bytes: Largest encoded size accepted for bytes and files.
        max_total_pixels: Largest sum of ``width * height`` over the images of one request
            (:func:`check_total_pixels`): what decoding a request costs in memory.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_bytes", "max_total_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"ImageLimits.{name} must be a positive integer, got {value!r}")


def load_image(image: ImageLike, *, bgr: bool = False, limits: ImageLimits | None = None) -> Image.Image:
    """Turn any accepted input into an upright RGB PIL image.

    Args:
        image: See :data:`ImageLike`.
        bgr: Arrays with 3 or 4 channels are in OpenCV's BGR(A) order (ignored for other inputs, which
            carry their own channel order).
        limits: Pixel and byte limits; ``None`` means :class:`ImageLimits` defaults.

    Raises:
        ImageInputError: The input is of an unsupported type, shape or dtype, undecodable, truncated,
            empty, or over the limits.
    """
    limits = limits or ImageLimits()
    if isinstance(image, Image.Image):
        return _from_pil(image, limits, "PIL image")
    if isinstance(image, np.ndarray):
        return _from_array(image, bgr=bgr, limits=limits)
    if isinstance(image, bytes | bytearray | memoryview):
        return _from_bytes(image, limits, "image bytes")
    if isinstance(image, str | os.PathLike):
        return _from_path(image, limits)
    raise ImageInputError(
        f"cannot use {_type_name(image)} as an image; expected {_ACCEPTED}{_type_hint(image)}"
    )


def load_images(
    images: ImageLike | list[ImageLike] | tuple[ImageLike, ...],
    *,
    bgr: bool = False,
    limits: ImageLimits | None = None,
) -> list[Image.Image]:
    """Accept one image or a batch, so every batched API takes both without its own type checks.

    A list or tuple is a batch, as is a 4-D array ``(N, H, W, C)``; anything else is one image. Errors
    name the index of the offending image in the batch.
    """
    is_batch = isinstance(images, list | tuple) or (isinstance(images, np.ndarray) and images.ndim == 4)
    items = list(images) if is_batch else [images]
    if not items:
        raise ImageInputError("no images given: pass one image or a non-empty list of images")
    loaded = []
    for index, item in enumerate(items):
        try:
            loaded.append(load_image(item, bgr=bgr, limits=limits))
        except ImageInputError as error:
            if not is_batch:
                raise
            raise ImageInputError(f"image {index} of {len(items)}: {error}") from error
    return loaded


def header_pixels(image: ImageLike) -> int:
    """``width * height`` of an input as its header (or shape) says, without decoding it; 0 when unknown.

    Unreadable inputs count 0 here: decoding them reports the real error with its message.
    """
    if isinstance(image, Image.Image):
        width, height = image.size
    elif isinstance(image, np.ndarray):
        width, height = (int(image.shape[1]), int(image.shape[0])) if image.ndim >= 2 else (0, 0)
    elif isinstance(image, bytes | bytearray | memoryview | str | os.PathLike):
        source = io.BytesIO(image) if isinstance(image, bytes | bytearray | memoryview) else image
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(source) as opened:  # reads the header only
                    width, height = opened.size
        except Exception:  # undecodable, missing, a bomb: load_image says which
            return 0
    else:
        return 0
    return max(width, 0) * max(height, 0)


def check_total_pixels(images: Sequence[ImageLike], limits: ImageLimits, limit_name: str = "") -> int:
    """Refuse a request whose images together would decode to more than ``limits.max_total_pixels``.

    The per-image limit alone lets eight huge images through, and their decoded buffers are what a process
    pays for (1.8 GB for eight 7000x7000 images). Returns the total. ``limit_name`` is how the caller's
    setting is called in the message (default: the ``ImageLimits`` field).

    Raises:
        ImageInputError: The sum is over the limit.
    """
    total = sum(header_pixels(image) for image in images)
    if total > limits.max_total_pixels:
        name = limit_name or "ImageLimits.max_total_pixels"
        raise ImageInputError(
            f"the {len(images)} images of this request have {total:,} pixels together, above the limit "
            f"({name}) of {limits.max_total_pixels:,}; send fewer or smaller images"
        )
    return total


def image_size(img: Image.Image | np.ndarray) -> tuple[int, int]:
    """``(width, height)`` without decoding, in the package-wide size order (numpy's shape is the reverse)."""
    if isinstance(img, Image.Image):
        return img.size
    if isinstance(img, np.ndarray) and img.ndim >= 2:
        return int(img.shape[1]), int(img.shape[0])
    raise ImageInputError(
        f"cannot take the size of {_type_name(img)}; expected a PIL image or an (H, W, ...) array"
    )


def to_numpy_rgb(img: ImageLike) -> np.ndarray:
    """A writable ``(H, W, 3)`` uint8 RGB array, for consumers such as OpenCV or torch."""
    return np.array(load_image(img), dtype=np.uint8)


# --- PIL images and encoded data -------------------------------------------------------------------------


def _from_pil(im: Image.Image, limits: ImageLimits, what: str) -> Image.Image:
    """Check the header size, then decode (PIL opens lazily, so nothing is allocated before the check)."""
    _check_pixels(im.size, limits, what)
    try:
        with _bomb_guard():
            im.load()
            upright = ImageOps.exif_transpose(im)
            return _to_rgb(upright if upright is not None else im)
    except ImageInputError:
        raise
    except Image.DecompressionBombError as error:
        raise _bomb_error(what, error) from error
    except Exception as error:  # PIL's decoders fail in many ways (OSError, SyntaxError, struct.error, ...)
        raise ImageInputError(
            f"could not decode {what} ({im.format or 'unknown'} format): {error}"
        ) from error


def _from_bytes(data: bytes | bytearray | memoryview, limits: ImageLimits, what: str) -> Image.Image:
    """Decode encoded bytes, with the byte limit checked before anything is copied."""
    size = memoryview(data).nbytes
    if size == 0:
        raise ImageInputError(f"could not decode {what} as an image: they are empty (0 bytes)")
    if size > limits.max_bytes:
        raise ImageInputError(
            f"{what} of {size:,} bytes exceed the limit of {limits.max_bytes:,} bytes; "
            "pass limits=ImageLimits(max_bytes=...) to raise it"
        )
    raw = bytes(data)
    try:
        with _bomb_guard():
            im = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as error:
        raise _bomb_error(what, error) from error
    except Image.UnidentifiedImageError as error:
        raise ImageInputError(
            f"could not decode {what} ({size:,} bytes, first bytes {raw[:16]!r}) as an image: not a "
            "format Pillow can read (JPEG, PNG, WebP, BMP, TIFF, ...)"
        ) from error
    except Exception as error:  # a header a plugin could not parse
        raise ImageInputError(
            f"could not decode {what} ({size:,} bytes, first bytes {raw[:16]!r}) as an image: {error}"
        ) from error
    return _from_pil(im, limits, what)


def _from_path(path: str | os.PathLike, limits: ImageLimits) -> Image.Image:
    """Read a file whole (it is closed before decoding), with errors that name the path."""
    data = read_image_file(path, limits=limits)
    return _from_bytes(data, limits, f"image file {os.fsdecode(path)!r}")


def read_image_file(path: str | os.PathLike, *, limits: ImageLimits | None = None) -> bytes:
    """An image file's encoded bytes, undecoded, with the same checks and messages as :func:`load_image`.

    Clients that forward a file as it is (e.g. over gRPC, where the server decodes) share the path rules
    here instead of repeating them.
    """
    limits = limits or ImageLimits()
    name = os.fsdecode(path)
    if not os.path.exists(name):
        hint = " (URLs are not fetched: download the image and pass its bytes)" if "://" in name else ""
        raise ImageInputError(f"image file not found: {name!r}{hint}")
    if os.path.isdir(name):
        raise ImageInputError(f"{name!r} is a directory, not an image file")
    size = os.path.getsize(name)
    if size > limits.max_bytes:
        raise ImageInputError(
            f"image file {name!r} is {size:,} bytes, above the limit of {limits.max_bytes:,} bytes; "
            "pass limits=ImageLimits(max_bytes=...) to raise it"
        )
    try:
        with open(name, "rb") as file:
            return file.read()
    except OSError as error:
        raise ImageInputError(f"could not read image file {name!r}: {error}") from error


@contextmanager
def _bomb_guard() -> Iterator[None]:
    """Treat Pillow's decompression-bomb warning as an error, so oversized images never decode silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except Image.DecompressionBombWarning as warning:
            raise Image.DecompressionBombError(str(warning)) from warning


def _bomb_error(what: str, error: Exception) -> ImageInputError:
    return ImageInputError(
        f"{what} rejected as too large to decode safely: {error}. To accept it, raise both "
        "limits=ImageLimits(max_pixels=...) and Pillow's PIL.Image.MAX_IMAGE_PIXELS "
        f"(now {Image.MAX_IMAGE_PIXELS})"
    )


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any mode to RGB; wide grayscale is rescaled because PIL's own conversion clips it to 0-255."""
    if im.mode == "RGB":
        return im
    if im.mode in _WIDE_GRAY_MODES:
        wide = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
        return _gray_to_rgb((wide >> 8).astype(np.uint8))
    if im.mode == "F":
        return _gray_to_rgb(_float_gray_to_uint8(np.asarray(im)))
    return im.convert("RGB")


def _float_gray_to_uint8(values: np.ndarray) -> np.ndarray:
    """PIL float images: [0, 1] is scaled like numpy floats; other ranges clip to 0-255 as PIL itself does."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    return np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(gray)).convert("RGB")


# --- numpy arrays -----------------------------------------------------------------------------------------


def _from_array(array: np.ndarray, *, bgr: bool, limits: ImageLimits) -> Image.Image:
    """Pixels already in memory: validate layout and dtype, then hand PIL a contiguous uint8 copy."""
    array = _check_layout(array)
    _check_pixels((array.shape[1], array.shape[0]), limits, "array")
    pixels = _to_uint8(array)
    if pixels.ndim == 2:
        return _gray_to_rgb(pixels)
    rgb = pixels[..., 2::-1] if bgr else pixels[..., :3]
    return Image.fromarray(np.ascontiguousarray(rgb))


def _check_layout(array: np.ndarray) -> np.ndarray:
    """Return a 2-D (gray) or 3-D (H, W, 3|4) view, or explain what layout was expected."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        _check_dtype(array)
        return array
    raise ImageInputError(
        f"unsupported image array shape {array.shape} (dtype {array.dtype}); expected {_ACCEPTED_SHAPES}"
        f"{_layout_hint(array)}"
    )


def _layout_hint(array: np.ndarray) -> str:
    if array.ndim == 3 and array.shape[0] in (1, 3, 4):
        return "; this looks channel-first (C, H, W): pass np.transpose(a, (1, 2, 0))"
    if array.ndim == 4:
        return "; a 4-D array looks like a batch: pass a list of images (or use load_images)"
    return ""


def _check_dtype(array: np.ndarray) -> None:
    if array.dtype in (np.uint8, np.uint16) or array.dtype.kind == "f":
        return
    raise ImageInputError(
        f"unsupported image array dtype {array.dtype} (shape {array.shape}); expected {_ACCEPTED_DTYPES}"
    )


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    return _unit_float_to_uint8(array)


def _unit_float_to_uint8(array: np.ndarray) -> np.ndarray:
    """Float arrays must be in [0, 1]: guessing another range (0-255? depth?) would silently garble pixels."""
    finite = np.isfinite(array)
    if not finite.all():
        raise ImageInputError(
            f"float image array of shape {array.shape} contains NaN or infinite values; "
            f"expected {_ACCEPTED_DTYPES}"
        )
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise ImageInputError(
            f"float image array values must be within [0, 1], got min {low:g} and max {high:g}; "
            "divide by 255 or pass a uint8 array"
        )
    return np.rint(array.astype(np.float32) * 255.0).astype(np.uint8)


# --- raw pixels and depth (no decoding) -------------------------------------------------------------------

RAW_FORMATS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "mono8": 1}
"""Raw pixel layouts (the wire's ``PixelFormat`` names in lower case) -> bytes per pixel."""

DEPTH_ENCODINGS: dict[str, tuple[type[np.generic], float]] = {
    "uint16_mm": (np.uint16, 0.001),
    "float32_m": (np.float32, 1.0),
}
"""Depth layouts -> (value type, stored little-endian; metres per stored unit, the ``depth_scale``)."""


def array_from_raw(
    data: bytes | memoryview,
    width: int,
    height: int,
    stride: int,
    pixel_format: str,
    *,
    limits: ImageLimits | None = None,
) -> np.ndarray:
    """Uncompressed pixels -> an ``(H, W, 3)`` or ``(H, W)`` uint8 array, without decoding anything.

    A camera frame sent raw costs a view, not a JPEG decode. The result is a (read-only, for ``bytes``)
    view into ``data``; pass it on as ``load_image(array, bgr=(pixel_format == "bgr8"))``, which copies it.
    Sizes are checked before ``data`` is touched, so a claimed size never allocates.

    Args:
        data: The pixel bytes, row by row from the top.
        width, height: Pixels per row and rows, both > 0.
        stride: Bytes from one row start to the next; 0 means ``width * bytes per pixel``.
        pixel_format: One of :data:`RAW_FORMATS`.
        limits: Pixel limit; ``None`` means :class:`ImageLimits` defaults.

    Raises:
        ImageInputError: Zero or oversized dimensions, an unknown format, a stride shorter than a row, or
            fewer bytes than the layout needs.
    """
    _check_pixels((width, height), limits or ImageLimits(), "raw image")
    channels = _known(RAW_FORMATS, pixel_format, "raw pixel format")
    layout = f"{width}x{height} {pixel_format}"
    buffer, stride = _raw_buffer(data, width, height, stride, channels, layout, "raw data")
    if channels == 1:
        return np.ndarray((height, width), np.uint8, buffer, strides=(stride, 1))
    return np.ndarray((height, width, channels), np.uint8, buffer, strides=(stride, channels, 1))


def depth_from_raw(
    data: bytes | memoryview,
    width: int,
    height: int,
    stride: int,
    encoding: str,
    *,
    expected_size: tuple[int, int] | None = None,
    limits: ImageLimits | None = None,
) -> tuple[np.ndarray, float]:
    """Raw depth values -> a native-order ``(H, W)`` array and its ``depth_scale`` (metres per unit).

    The scale travels with the array because millimetres mistaken for metres is the classic depth bug.
    ``expected_size`` is the colour image's ``(width, height)``: depth is looked up at the colour pixel a
    model pointed at, so any other size would silently read the wrong place. The array is a writable copy.

    Raises:
        ImageInputError: As :func:`array_from_raw`, an unknown encoding, or a size other than
            ``expected_size``.
    """
    _check_pixels((width, height), limits or ImageLimits(), "depth image")
    if expected_size is not None and tuple(expected_size) != (width, height):
        color_width, color_height = expected_size
        raise ImageInputError(
            f"depth is {width}x{height} but the colour image is {color_width}x{color_height}: depth must be "
            "aligned to the colour image pixel for pixel"
        )
    value_type, depth_scale = _known(DEPTH_ENCODINGS, encoding, "depth encoding")
    wire = np.dtype(value_type).newbyteorder("<")
    layout = f"{width}x{height} {encoding}"
    buffer, stride = _raw_buffer(data, width, height, stride, wire.itemsize, layout, "depth data")
    view = np.ndarray((height, width), wire, buffer, strides=(stride, wire.itemsize))
    return view.astype(wire.newbyteorder("="), copy=True), depth_scale


_Entry = TypeVar("_Entry")


def _known(table: dict[str, _Entry], name: str, what: str) -> _Entry:
    """Look a layout name up, or list the names that exist."""
    if name not in table:
        raise ImageInputError(f"unknown {what} {name!r}; expected one of: {', '.join(table)}")
    return table[name]


def _raw_buffer(
    data: bytes | memoryview, width: int, height: int, stride: int, item_bytes: int, layout: str, what: str
) -> tuple[memoryview, int]:
    """A flat byte view of ``data`` and the effective stride, once the layout is known to fit in it."""
    row_bytes = width * item_bytes
    stride = stride or row_bytes
    if stride < row_bytes:
        raise ImageInputError(
            f"stride {stride} of {layout} is shorter than one row ({width} x {item_bytes} = {row_bytes} "
            f"bytes); stride 0 means {row_bytes}"
        )
    try:
        buffer = memoryview(data).cast("B")
    except TypeError as error:
        raise ImageInputError(
            f"{what} must be contiguous bytes (bytes, bytearray, memoryview), got {_type_name(data)}: {error}"
        ) from error
    needed = stride * (height - 1) + row_bytes
    if buffer.nbytes < needed:
        raise ImageInputError(
            f"{what} is {buffer.nbytes} bytes, expected at least {needed} for {layout} with stride {stride}"
        )
    return buffer, stride


# --- shared checks and messages ---------------------------------------------------------------------------


def _check_pixels(size: tuple[int, int], limits: ImageLimits, what: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageInputError(f"{what} has zero size ({width}x{height}); an image needs at least one pixel")
    if width * height > limits.max_pixels:
        raise ImageInputError(
            f"{what} is {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{limits.max_pixels:,}; downscale it or pass limits=ImageLimits(max_pixels=...) to raise it"
        )


def _type_name(value: object) -> str:
    if value is None:
        return "None"
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return f"an object of type {name}"


def _type_hint(value: object) -> str:
    if type(value).__module__.startswith("torch"):
        return " (for a torch tensor pass t.permute(1, 2, 0).cpu().numpy() for a (C, H, W) tensor)"
    if isinstance(value, list | tuple):
        return " (for several images use load_images)"
    return ""
