"""The evaluation harness on a small AndroidControl-style env (offline, ground-truth trajectory)."""

from __future__ import annotations

import itertools
import json

import gymnasium as gym
import numpy as np
import pytest
from browser_helpers import MISSING, chromium, chromium_available

from molmo_agent.actions import ANDROID_CONTROL_TYPES, Action, ActionType
from molmo_agent.backends.registry import resolve
from molmo_agent.backends.scripted import ScriptedMolmo2Backend
from molmo_agent.evaluation import EvalConfig, run_eval
from molmo_agent.model import MolmoModel
from molmo_envs.spaces import UnicodeText, action_space, to_action

SIZE = (200, 100)
BOX = (40, 20, 80, 40)  # the button every step's ground truth clicks


class ToyControlEnv(gym.Env):
    """Two steps per episode; step i's ground truth clicks the button; reward 1 when inside it."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict(
            {
                "screenshot": gym.spaces.Box(0, 255, (SIZE[1], SIZE[0], 3), np.uint8),
                "goal": UnicodeText(),
                "instruction": UnicodeText(),
            }
        )
        self.action_space = action_space(SIZE)

    def _obs(self):
        screen = np.full((SIZE[1], SIZE[0], 3), 240, np.uint8)
        screen[BOX[1] : BOX[3], BOX[0] : BOX[2]] = (30, 90, 200)
        return {"screenshot": screen, "goal": "Press the button", "instruction": f"tap it ({self.t})"}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        action = to_action(action)
        inside = (
            action.type is ActionType.CLICK and BOX[0] <= action.x <= BOX[2] and BOX[1] <= action.y <= BOX[3]
        )
        info = {
            "correct": inside,
            "gt_action": {"action_type": "click", "x": 60, "y": 30},
            "target_box": list(BOX),
            "reason": "" if inside else "outside the target box",
            "protocol": "toy",
            "episode_id": 1000 + self.t,
        }
        self.t += 1
        return self._obs(), float(inside), self.t >= 2, False, info


ENV_ID = "molmo_test/ToyControl-v0"
if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=ToyControlEnv)


@pytest.fixture(scope="module")
def backend(tiny_dir):
    scripted = ScriptedMolmo2Backend(resolve(str(tiny_dir)))
    scripted.end_after_script = True
    return scripted


def scripted_model(backend, *answers: str) -> MolmoModel:
    sequence = itertools.cycle(answers)
    backend.script = lambda request: next(sequence)
    return MolmoModel(backend)


def test_right_answers_score_100_percent_and_every_file_is_written(backend, tmp_path):
    model = scripted_model(backend, "Click(30.0, 30.0)")  # (60, 30): the button
    config = EvalConfig(ENV_ID, tmp_path, episodes=3, policy="action")
    summary = run_eval(config, model, progress=False)
    assert summary["step_accuracy"] == 1.0 and summary["episode_success_rate"] == 1.0
    assert summary["steps"] == 6 and summary["per_type_accuracy"] == {"click": 1.0}
    assert summary["confusion"] == {"click": {"click": 6}}
    for name in ("steps.jsonl", "summary.json", "accuracy.png", "report.html", "run.json"):
        assert (tmp_path / name).is_file(), name
    lines = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert lines[0]["task"] == "Press the button / tap it (0)"
    assert lines[0]["predicted"] == Action(type="click", x=60.0, y=30.0).to_dict()
    assert summary["median_harness_overhead_ms"] >= 0


def test_wrong_and_unusable_answers_are_failures_in_the_report(backend, tmp_path):
    model = scripted_model(backend, "Click(90.0, 90.0)", "no idea")
    summary = run_eval(EvalConfig(ENV_ID, tmp_path, episodes=1, policy="action"), model, progress=False)
    assert summary["step_accuracy"] == 0.0 and summary["parse_errors"] == 1
    assert summary["confusion"] == {"click": {"click": 1, "unparsed": 1}}
    assert summary["protocol"] == "toy" and "toy" in summary["protocols"]
    page = (tmp_path / "report.html").read_text()
    assert "outside the target box" in page and "no idea" in page
    assert len(list((tmp_path / "failures").glob("*.png"))) == 2


def test_resume_skips_finished_episodes_and_reruns_an_interrupted_one(backend, tmp_path):
    model = scripted_model(backend, "Click(30.0, 30.0)")
    seen = []

    def interrupt_after_two(episode, lines):
        seen.append(episode)
        if len(seen) == 2:
            raise KeyboardInterrupt

    config = EvalConfig(ENV_ID, tmp_path, episodes=4, policy="action")
    with pytest.raises(KeyboardInterrupt):
        run_eval(config, model, progress=False, on_episode=interrupt_after_two)
    resumed = []
    summary = run_eval(config, model, progress=False, on_episode=lambda e, lines: resumed.append(e))
    assert resumed == [2, 3]
    assert summary["episodes"] == 4 and summary["steps"] == 8


def test_cli_eval_with_the_tiny_model(tiny_dir, tmp_path, capsys):
    from molmo_agent.cli import main

    out = tmp_path / "eval"
    env = ["molmo_agent/SyntheticGui-v0", "--env-arg", "screen_size=[360,640]", "--max-episode-steps", "2"]
    options = ["--model", str(tiny_dir), "--episodes", "1", "--out", str(out), "--no-progress"]
    code = main(["eval", *env, *options])
    assert code == 0
    assert "step accuracy" in capsys.readouterr().out
    assert (out / "report.html").is_file()
    # the CLI runs the molmo_envs environments; a test env registered with gymnasium is refused clearly
    assert main(["eval", ENV_ID, "--model", str(tiny_dir), "--out", str(tmp_path / "toy")]) == 2
    assert "molmo_agent/SyntheticGui-v0" in capsys.readouterr().err


def test_androidcontrol_eval_end_to_end_with_the_tiny_model(tiny_dir, android_control_dir, tmp_path, capsys):
    """The real AndroidControl env on a small shard, the random tiny model, both protocols, resume, report."""

    from molmo_agent.cli import main

    out = tmp_path / "eval"
    base = ["eval", "molmo_agent/AndroidControl-v0", "--model", str(tiny_dir), "--data-dir"]
    base += [
        str(android_control_dir),
        "--out",
        str(out),
        "--no-progress",
        "--env-arg",
        "screen_size=[270,600]",
    ]
    assert main([*base, "--episodes", "2", "--protocol", "distance14"]) == 0
    first = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert {line["episode"] for line in first} == {0, 1}
    assert all(line["protocol"] == "distance14" for line in first)
    assert main([*base, "--episodes", "3", "--protocol", "distance14"]) == 0  # resume: one more episode
    lines = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert lines[: len(first)] == first and {line["episode"] for line in lines} == {0, 1, 2}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["steps"] == len(lines)
    assert summary["protocol"] == "distance14"
    assert set(summary["per_type_accuracy"]) <= {t.value for t in ANDROID_CONTROL_TYPES}
    assert "step accuracy" in capsys.readouterr().out
    assert len({line["episode_id"] for line in lines}) == 3  # each harness episode is its own dataset episode
    everything = tmp_path / "all"
    args = [*base[:-5], "--out", str(everything), "--no-progress", *base[-2:], "--episodes", "all"]
    assert main([*args, "--protocol", "molmo"]) == 0
    assert json.loads((everything / "summary.json").read_text())["episodes"] == 3
    run = json.loads((everything / "run.json").read_text())["config"]
    assert run["protocol"] == "molmo" and run["max_new_tokens"] == 16 and run["env_args"]["data_dir"]
    if not chromium_available():
        pytest.skip(MISSING)
    dom = chromium("--dump-dom", (out / "report.html").as_uri(), tmp=tmp_path)
    assert "Failing steps" in dom.stdout and "molmo_agent/AndroidControl-v0" in dom.stdout


class WaitRewardingEnv(ToyControlEnv):
    """An env that (wrongly, but as WAIT-padding once exploited) rewards a ``wait``: an unparsed answer
    must still be a wrong step, whatever the env made of it."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if to_action(action).type is ActionType.WAIT:
            info, reward = info | {"correct": True}, 1.0
        return obs, reward, terminated, truncated, info


