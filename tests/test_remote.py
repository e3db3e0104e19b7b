"""One model, anywhere: a Molmo served over gRPC used exactly like a local one (loopback, tiny model)."""

from __future__ import annotations

import json
import signal

import pytest
from server_helpers import free_port, start_cli_server

import molmo_agent as ma
from molmo_agent.evaluation import EvalConfig, run_eval
from molmo_agent.server.app import BackgroundServer
from molmo_agent.server.config import ServerConfig

ANDROID = "molmo_agent/AndroidControl-v0"


def _env_kwargs(android_control_dir) -> dict:
    return {"data_dir": str(android_control_dir), "screen_size": (270, 600)}


def _steps(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def served(tiny_dir):
    config = ServerConfig(port=0, warmup=False, max_batch_size=8, max_batch_wait_ms=50)
    with BackgroundServer(config, ma.load_model(tiny_dir)) as server:
        yield server


def test_a_grpc_model_has_the_local_models_interface_and_answers(tiny_dir, served):
    from PIL import Image

    local, remote = ma.load_model(tiny_dir), ma.load_model(f"grpc://{served.target}")
    assert remote.family == local.family == "molmo2"
    assert remote.info.model_id == local.info.model_id
    images = [Image.new("RGB", (320, 200), (200, 30, 30)), Image.new("RGB", (150, 300), (30, 30, 200))]
    prompts = ["Describe.", "What is this?"]
    assert remote.generate(images, prompts) == local.generate(images, prompts)
    assert remote.point(images[0], "the red wall") == local.point(images[0], "the red wall")
    assert remote.act(images[1], "Open settings") == local.act(images[1], "Open settings")
    assert remote.count(images[0], "walls") == local.count(images[0], "walls")


def test_evaluation_through_the_server_equals_local_evaluation(
    tiny_dir, served, android_control_dir, tmp_path
):
    results = {}
    for name, model in (
        ("local", ma.load_model(tiny_dir)),
        ("remote", ma.load_model(f"grpc://{served.target}")),
    ):
        config = EvalConfig(
            ANDROID,
            tmp_path / name,
            episodes=2,
            protocol="molmo",
            env_kwargs=_env_kwargs(android_control_dir),
        )
        results[name] = (run_eval(config, model, progress=False), _steps(tmp_path / name))
    (local_summary, local_steps), (remote_summary, remote_steps) = results["local"], results["remote"]
    keys = ("episode", "step", "raw_text", "predicted", "correct", "reward", "gt_action")
    assert [{k: s[k] for k in keys} for s in local_steps] == [{k: s[k] for k in keys} for s in remote_steps]
    assert local_summary["step_accuracy"] == remote_summary["step_accuracy"]
    assert local_summary["confusion"] == remote_summary["confusion"]


def test_parallel_episodes_are_batched_by_the_server(served, android_control_dir, tmp_path):
    remote = ma.load_model(f"grpc://{served.target}")
    before = dict(remote.backend.client.model_info()["counters"].get("batch_sizes", {}))
    config = EvalConfig(
        ANDROID, tmp_path, episodes=3, concurrency=3, env_kwargs=_env_kwargs(android_control_dir)
    )
    summary = run_eval(config, remote, progress=False)
    assert summary["episodes"] == 3 and summary["call_errors"] == 0
    after = remote.backend.client.model_info()["counters"]["batch_sizes"]
    grown = {int(size): count - before.get(size, 0) for size, count in after.items()}
    assert any(size > 1 and count > 0 for size, count in grown.items()), grown


def test_killing_and_restarting_the_server_mid_evaluation(tiny_dir, android_control_dir, tmp_path):
    port = free_port()
    server = start_cli_server(tiny_dir, port)
    model = ma.load_model(f"grpc://127.0.0.1:{port}?timeout=10")
    config = EvalConfig(ANDROID, tmp_path, episodes=3, env_kwargs=_env_kwargs(android_control_dir))
    state = {"server": server}

    def kill_then_restart(episode: int, lines: list[dict]) -> None:
        if episode == 0:
            state["server"].send_signal(signal.SIGTERM)
            state["server"].wait(30)
        elif episode == 1:
            state["server"] = start_cli_server(tiny_dir, port)

    try:
        summary = run_eval(config, model, progress=False, on_episode=kill_then_restart)
    finally:
        state["server"].terminate()
        state["server"].wait(30)
    steps = _steps(tmp_path)
    by_episode = {e: [s for s in steps if s["episode"] == e] for e in range(3)}
    assert all(s["error"] is None for s in by_episode[0]), "steps before the outage are kept as they were"
    assert by_episode[1] and all("UNAVAILABLE" in s["error"] for s in by_episode[1])
    # episode 2 may start while the server is still loading (the callback does not pause the run): those
    # steps are clear UNAVAILABLE errors, and the same consumer recovers without being restarted
    late = by_episode[2]
    assert all(s["error"] is None or "UNAVAILABLE" in s["error"] for s in late)
    assert summary["call_errors"] == sum(1 for s in steps if s["error"])
    assert summary["episodes"] == 3
    # the restarted server is SERVING (start_cli_server waited for it): the same consumer reconnects,
    # whatever the machine's load did to episode 2's timing
    rerun = EvalConfig(ANDROID, tmp_path / "after", episodes=1, env_kwargs=_env_kwargs(android_control_dir))
    state["server"] = start_cli_server(tiny_dir, port)
    try:
        after = run_eval(rerun, model, progress=False)
    finally:
        state["server"].terminate()
        state["server"].wait(30)
    assert after["call_errors"] == 0 and after["steps"] > 0


def test_unreachable_and_malformed_addresses_are_clear_errors():
    with pytest.raises(ma.ModelNotFoundError, match=r"no molmo-agent server answers at 127\.0\.0\.1:9"):
        ma.load_model("grpc://127.0.0.1:9?timeout=2")
    with pytest.raises(ma.ModelNotFoundError, match="grpc://HOST:PORT"):
        ma.load_model("grpc://no-port-here")


def test_cli_point_with_a_grpc_model(served, capsys):
    from molmo_agent.cli import main

    assert main(["point", "sample", "the red mug", "--model", f"grpc://{served.target}", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["image_size"] == [960, 640]


TIMING_FIELDS = ("timings_ms",)


def _cli_point_json(model: str | None, capsys) -> dict:
    from molmo_agent.cli import main

    args = ["point", "sample", "the red mug", "--json"] + (["--model", model] if model else [])
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    return {key: value for key, value in report.items() if key not in TIMING_FIELDS}


def test_cli_point_json_through_grpc_equals_the_local_model_label_included(capsys):
    """Point queries stop after the coordinates, over the wire too: the label is the query's, as locally."""
    with BackgroundServer(ServerConfig(port=0, warmup=False), ma.load_model(None)) as server:
        remote = _cli_point_json(f"grpc://{server.target}", capsys)
    local = _cli_point_json(None, capsys)
    assert local["points"], "the embedded model points at the sample's red mug"
    assert local["points"][0]["label"] == "red mug"
    assert remote.keys() == local.keys()
    for key in local:
        assert remote[key] == local[key], key
