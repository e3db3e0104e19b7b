"""Stream camera frames to a molmo-agent server and print where the target is, in pixels and in metres.

    python examples/robot_client.py TARGET "the red mug" --source 0|video.mp4|folder/ \
        [--depth-folder DIR --fx FX --fy FY --cx CX --cy CY] [--token-env VAR] [--max-frames N]

``--source`` is a camera index, a video file, or a folder of images (sorted by name). With
``--depth-folder`` (a folder source only), each frame's aligned 16-bit depth PNG in millimetres, with the
same file name, is sent along with the camera intrinsics, and the server answers 3-D points in the camera's
optical frame (x right, y down, z forward). Frames go raw in OpenCV's BGR order (no re-encoding); when the
model is slower than the camera, the server answers the newest frame and reports how many it skipped.

Start a server first, e.g. ``molmo-agent serve --model allenai/Molmo2-4B``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from molmo_agent.client import Client, ClientError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def open_source(source: str, depth_folder: Path | None) -> Iterator[dict]:
    """Check the source now (a clear message before any streaming), then read frames lazily."""
    if Path(source).is_dir():
        files = sorted(p for p in Path(source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            sys.exit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}")
        missing = [
            p.name for p in files if depth_folder is not None and not (depth_folder / p.name).is_file()
        ]
        if missing:
            sys.exit(f"no depth image in {depth_folder} for {', '.join(missing[:5])}")
        return folder_frames(files, depth_folder)
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        sys.exit(f"cannot open video source {source!r} (a camera index, a video file, or a folder of images)")
    return video_frames(capture)


def folder_frames(files: list[Path], depth_folder: Path | None) -> Iterator[dict]:
    for path in files:
        frame = {"image": cv2.imread(str(path), cv2.IMREAD_COLOR), "frame_id": path.name}
        if depth_folder is not None:
            frame["depth"] = read_depth(depth_folder / path.name)
        yield {**frame, "timestamp": time.time()}


def read_depth(path: Path) -> np.ndarray:
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel 16-bit depth PNG in millimetres")
    return depth


def video_frames(capture: cv2.VideoCapture) -> Iterator[dict]:
    try:
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield {"image": image, "frame_id": str(index), "timestamp": time.time()}
            index += 1
    finally:
        capture.release()


def limited(frames: Iterator[dict], max_frames: int | None) -> Iterator[dict]:
    for index, frame in enumerate(frames):
        if max_frames is not None and index >= max_frames:
            return
        yield frame


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", help="server host:port, e.g. 127.0.0.1:50051")
    parser.add_argument("query", help='what to point at, e.g. "the red mug"')
    parser.add_argument("--source", required=True, help="camera index, video file or folder of images")
    parser.add_argument("--depth-folder", type=Path, help="aligned uint16 depth PNGs (mm), same file names")
    for name in ("fx", "fy", "cx", "cy"):
        parser.add_argument(f"--{name}", type=float, help="colour camera intrinsics in pixels")
    parser.add_argument("--token-env", help="environment variable holding the server's bearer token")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args()

    intrinsics = None
    if args.depth_folder is not None:
        if not Path(args.source).is_dir():
            parser.error("--depth-folder needs --source to be a folder of images with the same file names")
        if None in (args.fx, args.fy, args.cx, args.cy):
            parser.error("--depth-folder needs the camera intrinsics --fx --fy --cx --cy")
        intrinsics = (args.fx, args.fy, args.cx, args.cy)
    token = os.environ.get(args.token_env) if args.token_env else None
    if args.token_env and not token:
        parser.error(f"${args.token_env} is empty or not set")

    frames = open_source(args.source, args.depth_folder)
    with Client(args.target, token=token) as client:
        try:
            replies = client.stream_point(
                limited(frames, args.max_frames), args.query, intrinsics=intrinsics, bgr=True
            )
            for reply in replies:
                print_reply(reply)
        except (ClientError, ValueError) as error:  # ValueError: an unreadable image or depth file
            sys.exit(str(error))
        except KeyboardInterrupt:
            pass


def print_reply(reply) -> None:
    timing = reply.timing
    print(
        f"frame {reply.frame_id}: {len(reply.points)} point(s), {reply.frames_dropped} dropped, "
        f"model {timing['model_ms']:.1f} ms, total {timing['total_ms']:.1f} ms"
    )
    for point, xyz, note in zip(reply.points, reply.camera_xyz, reply.depth_notes, strict=True):
        where = f"  pixel ({point.x:.1f}, {point.y:.1f})"
        if xyz is not None:
            where += f"  camera xyz ({xyz[0]:.4f}, {xyz[1]:.4f}, {xyz[2]:.4f}) m"
        elif note:
            where += f"  no 3-D: {note}"
        print(where)
    if not reply.points:
        print(f"  no points ({reply.reason or 'nothing found'})")


if __name__ == "__main__":
    main()