class TextScoringEnv(ToyControlEnv):
    """Scores the raw answer text like AndroidControl-v0 after its change (``accepts_text``)."""

    accepts_text = True
    num_episodes = 3
    protocol = "molmo"

    def reset(self, *, seed=None, options=None):
        self.index = (options or {}).get("episode_index", 0)
        return super().reset(seed=seed)

    def step(self, action):
        assert isinstance(action, str), "a text-scoring env gets the model's raw answer"
        correct = action.strip() == "Click(30.0, 30.0)"
        obs, _, terminated, truncated, info = super().step(Action(type="click", x=60, y=30))
        info |= {
            "correct": correct,
            "answer": action,
            "predicted_type": "click" if action.startswith("Click") else "unparsed",
            "gt_answer": "Click(30.0, 30.0)",
            "subsplit": ["IDD", "app_unseen", "task_unseen"][self.index],
            "episode_id": 500 + self.index,
            "protocol": "molmo",
        }
        return obs, float(correct), terminated, truncated, info


for _id, _entry in (
    ("molmo_test/WaitRewarding-v0", WaitRewardingEnv),
    ("molmo_test/TextScoring-v0", TextScoringEnv),
):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_entry)


def test_an_unparsed_answer_is_a_wrong_step_even_where_the_env_rewards_wait(backend, tmp_path):
    model = scripted_model(backend, "no idea")
    config = EvalConfig("molmo_test/WaitRewarding-v0", tmp_path, episodes=1, policy="action")
    summary = run_eval(config, model, progress=False)
    assert summary["step_accuracy"] == 0.0 and summary["parse_errors"] == 2


