"""Procedural ray-cast rendering of a tabletop scene for ``TabletopPointing-v0`` (numpy only).

World frame: metres, z up, the table top is the plane ``z = 0`` (a rectangle of :attr:`Scene.table_half`
around the origin) and a floor lies :data:`FLOOR_DROP` below it. The camera follows OpenCV (x right, y down,
z forward, see :mod:`molmo_agent.geometry`); every pixel column ``u``/row ``v`` is cast as the ray through
``((u - cx) / fx, (v - cy) / fy, 1)``, so the ray parameter *is* the depth along the optical axis and
``geometry.deproject(u, v, depth[v, u])`` returns exactly the surface point that was hit.

Objects are analytic solids resting on the table: spheres, boxes (yawed about z) and vertical cylinders,
all described by a centre and half extents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from molmo_agent.geometry import CameraIntrinsics, RigidTransform

SHAPES: tuple[str, ...] = ("ball", "cube", "box", "cylinder")
"""Shape names as the instruction says them; ``ball`` is a sphere, ``cube``/``box`` are boxes."""
FLOOR_DROP = 0.75
"""How far the floor lies below the table top (metres)."""
NO_OBJECT = -1
"""Value of :attr:`Rendering.object_ids` where no object is seen."""

_TABLE_ID, _FLOOR_ID, _SKY_ID = -2, -3, -4
_AMBIENT = 0.35
_SHADOW = 0.55
_SKY_RGB = np.array([200.0, 214.0, 228.0])
_FLOOR_RGB = np.array([92.0, 96.0, 104.0])
_EPS = 1e-9


@dataclass(frozen=True)
class SceneObject:
    """One solid on the table.

    Attributes:
        shape: One of :data:`SHAPES`.
        colour: Colour name used in the instruction (e.g. ``"red"``).
        rgb: Base colour, 0-255.
        centre: World ``(x, y, z)`` of the solid's centre (``z`` is the half height: it rests on the table).
        half_extents: ``(hx, hy, hz)``; a ball has ``(r, r, r)``, a cylinder ``(r, r, half height)``.
        yaw: Rotation about world z in radians (boxes only; others are symmetric).
    """

    shape: str
    colour: str
    rgb: tuple[int, int, int]
    centre: tuple[float, float, float]
    half_extents: tuple[float, float, float]
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {self.shape!r}")
        if min(self.half_extents) <= 0:
            raise ValueError(f"half extents must be positive, got {self.half_extents!r}")

    @property
    def label(self) -> str:
        """How the instruction names the object, e.g. ``"red cube"``."""
        return f"{self.colour} {self.shape}"

    @property
    def footprint_radius(self) -> float:
        """Radius of a circle on the table that holds the object's footprint (for placement)."""
        hx, hy, _ = self.half_extents
        return float(np.hypot(hx, hy)) if self.shape in ("cube", "box") else float(hx)


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one frame, and the ground truth to score a point against.

    Attributes:
        size: Image ``(width, height)``.
        intrinsics: Pinhole camera (no distortion).
        camera_to_world: The extrinsic: optical frame -> world (table) frame.
        objects: The solids on the table.
        target: Index into ``objects`` of the object to point to.
        table_half: Half size ``(x, y)`` of the table top in metres.
        table_rgb: Base colour of the table top.
        light: Unit direction towards the light (world frame).
    """

    size: tuple[int, int]
    intrinsics: CameraIntrinsics
    camera_to_world: RigidTransform
    objects: tuple[SceneObject, ...]
    target: int = 0
    table_half: tuple[float, float] = (0.9, 0.6)
    table_rgb: tuple[int, int, int] = (176, 134, 92)
    light: tuple[float, float, float] = (0.3, 0.2, 0.93)

    def __post_init__(self) -> None:
        if not self.objects:
            raise ValueError("a scene needs at least one object")
        if not 0 <= self.target < len(self.objects):
            raise ValueError(f"target {self.target} is not an index into {len(self.objects)} objects")


@dataclass(frozen=True)
class Rendering:
    """One rendered frame: RGB uint8 (H, W, 3), depth float32 metres (H, W; 0 = no return) and per-pixel
    object indices int16 (H, W; :data:`NO_OBJECT` where the table, floor or sky is seen)."""

    rgb: np.ndarray
    depth: np.ndarray
    object_ids: np.ndarray


# --- ray/solid intersections: origins (N, 3) or (3,), directions (N, 3); miss = inf -----------------------


def _rotate_z(vectors: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    x, y = vectors[..., 0], vectors[..., 1]
    return np.stack([c * x - s * y, s * x + c * y, vectors[..., 2]], axis=-1)


def _hit_sphere(origins: np.ndarray, dirs: np.ndarray, obj: SceneObject) -> np.ndarray:
    oc = origins - np.asarray(obj.centre)
    a = np.einsum("ij,ij->i", dirs, dirs)
    b = np.sum(dirs * oc, axis=-1)
    c = np.sum(oc * oc, axis=-1) - obj.half_extents[0] ** 2
    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    t = (-b - root) / a
    return np.where((disc >= 0) & (t > _EPS), t, np.inf)


def _hit_box(origins: np.ndarray, dirs: np.ndarray, obj: SceneObject) -> np.ndarray:
    local_o = _rotate_z(origins - np.asarray(obj.centre), -obj.yaw)
    local_d = _rotate_z(dirs, -obj.yaw)
    safe = np.where(np.abs(local_d) < _EPS, _EPS, local_d)
    half = np.asarray(obj.half_extents)
    t1, t2 = (-half - local_o) / safe, (half - local_o) / safe
    t_near = np.max(np.minimum(t1, t2), axis=-1)
    t_far = np.min(np.maximum(t1, t2), axis=-1)
    return np.where((t_near <= t_far) & (t_near > _EPS), t_near, np.inf)


def _hit_cylinder(origins: np.ndarray, dirs: np.ndarray, obj: SceneObject) -> np.ndarray:
    cx, cy, cz = obj.centre
    radius, _, half_h = obj.half_extents
    o = np.broadcast_to(origins, dirs.shape)
    ox, oy, oz = o[:, 0] - cx, o[:, 1] - cy, o[:, 2]
    dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    a = np.maximum(dx * dx + dy * dy, _EPS)
    b = dx * ox + dy * oy
    c = ox * ox + oy * oy - radius * radius
    disc = b * b - a * c
    t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    z_side = oz + t_side * dz
    side_ok = (disc >= 0) & (t_side > _EPS) & (np.abs(z_side - cz) <= half_h)
    safe_dz = np.where(np.abs(dz) < _EPS, _EPS, dz)
    t_top = (cz + half_h - oz) / safe_dz
    tx, ty = ox + t_top * dx, oy + t_top * dy
    top_ok = (t_top > _EPS) & (tx * tx + ty * ty <= radius * radius)
    return np.minimum(np.where(side_ok, t_side, np.inf), np.where(top_ok, t_top, np.inf))


def hit_object(origins: np.ndarray, dirs: np.ndarray, obj: SceneObject) -> np.ndarray:
    """Ray parameter of the first hit of each ray on ``obj`` (``inf`` for a miss)."""
    if obj.shape == "ball":
        return _hit_sphere(origins, dirs, obj)
    if obj.shape == "cylinder":
        return _hit_cylinder(origins, dirs, obj)
    return _hit_box(origins, dirs, obj)


def object_normals(points: np.ndarray, obj: SceneObject) -> np.ndarray:
    """Outward unit normals of ``obj`` at surface ``points`` (N, 3)."""
    rel = points - np.asarray(obj.centre)
    hx, _, hz = obj.half_extents
    if obj.shape == "ball":
        return rel / np.linalg.norm(rel, axis=-1, keepdims=True)
    if obj.shape == "cylinder":
        radial = np.hypot(rel[:, 0], rel[:, 1]) / hx
        top = rel[:, 2] / hz >= radial
        side = np.stack([rel[:, 0], rel[:, 1], np.zeros(len(rel))], axis=-1)
        side /= np.maximum(np.linalg.norm(side, axis=-1, keepdims=True), _EPS)
        return np.where(top[:, None], np.array([0.0, 0.0, 1.0]), side)
    local = _rotate_z(rel, -obj.yaw) / np.asarray(obj.half_extents)
    axis = np.argmax(np.abs(local), axis=-1)
    normal = np.zeros_like(local)
    normal[np.arange(len(local)), axis] = np.sign(local[np.arange(len(local)), axis])
    return _rotate_z(normal, obj.yaw)


def distance_to_object(point: np.ndarray, obj: SceneObject) -> float:
    """Euclidean distance from a world point to the solid (0 on or inside it): the pointing error."""
    rel = np.asarray(point, dtype=np.float64) - np.asarray(obj.centre)
    hx, _, hz = obj.half_extents
    if obj.shape == "ball":
        return max(0.0, float(np.linalg.norm(rel)) - hx)
    if obj.shape == "cylinder":
        radial = max(0.0, float(np.hypot(rel[0], rel[1])) - hx)
        return float(np.hypot(radial, max(0.0, abs(float(rel[2])) - hz)))
    local = _rotate_z(rel, -obj.yaw)
    return float(np.linalg.norm(np.maximum(np.abs(local) - np.asarray(obj.half_extents), 0.0)))


# --- the frame ------------------------------------------------------------------------------------------


def world_rays(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World-frame directions of every pixel's ray as three (H, W) components, scaled so that the ray
    parameter equals depth along the optical axis (the optical-frame ray is ``(x, y, 1)``)."""
    width, height = scene.size
    k = scene.intrinsics
    x = ((np.arange(width, dtype=np.float64) - k.cx) / k.fx)[None, :]
    y = ((np.arange(height, dtype=np.float64) - k.cy) / k.fy)[:, None]
    r = scene.camera_to_world.rotation
    return tuple(r[i, 0] * x + r[i, 1] * y + r[i, 2] for i in range(3))


