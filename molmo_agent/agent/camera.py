"""The robot side of the loop: frames from a camera, a video or a folder, and 3-D targets from Molmo's points.

Frames are OpenCV BGR arrays (what cameras and ``cv2`` give) with an optional aligned depth image. A
:class:`RobotPointer` asks the model where a query is, then looks each point up in the depth image and
deprojects it (``geometry.point_to_3d``) into the camera's optical frame and, given the extrinsic, the robot
base frame. OpenCV is imported when a source is opened, so importing this module stays light.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MolmoAgentError
from ..geometry import CameraIntrinsics, RigidTransform, point_to_3d
from ..model import MolmoModel
from ..points import Point

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Colour frames a :class:`FolderSource` reads; depth images must be 16-bit PNGs."""


class FrameSourceError(MolmoAgentError, ConnectionError):
    """A camera, video, stream or image folder cannot be opened or read; the message says what to check."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One frame: ``image`` in BGR order (H, W, 3) uint8, ``depth`` (H, W) aligned to it in stored units.

    ``timestamp`` is seconds: the position in a video file, else the wall-clock time it was read.
    """

    image: np.ndarray
    index: int
    timestamp: float
    depth: np.ndarray | None = None


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FrameSourceError(
            "reading cameras, videos and image folders needs OpenCV: pip install opencv-python-headless"
        ) from exc
    return cv2


class FrameSource:
    """Base of frame sources: a context manager (open/close) and an iterable of :class:`Frame`.

    Iterating an unopened source opens it; frames are read lazily, one per iteration step.
    """

    def __init__(self) -> None:
        self.is_open = False

    def open(self) -> FrameSource:
        """Connect to the source now, so a wrong path or busy camera fails before any work starts.

        Raises:
            FrameSourceError: the source cannot be opened (the message says why and what to check).
        """
        if not self.is_open:
            self._open()
            self.is_open = True
        return self

    def close(self) -> None:
        """Release the device or file; safe to call twice."""
        if self.is_open:
            self._close()
            self.is_open = False

    def __enter__(self) -> FrameSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        return self._frames()

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError


class VideoSource(FrameSource):
    """Frames through ``cv2.VideoCapture``: a device index (``0`` or ``"0"``), a video file, a stream URL."""

    def __init__(self, source: int | str | os.PathLike) -> None:
        super().__init__()
        if isinstance(source, str) and source.strip().isdigit():
            source = int(source)
        self.source: int | str = source if isinstance(source, int) else os.fspath(source)
        self.capture: Any = None

    @property
    def is_file(self) -> bool:
        return isinstance(self.source, str) and "://" not in self.source

    def _open(self) -> None:
        if self.is_file and not Path(self.source).is_file():
            raise FrameSourceError(
                f"cannot open video {self.source!r}: no such file (give a camera index, a video file or a "
                "stream URL such as rtsp://host/stream)"
            )
        cv2 = _import_cv2()
        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            raise FrameSourceError(self._cannot_open_message())
        self.capture = capture

    def _cannot_open_message(self) -> str:
        if isinstance(self.source, int):
            return (
                f"cannot open camera {self.source}: no such device, no permission, or another program is "
                "using it (on Linux check `ls /dev/video*` and that you are in the `video` group)"
            )
        if self.is_file:
            return (
                f"cannot open video {self.source!r}: OpenCV cannot decode it; convert it (e.g. "
                "`ffmpeg -i in -c:v libx264 out.mp4`) or install an OpenCV build with the codec"
            )
        return f"cannot open stream {self.source!r}: check the URL, the network and any credentials"

    def _close(self) -> None:
        self.capture.release()
        self.capture = None

    def _frames(self) -> Iterator[Frame]:
        cv2 = _import_cv2()
        index = 0
        while self.capture is not None:
            ok, image = self.capture.read()
            if not ok or image is None:
                return
            timestamp = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if self.is_file else time.time()
            yield Frame(image, index, timestamp)
            index += 1


class FolderSource(FrameSource):
    """Image files of a folder in name order, with optional aligned depth from ``depth_folder``.

    A frame's depth is the file of the same name in ``depth_folder`` (or the same stem with ``.png``, for
    JPEG colour frames): a 16-bit single-channel PNG, usually millimetres (``depth_scale=0.001``).
    """

    def __init__(self, folder: str | os.PathLike, depth_folder: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.depth_folder = None if depth_folder is None else Path(depth_folder)
        self.files: list[Path] = []
        self.depth_files: list[Path | None] = []

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise FrameSourceError(f"cannot open image folder {str(self.folder)!r}: not a folder")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FrameSourceError(
                f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(self.folder)!r}; is it the right folder?"
            )
        self.files = files
        self.depth_files = [self._depth_file(p) for p in files]
        if self.depth_folder is not None:
            missing = [p.name for p, d in zip(files, self.depth_files, strict=True) if d is None]
            if missing:
                shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                raise FrameSourceError(
                    f"no depth image in {str(self.depth_folder)!r} for {shown} (expected the same file name, "
                    "or the same name with .png)"
                )

    def _depth_file(self, image_path: Path) -> Path | None:
        if self.depth_folder is None:
            return None
        for candidate in (self.depth_folder / image_path.name, self.depth_folder / f"{image_path.stem}.png"):
            if candidate.is_file():
                return candidate
        return None

    def _close(self) -> None:
        self.files, self.depth_files = [], []

    def _frames(self) -> Iterator[Frame]:
        cv2 = _import_cv2()
        for index, (path, depth_path) in enumerate(zip(self.files, self.depth_files, strict=True)):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise FrameSourceError(f"cannot decode image {str(path)!r}; is the file complete?")
            depth = None if depth_path is None else read_depth_png(depth_path)
            if depth is not None and depth.shape != image.shape[:2]:
                raise FrameSourceError(
                    f"depth {depth_path.name} is {depth.shape[1]}x{depth.shape[0]} but image {path.name} is "
                    f"{image.shape[1]}x{image.shape[0]}; align depth to colour at the same resolution"
                )
            yield Frame(image, index, time.time(), depth)


