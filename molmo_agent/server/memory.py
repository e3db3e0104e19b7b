"""Giving decoded-image memory back to the operating system after a large request.

Decoding eight 7000x7000 images took 1.8 GB that glibc kept after the request: Pillow allocates images in
blocks small enough for the heap arenas of the decode threads, and free() keeps freed arena memory for reuse
instead of returning it. ``malloc_trim`` returns it (measured: 2.5 GB -> 0.78 GB resident); it is called
after requests that decoded many pixels, off the event loop, at most one at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

logger = logging.getLogger(__name__)

TRIM_AFTER_PIXELS = 16_000_000
"""Requests that decoded at least this many pixels (48 MB of RGB) hand their memory back afterwards."""

_trimming = threading.Lock()


def _load_malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` elsewhere (musl, macOS: nothing to do)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_memory() -> bool:
    """Return freed heap memory to the OS; False when another thread is already doing it or no glibc."""
    if _MALLOC_TRIM is None or not _trimming.acquire(blocking=False):
        return False
    try:
        _MALLOC_TRIM(0)
        return True
    finally:
        _trimming.release()


def after_decoding(pixels: int) -> None:
    """Call after a request's images were decoded and their full-size buffers dropped."""
    if pixels >= TRIM_AFTER_PIXELS:
        release_memory()
