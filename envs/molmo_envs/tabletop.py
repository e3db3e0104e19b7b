"""``molmo_agent/TabletopPointing-v0``: point to one object in a robot camera's view of a table."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from molmo_agent.actions import Action
from molmo_agent.errors import ActionValidationError
from molmo_agent.geometry import CameraIntrinsics, RigidTransform, point_to_3d
from molmo_agent.points import Point

from . import spaces as molmo_spaces
from .palette import COLORS as PALETTE
from .tabletop_render import SHAPES, Rendering, Scene, SceneObject, distance_to_object, render

COLOURS: dict[str, tuple[int, int, int]] = {
    name: PALETTE[name] for name in ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
}
"""Colour names the instruction uses and their RGB, in the order seeds draw them (none close to the
wooden table)."""
MAX_DEPTH_M = 50.0
"""Upper bound of the depth space (far floor pixels at grazing angles stay well below it)."""
DEPTH_WINDOW = 5
"""Window of ``geometry.robust_depth`` used to score a point (the oracle pixel keeps it on the object)."""
_MIN_INTERIOR_PX = 3.0
_MIN_VISIBLE_PX = 60
_MAX_SCENE_TRIES = 50


# --- scene sampling: pure functions of a Generator --------------------------------------------------------


def look_down_pose(position: np.ndarray, yaw: float, pitch: float) -> RigidTransform:
    """Camera-to-world pose of a camera at ``position`` whose optical axis heads along ``yaw`` (about world
    z) and dips ``pitch`` below the horizon (``pi/2`` = straight down, image up towards ``yaw``)."""
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch)])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    down = np.cross(forward, right)
    return RigidTransform.from_rotation_translation(np.stack([right, down, forward], axis=1), position)


def sample_camera(rng: np.random.Generator, size: tuple[int, int]) -> tuple[CameraIntrinsics, RigidTransform]:
    """A camera 0.55-0.9 m from a point near the table centre, 40-80 degrees below the horizon."""
    width, height = size
    hfov = math.radians(rng.uniform(55.0, 70.0))
    focal = width / 2 / math.tan(hfov / 2)
    intrinsics = CameraIntrinsics(focal, focal, width / 2, height / 2)
    yaw, pitch = rng.uniform(-math.pi, math.pi), math.radians(rng.uniform(40.0, 80.0))
    look_at = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), 0.0])
    pose = look_down_pose(look_at, yaw, pitch)
    return intrinsics, look_down_pose(look_at - rng.uniform(0.55, 0.9) * pose.rotation[:, 2], yaw, pitch)


def _half_extents(rng: np.random.Generator, shape: str) -> tuple[float, float, float]:
    if shape == "ball":
        r = rng.uniform(0.03, 0.05)
        return (r, r, r)
    if shape == "cube":
        h = rng.uniform(0.025, 0.04)
        return (h, h, h)
    if shape == "cylinder":
        return (rng.uniform(0.025, 0.04), 0.0, rng.uniform(0.03, 0.07))
    return (rng.uniform(0.045, 0.07), rng.uniform(0.02, 0.035), rng.uniform(0.015, 0.035))


def _table_point(intrinsics: CameraIntrinsics, pose: RigidTransform, u: float, v: float) -> np.ndarray | None:
    ray = pose.rotation @ np.array(
        [(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy, 1]
    )
    if ray[2] >= -1e-6:
        return None
    return pose.translation - pose.translation[2] / ray[2] * ray


def sample_objects(
    rng: np.random.Generator,
    count: int,
    size: tuple[int, int],
    intrinsics: CameraIntrinsics,
    pose: RigidTransform,
    table_half: tuple[float, float],
) -> list[SceneObject]:
    """Up to ``count`` non-overlapping objects (distinct colour+shape) on the table, inside the view."""
    width, height = size
    objects: list[SceneObject] = []
    for _ in range(count * 20):
        if len(objects) == count:
            break
        shape, colour = SHAPES[rng.integers(len(SHAPES))], list(COLOURS)[rng.integers(len(COLOURS))]
        hx, hy, hz = _half_extents(rng, shape)
        hy = hx if shape == "cylinder" else hy
        yaw = float(rng.uniform(-math.pi, math.pi)) if shape in ("cube", "box") else 0.0
        spot = _table_point(
            intrinsics, pose, rng.uniform(0.15, 0.85) * width, rng.uniform(0.2, 0.85) * height
        )
        if spot is None or any(o.shape == shape and o.colour == colour for o in objects):
            continue
        centre = (float(spot[0]), float(spot[1]), float(hz))
        obj = SceneObject(shape, colour, COLOURS[colour], centre, (float(hx), float(hy), float(hz)), yaw)
        inside = (
            abs(spot[0]) + obj.footprint_radius < table_half[0]
            and abs(spot[1]) + obj.footprint_radius < table_half[1]
        )
        clear = all(
            math.dist(obj.centre[:2], o.centre[:2]) > obj.footprint_radius + o.footprint_radius + 0.02
            for o in objects
        )
        if inside and clear:
            objects.append(obj)
    return objects


def visible_centre(object_ids: np.ndarray, index: int) -> tuple[float, float] | None:
    """The pixel of the object's visible region nearest its centroid whose depth window stays on the object
    (at least 3 px from any other surface), or ``None`` when too little of it is visible."""
    mask = (object_ids == index).astype(np.uint8)
    if int(mask.sum()) < _MIN_VISIBLE_PX:
        return None
    inner = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    rows, cols = np.nonzero(inner >= _MIN_INTERIOR_PX)
    if rows.size == 0:
        return None
    all_rows, all_cols = np.nonzero(mask)
    cy, cx = all_rows.mean(), all_cols.mean()
    best = int(np.argmin((rows - cy) ** 2 + (cols - cx) ** 2))
    return float(cols[best]), float(rows[best])


def pixel_box(object_ids: np.ndarray, index: int) -> np.ndarray:
    """``[left, top, right, bottom]`` (inclusive pixel indices) of the object's visible pixels."""
    rows, cols = np.nonzero(object_ids == index)
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.int64)