def read_depth_png(path: str | os.PathLike) -> np.ndarray:
    """A 16-bit single-channel depth PNG as a (H, W) uint16 array.

    Raises:
        FrameSourceError: the file is not a 16-bit single-channel image (e.g. a colourised depth preview).
    """
    cv2 = _import_cv2()
    depth = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
        found = "undecodable" if depth is None else f"{depth.dtype} with shape {depth.shape}"
        raise FrameSourceError(
            f"depth image {os.fspath(path)!r} must be a 16-bit single-channel PNG, got {found} (a colourised "
            "preview is not depth)"
        )
    return depth


@dataclass(frozen=True, eq=False)
class Target:
    """Where the model pointed: pixels, and metres in the camera and robot base frames when known.

    ``camera_xyz`` is ``None`` without depth or on a depth hole; ``base_xyz`` also without an extrinsic.
    """

    point: Point
    camera_xyz: np.ndarray | None
    base_xyz: np.ndarray | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the point's dict plus the 3-D positions as lists (or ``None``)."""
        return {
            "point": self.point.to_dict(),
            "camera_xyz": None if self.camera_xyz is None else self.camera_xyz.tolist(),
            "base_xyz": None if self.base_xyz is None else self.base_xyz.tolist(),
        }


class RobotPointer:
    """Turns "where is the red mug?" into 3-D targets a robot can move to.

    Args:
        model: Any pointing-capable Molmo.
        intrinsics: The colour camera's pinhole model, at the resolution of the frames passed in.
        camera_to_base: The extrinsic mapping camera optical frame to robot base; ``None``: camera frame only.
        depth_scale: Metres per stored depth unit (0.001 for 16-bit millimetres, 1.0 for float metres).
        window: Side of the square whose median depth is used (robust to holes and edge pixels).
    """

    def __init__(
        self,
        model: MolmoModel,
        intrinsics: CameraIntrinsics,
        camera_to_base: RigidTransform | None = None,
        *,
        depth_scale: float = 0.001,
        window: int = 5,
    ) -> None:
        if depth_scale <= 0 or window < 1:
            raise ValueError(f"depth_scale must be > 0 and window >= 1, got {depth_scale!r} and {window!r}")
        self.model = model
        self.intrinsics = intrinsics
        self.camera_to_base = camera_to_base
        self.depth_scale = depth_scale
        self.window = window

    def locate(
        self,
        frame_bgr: np.ndarray | Frame,
        query: str,
        depth: np.ndarray | None = None,
        *,
        all_occurrences: bool = False,
    ) -> list[Target]:
        """Every point the model gives for ``query``, with its 3-D position where depth allows.

        A :class:`Frame` may be passed instead of an array; its depth is used unless ``depth`` is given.

        Raises:
            ValueError: ``depth`` is not the frame's height and width (not aligned to colour).
        """
        if isinstance(frame_bgr, Frame):
            depth = frame_bgr.depth if depth is None else depth
            frame_bgr = frame_bgr.image
        image = np.asarray(frame_bgr)
        if depth is not None and np.asarray(depth).shape[:2] != image.shape[:2]:
            raise ValueError(
                f"depth has shape {np.asarray(depth).shape} but the frame is {image.shape[:2]} (H, W); align "
                "depth to the colour image at the same resolution"
            )
        points = self.model.point(image, query, all_occurrences=all_occurrences, bgr=True)
        return [self._target(point, depth) for point in points]

    def _target(self, point: Point, depth: np.ndarray | None) -> Target:
        if depth is None:
            return Target(point, None, None)
        camera_xyz = point_to_3d(
            point, depth, self.intrinsics, depth_scale=self.depth_scale, window=self.window
        )
        if camera_xyz is None:
            logger.debug("no valid depth around (%.1f, %.1f)", point.x, point.y)
            return Target(point, None, None)
        base_xyz = None if self.camera_to_base is None else self.camera_to_base.apply(camera_xyz)
        return Target(point, camera_xyz, base_xyz)
