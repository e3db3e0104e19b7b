"""molmo_agent/TabletopPointing-v0: gymnasium contract, scoring, camera geometry and supervision text."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import molmo_agent as ma
from molmo_agent import geometry
from molmo_agent.parsing import parse_points
from molmo_agent.training.supervision import tabletop_turn
from molmo_envs import spaces as molmo_spaces
from molmo_envs.tabletop import TabletopPointingEnv, look_down_pose
from molmo_envs.tabletop_render import NO_OBJECT, Scene, SceneObject, distance_to_object, render

ENV_ID = "molmo_agent/TabletopPointing-v0"
SIZE = (320, 240)


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Register the id for these tests when the package has not (yet) done it."""
    added = ENV_ID not in gymnasium.registry
    if added:
        gymnasium.register(ENV_ID, entry_point="molmo_envs.tabletop:TabletopPointingEnv", max_episode_steps=1)
    yield
    if added:
        del gymnasium.registry[ENV_ID]


def overhead_scene(*objects: SceneObject, height: float = 0.8, target: int = 0) -> Scene:
    """A camera straight down at ``height`` over the origin; image up is world +x, image right world -y."""
    intrinsics = geometry.CameraIntrinsics(300.0, 300.0, 160.0, 120.0)
    pose = look_down_pose(np.array([0.0, 0.0, height]), yaw=0.0, pitch=math.pi / 2)
    return Scene(SIZE, intrinsics, pose, objects, target)


BALL = SceneObject("ball", "red", (220, 40, 40), (0.0, 0.0, 0.05), (0.05, 0.05, 0.05))


def lift(obs: dict, u: float, v: float, window: int = 1) -> np.ndarray:
    """The robot's computation: pixel + depth -> camera frame (the geometry module) -> world (extrinsic)."""
    fx, fy, cx, cy = (float(c) for c in obs["intrinsics"])
    camera = geometry.point_to_3d(
        (u, v), obs["depth"], geometry.CameraIntrinsics(fx, fy, cx, cy), depth_scale=1.0, window=window
    )
    return geometry.RigidTransform.from_matrix(obs["camera_to_world"], atol=1e-5).apply(camera)


def test_check_env_passes():
    check_env(TabletopPointingEnv(render_mode="rgb_array").unwrapped)


def test_make_and_make_vec():
    env = gymnasium.make(f"molmo_envs:{ENV_ID}")
    obs, _ = env.reset(seed=1)
    assert obs["image"].shape == (240, 320, 3) and obs["depth"].dtype == np.float32
    _, reward, terminated, _, info = env.step(env.unwrapped.oracle_point())
    assert terminated and reward == 1.0 and info["hit"]
    envs = gymnasium.make_vec(f"molmo_envs:{ENV_ID}", num_envs=2, vectorization_mode="sync")
    obs, _ = envs.reset(seed=[3, 4])
    assert obs["image"].shape == (2, 240, 320, 3) and obs["intrinsics"].shape == (2, 4)
    actions = envs.action_space.sample()
    actions["type"][:] = molmo_spaces.ACTION_TYPES.index(ma.ActionType.CLICK)
    _, rewards, terminated, _, infos = envs.step(actions)
    assert terminated.all() and rewards.shape == (2,) and infos["error_m"].shape == (2,)
    envs.close()


def test_oracle_hits_on_100_seeds():
    env = TabletopPointingEnv()
    counts = set()
    for seed in range(100):
        obs, info = env.reset(seed=seed)
        counts.add(info["num_objects"])
        assert obs["instruction"] == f"Point to the {info['label']}."
        _, reward, terminated, _, info = env.step(env.oracle_point())
        assert info["hit"] and info["error_m"] < 0.02 and reward == 1.0 and terminated
        left, top, right, bottom = info["target_box"]
        assert left <= info["oracle_pixel"][0] <= right and top <= info["oracle_pixel"][1] <= bottom
    assert counts == {1, 2, 3, 4, 5}


def test_point_far_away_on_the_table_scores_zero():
    env = TabletopPointingEnv()
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        ids, depth = env._rendering.object_ids, obs["depth"]
        target = env.scene.objects[env.scene.target]
        best, best_distance = None, 0.0
        for v in range(10, 230, 10):
            for u in range(10, 310, 10):
                if (ids[v - 3 : v + 4, u - 3 : u + 4] != NO_OBJECT).any() or depth[v, u] <= 0:
                    continue
                point = lift(obs, u, v)
                if abs(point[2]) < 1e-4 and distance_to_object(point, target) > best_distance:
                    best, best_distance = (u, v), distance_to_object(point, target)
        assert best is not None and best_distance > 0.25
        _, reward, _, _, info = env.step(np.array(best, dtype=np.float32))
        assert not info["hit"] and reward == 0.0
        assert info["error_m"] == pytest.approx(best_distance, abs=1e-4) and info["error_m"] > 0.25