def sample_scene(
    rng: np.random.Generator, size: tuple[int, int], min_objects: int, max_objects: int
) -> tuple[Scene, Rendering]:
    """A random scene whose target is clearly visible, rendered (retries until one is)."""
    for _ in range(_MAX_SCENE_TRIES):
        intrinsics, pose = sample_camera(rng, size)
        table_half = (0.9, 0.6)
        count = int(rng.integers(min_objects, max_objects + 1))
        objects = sample_objects(rng, count, size, intrinsics, pose, table_half)
        table_rgb = tuple(int(c) for c in rng.integers((150, 105, 65), (200, 150, 110)))
        light = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
        light_dir = tuple(float(c) for c in light / np.linalg.norm(light))
        if len(objects) < min_objects:
            continue
        scene = Scene(size, intrinsics, pose, tuple(objects), 0, table_half, table_rgb, light_dir)
        rendering = render(scene)
        visible = [i for i in range(len(objects)) if visible_centre(rendering.object_ids, i) is not None]
        if visible:
            target = visible[int(rng.integers(len(visible)))]
            return Scene(
                size, intrinsics, pose, tuple(objects), target, table_half, table_rgb, light_dir
            ), rendering
    raise RuntimeError(f"no scene with a visible target after {_MAX_SCENE_TRIES} tries (image size {size})")


def _click_point(action: Any) -> tuple[float, float] | None:
    """The pixel of any accepted action form, or ``None`` for an action without one."""
    if isinstance(action, Point):
        return action.x, action.y
    if isinstance(action, (Action, dict)):
        try:
            return molmo_spaces.to_action(action).point
        except ActionValidationError:
            return None
    point = np.asarray(action, dtype=np.float64).reshape(-1)
    if point.shape != (2,):
        raise ValueError(f"a point action must be (x, y); got an array of shape {np.shape(action)}")
    return float(point[0]), float(point[1])