def _bounding_corners(obj: SceneObject) -> np.ndarray:
    """The 8 corners of a world-axis-aligned box holding ``obj`` (8, 3)."""
    reach = obj.footprint_radius
    half = np.array([reach, reach, obj.half_extents[2]])
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    return np.asarray(obj.centre) + signs * half


def _screen_rect(scene: Scene, obj: SceneObject) -> tuple[slice, slice] | None:
    """Rows and columns whose rays can meet ``obj`` (its projected bounding box, padded), ``None`` if none."""
    width, height = scene.size
    cam = scene.camera_to_world.inverse().apply(_bounding_corners(obj))
    if np.any(cam[:, 2] <= 1e-3):
        return slice(0, height), slice(0, width)
    k = scene.intrinsics
    u, v = k.fx * cam[:, 0] / cam[:, 2] + k.cx, k.fy * cam[:, 1] / cam[:, 2] + k.cy
    left, right = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 2, width)
    top, bottom = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 2, height)
    return (slice(top, bottom), slice(left, right)) if left < right and top < bottom else None


def _table_albedo(scene: Scene, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Wood-like grain along world x (a function of the world point, so it sticks to the table)."""
    x, y = x.astype(np.float32), y.astype(np.float32)
    grain = 0.9 + 0.07 * np.sin(55.0 * y + 4.0 * np.sin(6.0 * x)) + 0.03 * np.sin(230.0 * y + 9.0 * x)
    return grain[..., None] * np.asarray(scene.table_rgb, dtype=np.float32)


def _shadow(scene: Scene, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Whether each ground point's ray towards the light meets an object; only points under an object's
    shadow footprint (its bounding box projected along the light) are tested, to keep this cheap."""
    light = np.asarray(scene.light, dtype=np.float64)
    shadow = np.zeros(x.shape, dtype=bool)
    for obj in scene.objects:
        corners = _bounding_corners(obj)
        feet = np.concatenate(
            [corners - ((corners[:, 2] - level) / light[2])[:, None] * light for level in (0.0, -FLOOR_DROP)]
        )
        low, high = feet.min(axis=0), feet.max(axis=0)
        near = (x >= low[0]) & (x <= high[0]) & (y >= low[1]) & (y <= high[1])
        if near.any():
            origins = np.stack([x[near], y[near], z[near] + 1e-6], axis=-1)
            dirs = np.broadcast_to(light, origins.shape)
            shadow[near] |= np.isfinite(hit_object(origins, dirs, obj))
    return shadow


def _ground(scene: Scene, rays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (inf for sky), RGB (float) and sky mask of the table, floor and sky, all (H, W[, 3])."""
    ox, oy, oz = scene.camera_to_world.translation
    dx, dy, dz = rays
    down = dz < -1e-9
    safe_dz = np.where(down, dz, -1.0)
    t_table = -oz / safe_dz
    x, y = ox + t_table * dx, oy + t_table * dy
    hx, hy = scene.table_half
    on_table = (np.abs(x) <= hx) & (np.abs(y) <= hy) & down
    t = np.where(on_table, t_table, (-FLOOR_DROP - oz) / safe_dz)
    x, y, z = ox + t * dx, oy + t * dy, oz + t * dz
    albedo = np.where(on_table[..., None], _table_albedo(scene, x, y), _FLOOR_RGB.astype(np.float32))
    light_z = scene.light[2]
    shade = np.where(_shadow(scene, x, y, z), _SHADOW, 1.0) * (_AMBIENT + (1 - _AMBIENT) * light_z)
    rgb = albedo * shade[..., None].astype(np.float32)
    rgb[~down] = _SKY_RGB
    return np.where(down, t, np.inf), rgb, ~down


def _shade_objects(scene: Scene, rays, origin, depth, ids, rgb) -> None:
    """Lambert-shade every object pixel in place (only inside each object's screen rectangle)."""
    light = np.asarray(scene.light, dtype=np.float64)
    for index, obj in enumerate(scene.objects):
        rect = _screen_rect(scene, obj)
        if rect is None:
            continue
        sel = ids[rect] == index
        if not sel.any():
            continue
        dirs = np.stack([c[rect][sel] for c in rays], axis=-1)
        points = origin + depth[rect][sel][:, None] * dirs
        lambert = np.clip(object_normals(points, obj) @ light, 0.0, 1.0)
        colour = np.asarray(obj.rgb, dtype=np.float32) * (_AMBIENT + (1 - _AMBIENT) * lambert)[:, None]
        rgb[rect][sel] = colour


def render(scene: Scene) -> Rendering:
    """Ray-cast ``scene``: Lambert shading with a directional light, cast shadows on the table and floor."""
    width, height = scene.size
    rays = tuple(np.broadcast_to(c, (height, width)) for c in world_rays(scene))
    origin = scene.camera_to_world.translation
    depth, rgb, _ = _ground(scene, rays)
    ids = np.full((height, width), NO_OBJECT, dtype=np.int16)
    for index, obj in enumerate(scene.objects):
        rect = _screen_rect(scene, obj)
        if rect is None:
            continue
        dirs = np.stack([c[rect].ravel() for c in rays], axis=-1)
        t_obj = hit_object(origin, dirs, obj).reshape(depth[rect].shape)
        closer = t_obj < depth[rect]
        depth[rect] = np.where(closer, t_obj, depth[rect])
        ids[rect] = np.where(closer, index, ids[rect])
    _shade_objects(scene, rays, origin, depth, ids, rgb)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return Rendering(image, np.where(np.isfinite(depth), depth, 0.0).astype(np.float32), ids)


def project(scene: Scene, world_points: np.ndarray) -> np.ndarray:
    """World points (N, 3) -> pixel ``(u, v)`` (N, 2) of the scene's camera (points must be in front)."""
    cam = scene.camera_to_world.inverse().apply(np.asarray(world_points, dtype=np.float64).reshape(-1, 3))
    k = scene.intrinsics
    return np.stack([k.fx * cam[:, 0] / cam[:, 2] + k.cx, k.fy * cam[:, 1] / cam[:, 2] + k.cy], axis=-1)