def test_a_text_scoring_env_gets_the_raw_answer_and_the_report_splits_by_subsplit(backend, tmp_path):
    model = scripted_model(
        backend, "Click(30.0, 30.0)", "Click(30.0, 30.0)", "nonsense", "", "Click(30.0, 30.0)"
    )
    # the tiny tokenizer spends more than Molmo's 16 tokens on an answer: give it room
    config = EvalConfig(
        "molmo_test/TextScoring-v0", tmp_path, episodes="all", policy="action", max_new_tokens=64
    )
    summary = run_eval(config, model, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert {(line["episode"], line["episode_id"]) for line in lines} == {(0, 500), (1, 501), (2, 502)}
    assert [line["scored_answer"] for line in sorted(lines, key=lambda r: (r["episode"], r["step"]))] == [
        "Click(30.0, 30.0)",
        "Click(30.0, 30.0)",
        "nonsense",
        "",
        "Click(30.0, 30.0)",
        "Click(30.0, 30.0)",
    ]
    assert summary["protocol"] == "molmo" and summary["steps"] == 6
    assert summary["per_subsplit"] == {
        "IDD": {"steps": 2, "accuracy": 1.0},
        "app_unseen": {"steps": 2, "accuracy": 0.0},
        "task_unseen": {"steps": 2, "accuracy": 1.0},
    }
    assert summary["confusion"] == {"click": {"click": 4, "unparsed": 2}}
    assert summary["max_new_tokens"] == 64
    page = (tmp_path / "report.html").read_text()
    assert "app_unseen" in page and "Scored by: molmo" in page and "Click(30.0, 30.0)" in page


def test_the_token_budget_per_protocol_reaches_the_backend(backend, tmp_path):
    seen = []
    original = type(backend).generate

    def spy(self, requests, options):
        seen.append(options.max_new_tokens)
        return original(self, requests, options)

    model = scripted_model(backend, "Click(30.0, 30.0)")
    backend.generate = spy.__get__(backend)
    try:
        run_eval(EvalConfig("molmo_test/TextScoring-v0", tmp_path / "m", episodes=1), model, progress=False)
        assert set(seen) == {16}
        seen.clear()
        run_eval(EvalConfig(ENV_ID, tmp_path / "t", episodes=1), model, progress=False)
        assert set(seen) == {96}
        seen.clear()
        run_eval(EvalConfig(ENV_ID, tmp_path / "x", episodes=1, max_new_tokens=7), model, progress=False)
        assert set(seen) == {7}
    finally:
        del backend.generate
    run = json.loads((tmp_path / "x" / "run.json").read_text())
    assert run["config"]["max_new_tokens"] == 7


def test_a_failed_model_call_is_a_wrong_step_and_the_run_goes_on(backend, tmp_path):
    from molmo_agent.errors import MolmoAgentError

    def fail(request):
        raise MolmoAgentError("the server went away")

    backend.script = fail
    summary = run_eval(
        EvalConfig("molmo_test/TextScoring-v0", tmp_path, episodes=2), MolmoModel(backend), progress=False
    )
    lines = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert summary["call_errors"] == 4 and summary["step_accuracy"] == 0.0
    assert all(line["scored_answer"] == "" and "went away" in line["error"] for line in lines)


def test_episodes_all_needs_a_dataset_env(backend, tmp_path):
    from molmo_agent.errors import MolmoAgentError

    with pytest.raises(MolmoAgentError, match="fixed dataset"):
        run_eval(
            EvalConfig(ENV_ID, tmp_path, episodes="all"), scripted_model(backend, "Wait"), progress=False
        )


def test_the_token_budget_crosses_grpc_and_is_bounded_by_the_server(backend, tmp_path):
    """``grpc://`` models and the Act RPC carry max_new_tokens; the server refuses more than its limit."""
    import molmo_agent as ma
    from molmo_agent.client import ClientError
    from molmo_agent.server.app import BackgroundServer
    from molmo_agent.server.config import ServerConfig

    seen = []
    original = type(backend).generate

    def spy(self, requests, options):
        seen.append(options.max_new_tokens)
        return original(self, requests, options)

    model = scripted_model(backend, "Click(30.0, 30.0)")
    backend.generate = spy.__get__(backend)
    screen = np.full((100, 200, 3), 200, np.uint8)
    config = ServerConfig(port=0, warmup=False, max_new_tokens=64)
    try:
        with BackgroundServer(config, model) as server:
            remote = ma.load_model(f"grpc://{server.target}")
            summary = run_eval(
                EvalConfig("molmo_test/TextScoring-v0", tmp_path, episodes=1), remote, progress=False
            )
            assert set(seen) == {16} and summary["max_new_tokens"] == 16
            run = json.loads((tmp_path / "run.json").read_text())["config"]["model"]
            assert run["address"] == server.target and run["served_model_id"] == model.info.model_id
            seen.clear()
            with ma.Client(server.target) as client:
                reply = client.act(screen, "Press the button", max_new_tokens=9)
                assert seen == [9] and reply.text
                with pytest.raises(ClientError, match="max_new_tokens 65 is above"):
                    client.act(screen, "Press the button", max_new_tokens=65)
    finally:
        del backend.generate


def test_a_dataset_run_counts_corrupt_records_and_keeps_only_failing_screens(backend, tmp_path):
    """A shard cut inside its last record: the index reports it (shard, offset), the run scores the rest;
    by default only failing steps keep their screenshot (a whole-dataset run would write gigabytes)."""
    import gzip

    from molmo_envs.androidcontrol.synthetic import make_episodes
    from molmo_envs.androidcontrol.writer import write_dataset

    data = tmp_path / "data"
    shards = write_dataset(data, make_episodes(4, sizes=[(270, 600)]), num_shards=2)
    stream = gzip.decompress(shards[1].read_bytes())
    shards[1].write_bytes(gzip.compress(stream[:-100]))
    model = scripted_model(backend, "Wait", "Navigate Back", "Navigate Home", "Scroll down")
    config = EvalConfig(
        "molmo_agent/AndroidControl-v0",
        tmp_path / "run",
        episodes="all",
        env_kwargs={"data_dir": str(data), "screen_size": [270, 600]},
        max_new_tokens=64,
    )
    summary = run_eval(config, model, progress=False)
    assert summary["corrupt_records"]["count"] == 1
    record = summary["corrupt_records"]["records"][0]
    assert record["path"].endswith(shards[1].name) and record["offset"] > 0
    assert summary["episodes"] == 3
    lines = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    kept = [line for line in lines if "screenshot" in line]
    assert any(line["correct"] for line in lines) and any(not line["correct"] for line in lines)
    assert kept == [line for line in lines if not line["correct"]]
    assert len(list((tmp_path / "run" / "screens").iterdir())) == len(kept)


def test_a_record_that_breaks_after_indexing_is_skipped_and_counted(backend, tmp_path):
    import os

    from molmo_envs.androidcontrol.catalog import open_catalog
    from molmo_envs.androidcontrol.synthetic import make_episodes
    from molmo_envs.androidcontrol.writer import write_dataset

    data = tmp_path / "data"
    shards = write_dataset(data, make_episodes(4, sizes=[(270, 600)]), num_shards=2)
    open_catalog(data).close()  # index now, while the shards are intact
    stat = shards[0].stat()
    damaged = bytearray(shards[0].read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, same mtime: only reading the record finds it
    shards[0].write_bytes(bytes(damaged))
    os.utime(shards[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    model = scripted_model(backend, "Wait")
    config = EvalConfig(
        "molmo_agent/AndroidControl-v0",
        tmp_path / "run",
        episodes="all",
        env_kwargs={"data_dir": str(data), "screen_size": [270, 600]},
        max_new_tokens=64,
    )
    summary = run_eval(config, model, progress=False)
    assert summary["corrupt_records"]["count"] >= 1
    assert all(r["path"].endswith(shards[0].name) for r in summary["corrupt_records"]["records"])
    assert 2 <= summary["episodes"] < 4  # shard 1's episodes were scored
    assert "Corrupt dataset records skipped" in (tmp_path / "run" / "report.html").read_text()