class TabletopPointingEnv(gym.Env):
    """Point to a named object in a robot camera's view of a table.

    ## Description
    A pinhole camera looks down at a table (0.55-0.9 m away, 40-80 degrees below the horizon, any heading)
    on which 1-5 coloured solids rest: balls, cubes, boxes and cylinders, each colour+shape pair unique in a
    scene. The frame is ray-cast procedurally (``molmo_envs.tabletop_render``) with an aligned depth image,
    so a predicted pixel can be lifted to 3-D with ``molmo_agent.geometry`` exactly as a robot would.

    ## Action Space
    ``molmo_envs.spaces.action_space((W, H))``, as every molmo env; only point actions (click, long press,
    double/right click, drag start) carry a point. ``step`` also accepts a ``molmo_agent.Action``, a
    ``molmo_agent.Point`` or an ``(x, y)`` array in pixels. Other action types score as a miss.

    ## Observation Space
    ``Dict`` with ``image`` (Box uint8 (H, W, 3), RGB), ``depth`` (Box float32 (H, W), metres along the
    optical axis, aligned pixel for pixel with ``image``; 0 = no return, so ``depth_scale=1.0``),
    ``intrinsics`` (Box float32 (4,) ``[fx, fy, cx, cy]``, no distortion), ``camera_to_world`` (Box float32
    (4, 4): optical frame (x right, y down, z forward) -> world frame (metres, z up, table top at z = 0)) and
    ``instruction`` (``UnicodeText``, e.g. ``"Point to the red cube."``).

    ## Rewards
    The point is lifted with ``geometry.point_to_3d`` (5x5 median depth) and the extrinsic; ``error_m`` is
    its distance to the target solid (0 on or inside it). Reward is 1.0 for a hit (``error_m <= 0.02``),
    else ``max(0, 1 - error_m / 0.2)``; 0 for a point outside the image, on a depth hole or no point.

    ## Starting State
    Camera pose, intrinsics (55-70 degree horizontal field of view), lighting, table colour, objects and the
    target are drawn from ``self.np_random``; the target always shows a clear interior. ``options={"scene":
    Scene}`` renders a given scene instead (hand-built tests).

    ## Episode End
    Terminated after the single point; never truncated by the env (``max_episode_steps=1`` at registration).

    ## Information
    ``reset``: ``label`` (e.g. ``"red cube"``), ``target_xyz`` (world centre of the target),
    ``target_box`` (``[left, top, right, bottom]`` visible pixels), ``oracle_pixel``, ``num_objects``.
    ``step`` adds ``pixel`` (the point, or ``[-1, -1]``), ``predicted_xyz`` (world, zeros when none),
    ``error_m`` (``inf`` when none), ``centre_error_m`` (to ``target_xyz``) and ``hit``.

    ## Arguments
    ``render_mode`` (``None`` or ``"rgb_array"``: the frame with the last point drawn), ``image_size``
    (``(width, height)``, default ``(320, 240)``), ``min_objects``/``max_objects`` (1 and 5),
    ``hit_margin_m`` (0.02) and ``falloff_m`` (0.2)::

        import gymnasium as gym
        env = gym.make("molmo_envs:molmo_agent/TabletopPointing-v0", image_size=(640, 480))
        obs, info = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_point())
        assert info["hit"] and reward == 1.0
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(
        self,
        render_mode: str | None = None,
        image_size: tuple[int, int] = (320, 240),
        min_objects: int = 1,
        max_objects: int = 5,
        hit_margin_m: float = 0.02,
        falloff_m: float = 0.2,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        if not 1 <= min_objects <= max_objects <= len(SHAPES) * len(COLOURS):
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
        if hit_margin_m < 0 or falloff_m <= 0:
            raise ValueError(f"need hit_margin_m >= 0 and falloff_m > 0, got {hit_margin_m}, {falloff_m}")
        width, height = int(image_size[0]), int(image_size[1])
        if width < 32 or height < 32:
            raise ValueError(f"image_size must be at least 32x32 (width, height), got {image_size!r}")
        self.render_mode = render_mode
        self.image_size = (width, height)
        self.min_objects, self.max_objects = min_objects, max_objects
        self.hit_margin_m, self.falloff_m = float(hit_margin_m), float(falloff_m)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (height, width, 3), dtype=np.uint8),
                "depth": spaces.Box(0.0, MAX_DEPTH_M, (height, width), dtype=np.float32),
                "intrinsics": spaces.Box(0.0, 1e5, (4,), dtype=np.float32),
                "camera_to_world": spaces.Box(-100.0, 100.0, (4, 4), dtype=np.float32),
                "instruction": molmo_spaces.UnicodeText(),
            }
        )
        self.action_space = molmo_spaces.action_space(self.image_size)
        self._scene: Scene | None = None
        self._rendering: Rendering | None = None
        self._oracle: tuple[float, float] | None = None
        self._last_pixel: tuple[float, float] | None = None

    # --- gymnasium API ------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        scene = (options or {}).get("scene")
        if scene is None:
            scene, rendering = sample_scene(
                self.np_random, self.image_size, self.min_objects, self.max_objects
            )
        else:
            if not isinstance(scene, Scene) or tuple(scene.size) != self.image_size:
                raise ValueError(
                    f"options['scene'] must be a tabletop_render.Scene of size {self.image_size}"
                )
            rendering = render(scene)
        oracle = visible_centre(rendering.object_ids, scene.target)
        if oracle is None:
            raise ValueError(f"the target {scene.objects[scene.target].label!r} is not clearly visible")
        self._scene, self._rendering, self._oracle, self._last_pixel = scene, rendering, oracle, None
        return self._observation(), self._reset_info()

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        scene = self._require_scene()
        pixel = _click_point(action)
        self._last_pixel = pixel
        predicted = self._lift(pixel)
        target = scene.objects[scene.target]
        if predicted is None:
            error, centre_error = math.inf, math.inf
        else:
            error = distance_to_object(predicted, target)
            centre_error = float(np.linalg.norm(predicted - np.asarray(target.centre)))
        hit = error <= self.hit_margin_m
        reward = 1.0 if hit else max(0.0, 1.0 - error / self.falloff_m)
        info = self._reset_info() | {
            "pixel": np.array(pixel if pixel is not None else (-1.0, -1.0), dtype=np.float64),
            "predicted_xyz": predicted if predicted is not None else np.zeros(3),
            "error_m": float(error),
            "centre_error_m": float(centre_error),
            "hit": bool(hit),
        }
        return self._observation(), float(reward), True, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._rendering is None:
            return None
        frame = self._rendering.rgb.copy()
        if self._last_pixel is not None:
            centre = (round(self._last_pixel[0]), round(self._last_pixel[1]))
            cv2.drawMarker(frame, centre, (255, 0, 255), cv2.MARKER_CROSS, 12, 2)
        return frame

    # --- ground truth for training and tests ----------------------------------------------------------------

    @property
    def scene(self) -> Scene:
        """The current scene (ground truth: camera, objects, target)."""
        return self._require_scene()

    @property
    def instruction(self) -> str:
        """What to point at, as a person would ask: ``"Point to the red cube."``."""
        return f"Point to the {self._target().label}."

    def oracle_point(self) -> Point:
        """The target's visible centre: the pixel nearest the centroid of its visible region whose 5x5 depth
        window lies on the object, so ``step(oracle_point())`` is always a hit."""
        self._require_scene()
        x, y = self._oracle
        width, height = self.image_size
        return Point(x=x, y=y, x_norm=x / width, y_norm=y / height, label=self._target().label)

    # --- helpers -------------------------------------------------------------------------------------------

    def _require_scene(self) -> Scene:
        if self._scene is None:
            raise RuntimeError("call reset() before step() or before asking for the target")
        return self._scene

    def _target(self) -> SceneObject:
        scene = self._require_scene()
        return scene.objects[scene.target]

    def _lift(self, pixel: tuple[float, float] | None) -> np.ndarray | None:
        """Pixel -> world point with the env's own depth, intrinsics and extrinsic (``None``: no point)."""
        width, height = self.image_size
        if pixel is None or not (0.0 <= pixel[0] <= width and 0.0 <= pixel[1] <= height):
            return None
        u, v = min(pixel[0], width - 1.0), min(pixel[1], height - 1.0)
        camera_point = point_to_3d(
            (u, v), self._rendering.depth, self._scene.intrinsics, depth_scale=1.0, window=DEPTH_WINDOW
        )
        return None if camera_point is None else self._scene.camera_to_world.apply(camera_point)

    def _observation(self) -> dict[str, Any]:
        scene, rendering = self._scene, self._rendering
        k = scene.intrinsics
        return {
            "image": rendering.rgb.copy(),
            "depth": rendering.depth.copy(),
            "intrinsics": np.array([k.fx, k.fy, k.cx, k.cy], dtype=np.float32),
            "camera_to_world": scene.camera_to_world.matrix.astype(np.float32),
            "instruction": self.instruction,
        }

    def _reset_info(self) -> dict[str, Any]:
        scene = self._require_scene()
        return {
            "label": self._target().label,
            "target_xyz": np.asarray(self._target().centre, dtype=np.float64),
            "target_box": pixel_box(self._rendering.object_ids, scene.target),
            "oracle_pixel": np.asarray(self._oracle, dtype=np.float64),
            "num_objects": len(scene.objects),
        }
