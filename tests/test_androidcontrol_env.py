"""``molmo_agent/AndroidControl-v0`` on a small synthetic AndroidControl-format dataset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from molmo_agent.actions import Action
from molmo_agent.parsing import parse_action
from molmo_agent.training.supervision import android_control_turn
from molmo_envs.android_control import AndroidControlEnv
from molmo_envs.androidcontrol.synthetic import make_episodes
from molmo_envs.androidcontrol.writer import write_dataset
from molmo_envs.spaces import from_action

ENV_ID = "molmo_agent/AndroidControl-v0"
SMALL = (270, 600)  # a quarter of the native width: keeps observations cheap while exercising resizing


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Four test episodes (1080x2400 and 720x1600 screens, every action type) and one train episode."""
    data_dir = tmp_path_factory.mktemp("android_control")
    episodes = make_episodes(5)
    ids = [e.episode_id for e in episodes]
    write_dataset(
        data_dir,
        episodes,
        num_shards=2,
        splits={"train": ids[4:], "validation": [], "test": ids[:4]},
        subsplits={"IDD": ids[:2], "app_unseen": ids[2:4]},
    )
    return data_dir


@pytest.fixture(scope="module")
def registered():
    import molmo_envs  # noqa: F401  (registers the ids once they exist)

    added = ENV_ID not in gym.registry
    if added:
        gym.register(
            id=ENV_ID, entry_point="molmo_envs.android_control:AndroidControlEnv", max_episode_steps=50
        )
    yield ENV_ID
    if added:
        del gym.registry[ENV_ID]


def run_episode(env, policy) -> list[dict]:
    """Play one episode from the current reset; ``policy(env, obs)`` gives the action. Returns the infos."""
    infos, terminated, obs = [], False, env.unwrapped._observation()
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(policy(env, obs))
        assert reward == float(info["correct"]) and not truncated
        infos.append(info)
    return infos


def accuracy(env, policy, episodes: int) -> float:
    rewards = []
    env.reset(seed=0)
    for _ in range(episodes):
        rewards += [info["correct"] for info in run_episode(env, policy)]
        env.reset()
    return float(np.mean(rewards))


def oracle(env, obs):
    return env.unwrapped.gt_action()


# --- gymnasium conformance ----------------------------------------------------------------------------------


def test_check_env_passes(data_dir):
    env = AndroidControlEnv(data_dir, screen_size=SMALL, render_mode="rgb_array")
    check_env(env)


def test_check_env_passes_at_native_size(data_dir):
    check_env(AndroidControlEnv(data_dir, subsplit="IDD", max_elements=8))


def test_make_from_the_registry(data_dir, registered):
    env = gym.make(f"molmo_envs:{registered}", data_dir=data_dir, screen_size=SMALL)
    obs, _ = env.reset(seed=1)
    assert obs in env.observation_space
    assert env.spec.max_episode_steps == 50
    check_env(env.unwrapped)
    env.close()


def test_make_vec_sync(data_dir, registered):
    envs = gym.make_vec(
        f"molmo_envs:{registered}",
        num_envs=2,
        vectorization_mode="sync",
        data_dir=data_dir,
        screen_size=SMALL,
    )
    obs, _ = envs.reset(seed=0)
    assert obs["screenshot"].shape == (2, SMALL[1], SMALL[0], 3)
    for _ in range(3):
        obs, rewards, *_ = envs.step(envs.action_space.sample())
        assert rewards.shape == (2,) and set(rewards.tolist()) <= {0.0, 1.0}
    envs.close()


def test_seeded_rollouts_are_deterministic(data_dir):
    def rollout():
        env = AndroidControlEnv(data_dir, screen_size=SMALL)
        env.reset(seed=3)
        env.action_space.seed(3)
        return [env.step(env.action_space.sample())[1:3] for _ in range(5)]

    assert rollout() == rollout()


# --- observations and episode order -------------------------------------------------------------------------


def test_observation_contents(data_dir):
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    obs, info = env.reset(seed=0)
    episode = env.episode
    assert obs["screenshot"].shape == (SMALL[1], SMALL[0], 3) and obs["screenshot"].dtype == np.uint8
    assert obs["goal"] == episode.goal
    assert obs["instruction"] == episode.step_instructions[0]
    assert obs["screen_size"].tolist() == list(SMALL)
    count = int(obs["elements"]["count"])
    assert count == len(info["elements"]) == len(episode.elements(0))
    scale = SMALL[0] / episode.screenshot_sizes[0][0]
    np.testing.assert_allclose(obs["elements"]["boxes"][0], np.array(episode.elements(0)[0].bounds) * scale)
    assert not obs["elements"]["boxes"][count:].any()
    assert info["elements"][1]["text"] == "12:00"
    prompt, _ = android_control_turn(env)
    assert prompt == f"high_level: {episode.goal} low_level: {episode.step_instructions[0]}"


