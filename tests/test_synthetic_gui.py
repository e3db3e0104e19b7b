"""SyntheticGui-v0: the gym contract, the scripted solver, determinism and the Molmo supervision texts."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from molmo_agent.actions import Action, ActionType
from molmo_agent.parsing import parse_action, parse_points
from molmo_agent.training.supervision import synthetic_gui_turns
from molmo_envs.spaces import ACTION_TYPES, from_action
from molmo_envs.synthetic_gui import SyntheticGuiEnv

ENV_ID = "molmo_agent/SyntheticGui-v0"
SIZES = [(360, 640), (540, 960), (800, 600), (1280, 720)]


@pytest.fixture
def registered():
    """Register the id for the test when the package has not (yet) done so."""
    added = ENV_ID not in gymnasium.registry
    if added:
        gymnasium.register(
            ENV_ID, entry_point="molmo_envs.synthetic_gui:SyntheticGuiEnv", max_episode_steps=10
        )
    yield ENV_ID
    if added:
        del gymnasium.registry[ENV_ID]


def _solve(env: SyntheticGuiEnv, max_steps: int = 10) -> tuple[int, float, bool]:
    """Run the oracle to the end; returns (steps, total reward, success)."""
    total = 0.0
    for steps in range(1, max_steps + 1):
        _, reward, terminated, truncated, info = env.step(env.oracle_action())
        total += reward
        if terminated or truncated:
            return steps, total, info["success"]
    return max_steps, total, False


@pytest.mark.filterwarnings("ignore:.*symmetric and normalized")
def test_check_env():
    for size in ((360, 640), (800, 600)):
        env = SyntheticGuiEnv(screen_size=size)
        check_env(env.unwrapped, skip_render_check=True)


def test_make_and_make_vec_step(registered):
    env = gymnasium.make(f"molmo_envs:{registered}", screen_size=(360, 640))
    obs, _ = env.reset(seed=3)
    assert obs["screenshot"].shape == (640, 360, 3)
    for _ in range(12):
        *_, truncated, _ = env.step(Action(type=ActionType.WAIT))
    assert truncated
    envs = gymnasium.make_vec(f"molmo_envs:{registered}", num_envs=2, vectorization_mode="sync")
    obs, infos = envs.reset(seed=[1, 2])
    assert obs["screenshot"].shape == (2, 960, 540, 3) and len(infos["instruction"]) == 2
    envs.action_space.seed(0)
    for _ in range(3):
        _, rewards, _, _, _ = envs.step(envs.action_space.sample())
        assert rewards.shape == (2,)
    envs.close()


@pytest.mark.parametrize("kind", ["click", "multi"])
def test_oracle_solves_every_seed(kind):
    multi_steps = []
    for seed in range(100):
        env = SyntheticGuiEnv(screen_size=SIZES[seed % 4], task=kind)
        _, info = env.reset(seed=seed)
        steps, total, success = _solve(env)
        assert success and total == 1.0, (seed, info["instruction"])
        assert info["multi_step"] == (kind == "multi")
        multi_steps.append(steps)
    if kind == "click":
        assert set(multi_steps) == {1}
    else:
        assert min(multi_steps) >= 2 and 3 in multi_steps


def _rollout_frames(seed: int, size=(540, 960)) -> tuple[list[bytes], str]:
    env = SyntheticGuiEnv(screen_size=size, task="multi")
    obs, info = env.reset(seed=seed)
    frames = [obs["screenshot"].tobytes()]
    while True:
        obs, _, terminated, _, _ = env.step(env.oracle_action())
        frames.append(obs["screenshot"].tobytes())
        if terminated:
            return frames, info["instruction"]


def test_deterministic_per_seed_and_different_across_seeds():
    assert _rollout_frames(7) == _rollout_frames(7)
    firsts = {SyntheticGuiEnv().reset(seed=s)[0]["screenshot"].tobytes() for s in range(10)}
    assert len(firsts) == 10
    frames, _ = _rollout_frames(8)
    assert len(set(frames)) == len(frames)  # every state change shows on screen


def _other_element(env: SyntheticGuiEnv, info: dict) -> tuple[float, float]:
    scene = env.unwrapped._scene
    target_id = info["target"]["id"]
    for element in scene.visible():
        if element.id != target_id and element.kind in ("button", "icon", "list_item"):
            return element.center
    raise AssertionError("no distractor on screen")


def test_wrong_clicks_give_no_reward():
    for seed in range(30):
        env = SyntheticGuiEnv(task="click")
        _, info = env.reset(seed=seed)
        x, y = _other_element(env, info)
        _, reward, terminated, _, info = env.step(Action(type=ActionType.CLICK, x=x, y=y))
        assert reward == 0.0 and not terminated and info["hit"] is not None
        _, reward, terminated, _, info = env.step(Action(type=ActionType.CLICK, x=1, y=1))  # margin or header
        assert reward == 0.0 and not terminated
        assert _solve(env)[2]


def test_step_accepts_actions_and_space_elements():
    a, b = SyntheticGuiEnv(task="multi"), SyntheticGuiEnv(task="multi")
    a.reset(seed=5)
    b.reset(seed=5)
    while True:
        action = a.oracle_action()
        out_a = a.step(action)
        out_b = b.step(from_action(action))
        assert b.action_space.contains(from_action(action))
        assert np.array_equal(out_a[0]["screenshot"], out_b[0]["screenshot"])
        assert out_a[1:4] == out_b[1:4]
        if out_a[2]:
            break


def test_invalid_and_inapplicable_actions_change_nothing():
    env = SyntheticGuiEnv(task="multi")
    obs, _ = env.reset(seed=1)
    bad = env.action_space.sample() | {"type": ACTION_TYPES.index(ActionType.OPEN_APP), "app_name": ""}
    _, reward, _, _, info = env.step(bad)
    assert reward == 0.0 and "app_name" in info["error"]
    obs3, _, _, _, info = env.step(Action(type=ActionType.INPUT_TEXT, text="hello"))
    assert "focus" in info["error"]
    assert np.array_equal(obs["screenshot"], obs3["screenshot"])


def test_menu_scrim_closes_the_drawer_and_typing_replaces():
    env = SyntheticGuiEnv(task="multi", difficulty=1)
    for seed in range(40):
        _, info = env.reset(seed=seed)
        if info["task"] == "type":
            break
    env.step(env.oracle_action())  # focus the field
    env.step(Action(type=ActionType.INPUT_TEXT, text="wrong"))
    _, reward, _, _, info = env.step(env.oracle_action())
    assert reward == 1.0 and info["app_state"]["fields"][info["target"]["label"]] != "wrong"
    for seed in range(40):
        _, info = env.reset(seed=seed)
        if info["task"] == "menu_toggle":
            break
    env.step(env.oracle_action())
    assert env._scene.menu_open
    x1, y1 = env._scene.app_box[2:]
    _, _, _, _, info = env.step(Action(type=ActionType.CLICK, x=x1 - 2, y=y1 - 2))  # the scrim
    assert not info["app_state"]["menu_open"] and info["hit"] is None
    assert _solve(env)[2]


@pytest.mark.parametrize("family", ["molmo1", "molmo2"])
def test_supervision_parses_back_to_the_target_and_action(family):
    for seed in range(40):
        size = SIZES[seed % 4]
        env = SyntheticGuiEnv(screen_size=size, task=("click", "multi")[seed % 2])
        env.reset(seed=seed)
        while True:
            sup = synthetic_gui_turns(env, family)
            target = env.next_step()[1].target
            (point,) = parse_points(sup["point_answer"], [size])
            cx, cy = target.center
            assert abs(point.x - cx) <= 1 and abs(point.y - cy) <= 1
            assert point.label == target.phrase == sup["phrase"]
            assert (
                sup["point_prompt"].startswith("Point to")
                and target.phrase.split(" ", 1)[1] in sup["point_prompt"]
            )
            assert sup["act_prompt"].startswith("high_level: ")
            oracle = env.oracle_action()
            parsed = parse_action(sup["action_answer"], size)
            if oracle.type is ActionType.CLICK:
                assert parsed.type is ActionType.CLICK
                assert abs(parsed.x - oracle.x) <= 1 and abs(parsed.y - oracle.y) <= 1
            else:
                assert parsed.type is ActionType.INPUT_TEXT and parsed.text == oracle.text
            if env.step(oracle)[2]:
                break


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="task"):
        SyntheticGuiEnv(task="swipe")
    with pytest.raises(ValueError, match="difficulty"):
        SyntheticGuiEnv().reset(seed=0, options={"difficulty": 5})
    env = SyntheticGuiEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.oracle_action()
    _, info = env.reset(seed=0, options={"task": "multi", "difficulty": 2})
    assert info["multi_step"]