def test_overhead_ball_depth_hand_check():
    """Straight down from 0.8 m over a 5 cm ball on the table: the top of the ball is 0.7 m away."""
    env = TabletopPointingEnv()
    obs, info = env.reset(options={"scene": overhead_scene(BALL)})
    assert obs["depth"][120, 160] == pytest.approx(0.7, abs=1e-6)
    oracle = env.oracle_point()
    assert (oracle.x, oracle.y) == (160.0, 120.0)
    np.testing.assert_allclose(lift(obs, oracle.x, oracle.y), [0.0, 0.0, 0.1], atol=1e-6)
    # the 5x5 median the env scores with stays on the ball, just below its top
    assert distance_to_object(lift(obs, oracle.x, oracle.y, window=5), BALL) < 1e-6
    # table next to the ball: depth 0.8, world z 0; 0.1 m at 0.8 m is 37.5 px
    assert obs["depth"][120, 10] == pytest.approx(0.8, abs=1e-6)
    np.testing.assert_allclose(lift(obs, 160 + 37.5 * 4, 120), [0.0, -0.4, 0.0], atol=1e-6)
    # ball edge: radius 0.05 m seen at 0.75 m (its equator) is 20 px
    assert (env._rendering.object_ids[120, 160 - 19 : 160 + 20] == 0).all()
    assert env._rendering.object_ids[120, 160 + 21] == NO_OBJECT
    _, reward, _, _, info = env.step(oracle)
    assert info["hit"] and info["error_m"] == pytest.approx(0.0, abs=1e-6) and reward == 1.0
    np.testing.assert_allclose(info["target_xyz"], [0.0, 0.0, 0.05])


def test_overhead_orientation_and_box_top():
    """Image up is world +x: a cube 0.1 m along +x lies 37.5 px above centre at 0.8 m (its top 0.06 m)."""
    cube = SceneObject("cube", "blue", (40, 80, 220), (0.1, 0.0, 0.03), (0.03, 0.03, 0.03))
    env = TabletopPointingEnv()
    obs, _ = env.reset(options={"scene": overhead_scene(BALL, cube, target=1)})
    oracle = env.oracle_point()
    depth_top = 0.8 - 0.06
    assert oracle.x == pytest.approx(160.0, abs=0.5)
    assert oracle.y == pytest.approx(120.0 - 300.0 * 0.1 / depth_top, abs=1.0)
    assert obs["depth"][round(oracle.y), round(oracle.x)] == pytest.approx(depth_top, abs=1e-6)
    point = lift(obs, oracle.x, oracle.y)
    assert point[2] == pytest.approx(0.06, abs=1e-6)
    assert distance_to_object(point, cube) < 1e-6


def test_oracle_depth_lies_on_the_target_surface():
    env = TabletopPointingEnv()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        oracle = env.oracle_point()
        point = lift(obs, oracle.x, oracle.y)
        assert distance_to_object(point, env.scene.objects[env.scene.target]) < 1e-5


def test_action_forms_agree():
    env = TabletopPointingEnv()
    env.reset(seed=7)
    oracle = env.oracle_point()
    element = molmo_spaces.from_action(ma.Action(type="click", x=oracle.x, y=oracle.y))
    forms = [oracle, ma.Action(type="click", x=oracle.x, y=oracle.y), np.array([oracle.x, oracle.y]), element]
    infos = []
    for form in forms:
        env.reset(seed=7)
        infos.append(env.step(form)[4])
    assert all(i["hit"] and i["error_m"] == infos[0]["error_m"] for i in infos)
    env.reset(seed=7)
    _, reward, terminated, _, info = env.step(ma.Action(type="scroll", direction="down"))
    assert reward == 0.0 and terminated and not info["hit"] and info["error_m"] == math.inf
    env.reset(seed=7)
    _, reward, _, _, info = env.step(np.array([-50.0, 10.0]))
    assert reward == 0.0 and info["error_m"] == math.inf


def test_rendering_is_deterministic_per_seed():
    a, b = TabletopPointingEnv(), TabletopPointingEnv()
    for seed in (0, 5, 123):
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        for key in ("image", "depth", "intrinsics", "camera_to_world"):
            np.testing.assert_array_equal(obs_a[key], obs_b[key])
        assert obs_a["instruction"] == obs_b["instruction"] and info_a["label"] == info_b["label"]
    assert not np.array_equal(a.reset(seed=1)[0]["image"], a.reset(seed=2)[0]["image"])
    scene = overhead_scene(BALL)
    np.testing.assert_array_equal(render(scene).rgb, render(scene).rgb)


@pytest.mark.parametrize("family", ["molmo2", "molmo1"])
def test_supervision_parses_back_to_the_oracle(family):
    env = TabletopPointingEnv()
    for seed in range(20):
        _, info = env.reset(seed=seed)
        prompt, answer = tabletop_turn(env, family)
        assert info["label"] in prompt and prompt.startswith("Point to")
        (point,) = parse_points(answer, [SIZE])
        oracle = env.oracle_point()
        assert abs(point.x - oracle.x) <= 1.0 and abs(point.y - oracle.y) <= 1.0


def test_large_image_option_and_render():
    env = TabletopPointingEnv(render_mode="rgb_array", image_size=(640, 480))
    obs, _ = env.reset(seed=2)
    assert obs["image"].shape == (480, 640, 3) and obs["depth"].shape == (480, 640)
    assert env.observation_space.contains(obs)
    env.step(env.oracle_point())
    frame = env.render()
    assert frame.shape == (480, 640, 3) and not np.array_equal(frame, obs["image"])


def test_bad_arguments_fail_early():
    with pytest.raises(ValueError):
        TabletopPointingEnv(max_objects=0)
    with pytest.raises(ValueError):
        TabletopPointingEnv(render_mode="human")
    with pytest.raises(ValueError, match="Scene"):
        TabletopPointingEnv(image_size=(640, 480)).reset(options={"scene": overhead_scene(BALL)})
    with pytest.raises(RuntimeError, match="reset"):
        TabletopPointingEnv().step(np.array([1.0, 1.0]))