def test_high_level_mode_hides_the_instruction(data_dir):
    env = AndroidControlEnv(data_dir, task_level="high", screen_size=SMALL)
    obs, _ = env.reset(seed=0)
    assert obs["instruction"] == ""
    assert android_control_turn(env)[0] == f"high_level: {obs['goal']}"


def test_episodes_cycle_in_dataset_order_and_can_be_chosen(data_dir):
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    # dataset order: shard 0 holds 100, 102 (and train 104), shard 1 holds 101, 103 (round-robin writer)
    assert env.episode_ids == [100, 102, 101, 103]
    ids = [env.reset(seed=0)[1]["episode_id"]] + [env.reset()[1]["episode_id"] for _ in range(4)]
    assert ids == [100, 102, 101, 103, 100]
    assert env.reset(options={"episode_id": 101})[1]["episode_id"] == 101
    assert env.reset()[1]["episode_id"] == 103
    assert env.reset(options={"episode_index": 1})[1]["episode_id"] == 102
    with pytest.raises(ValueError, match="104"):
        env.reset(options={"episode_id": 104})  # a train episode


def test_split_and_subsplit_select_episodes(data_dir):
    assert AndroidControlEnv(data_dir, subsplit="IDD", screen_size=SMALL).episode_ids == [100, 101]
    assert AndroidControlEnv(data_dir, split="train", screen_size=SMALL).episode_ids == [104]
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    assert env.num_episodes == 4
    subsplits = {env.reset(options={"episode_id": i})[1]["subsplit"] for i in (100, 101)}
    assert subsplits == {"IDD"}
    assert env.reset(options={"episode_id": 103})[1]["subsplit"] == "app_unseen"


def test_episode_advances_along_the_ground_truth_whatever_the_action(data_dir):
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    env.reset(seed=0)
    steps = env.episode.num_steps
    infos = run_episode(env, lambda env, obs: Action(type="wait"))
    assert [i["step"] for i in infos] == list(range(steps))
    assert infos[-1]["gt_action_android_control"] == env.episode.actions[-1]
    last_obs = env._observation()
    assert last_obs["instruction"] == ""
    with pytest.raises(RuntimeError, match="reset"):
        env.step(Action(type="wait"))


def test_invalid_space_element_scores_zero(data_dir):
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    env.reset(seed=0)
    element = from_action(Action(type="open_app", app_name="x"))
    element["app_name"] = ""
    _, reward, _, _, info = env.step(element)
    assert reward == 0.0 and "invalid action" in info["reason"]


def test_supervision_is_molmos_action_string(data_dir):
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    env.reset(options={"episode_id": 101})
    for _ in range(env.episode.num_steps):
        truth = env.gt_action()
        _, text = android_control_turn(env)
        parsed = parse_action(text, SMALL)
        assert parsed.type == truth.type
        if truth.point is not None:
            assert text.startswith(("Click(", "Long Press("))
            assert parsed.x == pytest.approx(truth.x, abs=SMALL[0] / 1000) and parsed.y == pytest.approx(
                truth.y, abs=SMALL[1] / 1000
            )
        env.step(truth)


# --- scoring through the env --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["molmo", "distance14"])
@pytest.mark.parametrize("screen_size", [SMALL, (1080, 2400), (720, 1600)])
def test_oracle_scores_everything(data_dir, protocol, screen_size):
    env = AndroidControlEnv(data_dir, protocol=protocol, screen_size=screen_size)
    assert accuracy(env, oracle, episodes=4) == 1.0


def test_oracle_as_space_elements_scores_everything(data_dir):
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    assert accuracy(env, lambda env, obs: from_action(env.unwrapped.gt_action()), episodes=4) == 1.0


@pytest.mark.parametrize("protocol", ["molmo", "distance14"])
def test_random_policy_scores_far_lower(data_dir, protocol):
    env = AndroidControlEnv(data_dir, protocol=protocol, screen_size=SMALL)
    env.action_space.seed(0)
    assert accuracy(env, lambda env, obs: env.action_space.sample(), episodes=4) < 0.25


