"""Every registered molmo_envs id: gymnasium's check_env and a seeded determinism rollout."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from molmo_envs import ENVIRONMENTS, REGISTERED_IDS


def _kwargs(env_id: str, android_control_dir) -> dict:
    if "AndroidControl" in env_id:
        return {"data_dir": str(android_control_dir), "screen_size": (270, 600)}
    if "SyntheticGui" in env_id:
        return {"screen_size": (360, 640)}
    return {}


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return np.array_equal(np.asarray(a), np.asarray(b)) if not isinstance(a, str) else a == b


def test_the_registry_lists_the_three_designed_ids():
    assert set(REGISTERED_IDS) == {
        "molmo_agent/SyntheticGui-v0",
        "molmo_agent/AndroidControl-v0",
        "molmo_agent/TabletopPointing-v0",
    }
    assert all(env_id in gym.registry for env_id in ENVIRONMENTS)


@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_check_env(env_id, android_control_dir):
    env = gym.make(f"molmo_envs:{env_id}", **_kwargs(env_id, android_control_dir))
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_seeded_rollouts_are_identical(env_id, android_control_dir):
    rollouts = []
    for _ in range(2):
        env = gym.make(f"molmo_envs:{env_id}", **_kwargs(env_id, android_control_dir))
        env.action_space.seed(7)
        obs, _ = env.reset(seed=3)
        trace = [obs]
        for _ in range(3):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            trace.append((obs, reward))
            if terminated or truncated:
                break
        rollouts.append(trace)
        env.close()
    first, second = rollouts
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        if isinstance(a, tuple):
            assert _same(a[0], b[0]) and a[1] == b[1]
        else:
            assert _same(a, b)


@pytest.mark.parametrize("env_id", REGISTERED_IDS)
def test_make_vec_sync(env_id, android_control_dir):
    envs = gym.make_vec(
        f"molmo_envs:{env_id}", num_envs=2, vectorization_mode="sync", **_kwargs(env_id, android_control_dir)
    )
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    envs.close()
