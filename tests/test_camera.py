"""Frame sources over real files (OpenCV writes them), and 3-D targets from a scripted model's point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from molmo_agent.agent.camera import (
    FolderSource,
    Frame,
    FrameSourceError,
    RobotPointer,
    Target,
    VideoSource,
)
from molmo_agent.geometry import CameraIntrinsics, RigidTransform

cv2 = pytest.importorskip("cv2")

WIDTH, HEIGHT = 640, 480
INTRINSICS = CameraIntrinsics(fx=500.0, fy=510.0, cx=320.0, cy=240.0)
DEPTH_MM = 1250
# The camera looks along the base's x axis: base x = camera z, base y = -camera x, base z = -camera y.
CAMERA_TO_BASE = RigidTransform.from_rotation_translation(
    np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), [0.1, 0.2, 0.3]
)
RED_BGR = (0, 0, 255)
ANSWER = '<points coords="1 1 250 500">mug</points>'  # x = 250/1000 * 640 = 160, y = 500/1000 * 480 = 240


def _write_video(path: Path, count: int, size: tuple[int, int] = (64, 48), fps: float = 10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(count):
        writer.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    writer.release()


def test_video_file_round_trip(tmp_path) -> None:
    path = tmp_path / "clip.avi"
    _write_video(path, 7)
    with VideoSource(path) as source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(7))
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.depth is None for f in frames)
    assert [round(f.timestamp, 3) for f in frames] == [round(0.1 * i, 3) for i in range(7)]
    assert abs(int(frames[3].image.mean()) - 60) <= 3  # the frames come back in order (MJPG is lossy)
    assert not source.is_open


def test_iterating_opens_the_source(tmp_path) -> None:
    path = tmp_path / "clip.avi"
    _write_video(path, 3)
    source = VideoSource(str(path))
    assert len(list(source)) == 3
    source.close()
    source.close()  # twice is fine


def test_missing_video_file_is_a_typed_error(tmp_path) -> None:
    with pytest.raises(FrameSourceError, match="no such file") as info, VideoSource(tmp_path / "none.mp4"):
        pass
    assert isinstance(info.value, ConnectionError)


def test_undecodable_video_file(tmp_path) -> None:
    path = tmp_path / "notes.avi"
    path.write_text("not a video")
    with pytest.raises(FrameSourceError, match="cannot decode"):
        VideoSource(path).open()


def test_missing_camera_is_a_typed_error() -> None:
    source = VideoSource("97")
    assert source.source == 97
    with pytest.raises(ConnectionError, match="cannot open camera 97"):
        source.open()


def _write_folder(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    colour, depth = tmp_path / "colour", tmp_path / "depth"
    colour.mkdir()
    depth.mkdir()
    for i, name in enumerate(names):
        assert cv2.imwrite(str(colour / name), np.full((30, 40, 3), 40 * i, np.uint8))
        assert cv2.imwrite(str(depth / f"{Path(name).stem}.png"), np.full((30, 40), 1000 + i, np.uint16))
    return colour, depth


def test_folder_source_with_depth(tmp_path) -> None:
    colour, depth = _write_folder(tmp_path, ["b.png", "a.png", "c.jpg"])
    (colour / "readme.txt").write_text("ignored")
    with FolderSource(colour, depth) as source:
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2]
    assert [int(f.image[0, 0, 0]) for f in frames[:2]] == [40, 0]  # sorted by name: a.png, b.png
    assert all(f.image.shape == (30, 40, 3) for f in frames)
    assert all(
        f.depth is not None and f.depth.dtype == np.uint16 and f.depth.shape == (30, 40) for f in frames
    )
    assert [int(f.depth[5, 5]) for f in frames] == [1001, 1000, 1002]  # c.jpg's depth is c.png


def test_folder_source_without_depth(tmp_path) -> None:
    colour, _ = _write_folder(tmp_path, ["a.png"])
    assert [f.depth for f in FolderSource(colour)] == [None]


def test_folder_source_errors(tmp_path) -> None:
    colour, depth = _write_folder(tmp_path, ["a.png", "b.png"])
    (depth / "b.png").unlink()
    with pytest.raises(FrameSourceError, match=r"no depth image .* for b\.png"):
        FolderSource(colour, depth).open()
    with pytest.raises(FrameSourceError, match="not a folder"):
        FolderSource(tmp_path / "missing").open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameSourceError, match="no images"):
        FolderSource(tmp_path / "empty").open()
    assert cv2.imwrite(str(depth / "b.png"), np.zeros((30, 40, 3), np.uint8))  # a colour preview
    with pytest.raises(FrameSourceError, match="16-bit single-channel"):
        list(FolderSource(colour, depth))


# -- RobotPointer -------------------------------------------------------------------------------------------


@pytest.fixture
def pointer_model(scripted):
    """Answers the point only when the model sees red at the frame's centre: proves BGR was honoured."""

    def answer(request) -> str:
        return ANSWER if request.images[0].getpixel((WIDTH // 2, HEIGHT // 2)) == (255, 0, 0) else "none"

    scripted.backend.script = answer
    return scripted


def _frame_and_depth() -> tuple[np.ndarray, np.ndarray]:
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[:] = RED_BGR
    depth = np.full((HEIGHT, WIDTH), DEPTH_MM, np.uint16)
    depth[240, 160] = 0  # a hole right at the point: the window's median ignores it
    depth[238, 158] = 9000  # a flying pixel: outvoted too
    return frame, depth


def test_locate_in_camera_and_base_frames(pointer_model) -> None:
    frame, depth = _frame_and_depth()
    pointer = RobotPointer(pointer_model, INTRINSICS, CAMERA_TO_BASE)
    [target] = pointer.locate(frame, "the mug", depth)
    assert isinstance(target, Target)
    assert (target.point.x, target.point.y) == pytest.approx((160.0, 240.0))
    # X = (160 - 320) / 500 * 1.25 = -0.4, Y = (240 - 240) / 510 * 1.25 = 0, Z = 1.25
    np.testing.assert_allclose(target.camera_xyz, [-0.4, 0.0, 1.25], atol=1e-9)
    # base = R @ (-0.4, 0, 1.25) + (0.1, 0.2, 0.3) = (1.25, 0.4, 0) + (0.1, 0.2, 0.3)
    np.testing.assert_allclose(target.base_xyz, [1.35, 0.6, 0.3], atol=1e-9)
    assert target.to_dict()["base_xyz"] == pytest.approx([1.35, 0.6, 0.3])


def test_locate_off_centre_row_uses_fy(pointer_model) -> None:
    frame, depth = _frame_and_depth()
    pointer_model.backend.script = lambda request: '<points coords="1 1 250 750">mug</points>'  # v = 360
    [target] = RobotPointer(pointer_model, INTRINSICS).locate(frame, "mug", depth)
    np.testing.assert_allclose(target.camera_xyz, [-0.4, (360 - 240) / 510 * 1.25, 1.25], atol=1e-9)
    assert target.base_xyz is None  # no extrinsic given


def test_locate_takes_a_frame_and_reports_holes(pointer_model) -> None:
    frame, depth = _frame_and_depth()
    pointer = RobotPointer(pointer_model, INTRINSICS, CAMERA_TO_BASE)
    [target] = pointer.locate(Frame(frame, 0, 0.0, depth), "mug")
    np.testing.assert_allclose(target.camera_xyz, [-0.4, 0.0, 1.25], atol=1e-9)
    depth[230:250, 150:170] = 0  # the whole window is a hole
    [hole] = pointer.locate(frame, "mug", depth)
    assert hole.camera_xyz is None and hole.base_xyz is None and hole.point.x == pytest.approx(160.0)
    [flat] = pointer.locate(frame, "mug")  # no depth at all: pixels only
    assert flat.camera_xyz is None and flat.point.y == pytest.approx(240.0)


def test_locate_reads_bgr_and_checks_depth_alignment(pointer_model) -> None:
    frame, depth = _frame_and_depth()
    pointer = RobotPointer(pointer_model, INTRINSICS)
    assert pointer.locate(frame[..., ::-1].copy(), "mug", depth) == []  # RGB red read as BGR is blue
    with pytest.raises(ValueError, match="align"):
        pointer.locate(frame, "mug", depth[::2, ::2])
    with pytest.raises(ValueError):
        RobotPointer(pointer_model, INTRINSICS, depth_scale=0)