def test_clicks_just_outside_the_target_box_are_wrong(data_dir):
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    env.reset(seed=0)
    boxes = {}
    for _episode in range(4):
        for info in run_episode(env, oracle):
            if info["gt_action"]["type"] in ("click", "long_press"):
                assert info["correct"] and info["target_box"] is not None
                boxes[info["episode_id"], info["step"]] = info["target_box"]
        env.reset()
    assert len(boxes) == 8

    def nudged(env, obs):
        truth = env.unwrapped.gt_action()
        key = (env.unwrapped.episode.episode_id, env.unwrapped._step)
        if key not in boxes:
            return truth
        left, top, right, bottom = boxes[key]
        assert left <= truth.x <= right and top <= truth.y <= bottom
        x = right + 0.5 if right + 0.5 <= SMALL[0] else left - 0.5
        return Action(type=truth.type, x=x, y=truth.y)

    env.reset(seed=0)
    for _episode in range(4):
        for info in run_episode(env, nudged):
            assert info["correct"] == ((info["episode_id"], info["step"]) not in boxes), info["reason"]
        env.reset()


def _to_open_app_step(env) -> None:
    while env.gt_action().type != "open_app":
        env.step(env.gt_action())


def _icon_centre(env, app: str) -> Action:
    icon = next(e for e in env._info()["elements"] if e["text"] == app)
    left, top, right, bottom = icon["bounds"]
    return Action(type="click", x=(left + right) / 2, y=(top + bottom) / 2)


def test_click_on_app_icon_for_open_app_follows_the_reference(data_dir):
    """Molmo's reference searches the lower-cased tree for ``text=<App Name>`` as written: an app name
    with a capital letter never has a box, so a click on its icon is wrong; ``distance14`` never counts it."""
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    env.reset(seed=0)
    _to_open_app_step(env)
    app = env.gt_action().app_name
    assert app != app.lower()  # the synthetic apps are capitalised (Gmail, Maps, ...)
    _, reward, _, _, info = env.step(_icon_centre(env, app))
    assert reward == 0.0 and "no app box" in info["reason"] and info["predicted_type"] == "click"


def test_answers_are_scored_as_raw_text(data_dir):
    env = AndroidControlEnv(data_dir, screen_size=SMALL)
    env.reset(seed=0)
    truth = env.ground_truth()
    _, reward, _, _, info = env.step(f"Plan: do it. Action: {truth.target_action}")
    assert reward == 1.0 and info["answer"].endswith(truth.target_action)
    assert info["gt_answer"] == truth.target_action and info["protocol"] == "molmo"


@pytest.mark.parametrize("protocol", ["molmo", "distance14"])
@pytest.mark.parametrize("garbage", ["", "   ", "I am not sure", "<points coords='1 1 500 500'>x</points>"])
def test_unreadable_answers_are_wrong_on_every_step(data_dir, protocol, garbage):
    """No answer earns credit by being read as a substitute action (e.g. WAIT on wait steps)."""
    env = AndroidControlEnv(data_dir, protocol=protocol, screen_size=SMALL)
    seen_types = set()
    for episode_id in env.episode_ids:
        env.reset(options={"episode_id": episode_id})
        for info in run_episode(env, lambda env, obs: garbage):
            assert info["correct"] is False and info["predicted_type"] == "unparsed", info
            seen_types.add(info["gt_action"]["type"])
    assert {"wait", "navigate_back", "navigate_home"} & seen_types


def test_a_step_list_restricts_the_scored_steps(data_dir, tmp_path):
    listing = tmp_path / "ac_idx.txt"
    listing.write_text("# OS-Atlas style\nepisode_101_screenshot_1\nepisode_101_screenshot_0\n103 2\n999 0\n")
    env = AndroidControlEnv(data_dir, steps=listing, screen_size=SMALL)
    assert env.episode_ids == [101, 103] and env.num_scored_steps == 3
    env.reset(seed=0)
    assert [info["step"] for info in run_episode(env, oracle)] == [0, 1]
    obs, info = env.reset()
    assert info["step"] == 2 and obs["instruction"] == env.episode.step_instructions[2]
    assert [i["step"] for i in run_episode(env, oracle)] == [2]
    listing.write_text("episode 101 step 1\n")
    with pytest.raises(ValueError, match=r"ac_idx\.txt:1"):
        AndroidControlEnv(data_dir, steps=listing, screen_size=SMALL)
