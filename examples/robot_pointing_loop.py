"""Point at a target in every camera frame and print where it is, in pixels and in metres (in-process model).

    python examples/robot_pointing_loop.py ["the red mug"] [--source 0|video.mp4|rtsp://...|folder/]
        [--depth-folder DIR --fx FX --fy FY --cx CX --cy CY] [--camera-to-base extrinsic.txt]
        [--depth-scale 0.001] [--model allenai/Molmo2-4B] [--max-frames N]

With no ``--source`` it builds a small demo folder (the bundled sample image and a flat depth of 1 m) and
uses the embedded default model, so it runs offline; its random weights rarely point at anything, so expect
"no points" until you pass a real checkpoint with ``--model``.

3-D positions need aligned depth (``--depth-folder``: 16-bit PNGs in millimetres with the colour frames'
names) and the colour camera's intrinsics; without ``--fx`` etc. a 60 degree horizontal field of view is
assumed. ``--camera-to-base`` is a 4x4 matrix (whitespace-separated text or ``.npy``) mapping the camera's
optical frame (x right, y down, z forward) to the robot base.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import molmo_agent as ma
from molmo_agent.agent.camera import FolderSource, Frame, FrameSourceError, RobotPointer, Target, VideoSource
from molmo_agent.cli import SAMPLE_IMAGE
from molmo_agent.geometry import CameraIntrinsics, RigidTransform

DEFAULT_FOV_DEGREES = 60.0


def make_demo_folder() -> tuple[Path, Path]:
    """The sample image as a one-frame 'recording' with a flat depth image 1 m away."""
    import cv2

    root = Path(tempfile.mkdtemp(prefix="molmo-robot-demo-"))
    colour, depth = root / "colour", root / "depth"
    colour.mkdir()
    depth.mkdir()
    image = cv2.imread(str(SAMPLE_IMAGE), cv2.IMREAD_COLOR)
    cv2.imwrite(str(colour / "frame_0000.png"), image)
    cv2.imwrite(str(depth / "frame_0000.png"), np.full(image.shape[:2], 1000, np.uint16))
    return colour, depth


def intrinsics_for(args: argparse.Namespace, frame: Frame) -> CameraIntrinsics:
    """The given intrinsics, or a guess from the frame size (fine for a demo, wrong for a real robot)."""
    height, width = frame.image.shape[:2]
    focal = width / (2 * math.tan(math.radians(DEFAULT_FOV_DEGREES) / 2))
    return CameraIntrinsics(
        fx=args.fx if args.fx is not None else focal,
        fy=args.fy if args.fy is not None else focal,
        cx=args.cx if args.cx is not None else width / 2,
        cy=args.cy if args.cy is not None else height / 2,
    )


def load_extrinsic(path: Path | None) -> RigidTransform | None:
    if path is None:
        return None
    matrix = np.load(path) if path.suffix == ".npy" else np.loadtxt(path)
    return RigidTransform.from_matrix(matrix, atol=1e-4)


def print_targets(frame: Frame, targets: list[Target], elapsed_ms: float) -> None:
    print(f"frame {frame.index} (t={frame.timestamp:.3f} s): {len(targets)} target(s) in {elapsed_ms:.0f} ms")
    for target in targets:
        line = f"  pixel ({target.point.x:.1f}, {target.point.y:.1f})"
        if target.camera_xyz is not None:
            line += "  camera ({:.3f}, {:.3f}, {:.3f}) m".format(*target.camera_xyz)
        elif frame.depth is not None:
            line += "  no valid depth there"
        if target.base_xyz is not None:
            line += "  base ({:.3f}, {:.3f}, {:.3f}) m".format(*target.base_xyz)
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("query", nargs="?", default="the red mug")
    parser.add_argument("--source", help="camera index, video file, stream URL or folder (default: a demo)")
    parser.add_argument("--depth-folder", type=Path, help="aligned 16-bit depth PNGs (folder sources)")
    for name in ("fx", "fy", "cx", "cy"):
        parser.add_argument(f"--{name}", type=float, help="colour camera intrinsics in pixels")
    parser.add_argument("--camera-to-base", type=Path, help="4x4 extrinsic, text or .npy")
    parser.add_argument("--depth-scale", type=float, default=0.001, help="metres per depth unit (0.001: mm)")
    parser.add_argument("--model", default=None, help="Hub id or folder (default: the embedded tiny model)")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args()

    source_name, depth_folder = args.source, args.depth_folder
    if source_name is None:
        colour, depth_folder = make_demo_folder()
        source_name = str(colour)
        print(f"demo folder: {colour} (depth {depth_folder})")
    if Path(source_name).is_dir():
        source = FolderSource(source_name, depth_folder)
    elif depth_folder is not None:
        parser.error("--depth-folder needs --source to be a folder of images")
    else:
        source = VideoSource(source_name)

    extrinsic = load_extrinsic(args.camera_to_base)
    pointer = None
    try:
        with source:  # opened before the model loads: a wrong path fails at once
            model = ma.load_model(args.model)
            for frame in source:
                if args.max_frames is not None and frame.index >= args.max_frames:
                    break
                if pointer is None:
                    intrinsics = intrinsics_for(args, frame)
                    pointer = RobotPointer(model, intrinsics, extrinsic, depth_scale=args.depth_scale)
                started = time.perf_counter()
                targets = pointer.locate(frame, args.query)
                print_targets(frame, targets, (time.perf_counter() - started) * 1000)
    except FrameSourceError as error:
        sys.exit(str(error))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
