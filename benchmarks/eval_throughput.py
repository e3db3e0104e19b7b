"""Evaluation throughput (env steps/s) with the tiny model in process versus through a server or an engine.

    python benchmarks/eval_throughput.py [--episodes 8] [--out results.json]

Writes a small AndroidControl-format shard, evaluates the embedded default model on it in process
(concurrency 1), then starts `molmo-agent serve` in another process and evaluates the same episodes
through `grpc://` at concurrency 1, 4 and 8 (parallel episodes, batched by the server), then starts
`transformers serve` (an OpenAI-compatible engine) with the same checkpoint and evaluates them through
`openai://` at concurrency 1, 4 and 8. Prints a table; every row should have the same step accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import molmo_agent as ma
from molmo_agent.evaluation import EvalConfig, run_eval

ENV = "molmo_agent/AndroidControl-v0"


def _shard(folder: Path, episodes: int) -> Path:
    from molmo_envs.androidcontrol.synthetic import make_episodes
    from molmo_envs.androidcontrol.writer import write_dataset

    made = make_episodes(episodes, sizes=[(540, 1200)])
    ids = [e.episode_id for e in made]
    write_dataset(folder, made, splits={"train": [], "validation": [], "test": ids})
    return folder


def _serve(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "molmo_agent.cli", "serve", "--port", str(port), "--max-batch-size", "8"]
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.DEVNULL)
    try:
        with ma.Client(f"127.0.0.1:{port}", retries=0) as client:
            client.wait_for_serving(timeout_s=300)
    except ma.MolmoAgentError:
        process.kill()
        raise
    return process


def _engine(folder: Path) -> tuple[subprocess.Popen, int]:
    """`transformers serve` with the embedded default model on a port the OS picks, once it lists it."""
    import httpx

    from molmo_agent.backends.registry import DEFAULT_MODEL_DIR

    log = folder / "engine.log"
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(DEFAULT_MODEL_DIR)]
    command += ["--device", "cpu", "--host", "127.0.0.1", "--port", "0"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            try:
                httpx.get(f"http://127.0.0.1:{found.group(1)}/v1/models", timeout=5).raise_for_status()
                return process, int(found.group(1))
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"transformers serve did not start:\n{log.read_text()[-2000:]}")


def _run(model, data: Path, out: Path, episodes: int, concurrency: int) -> dict:
    config = EvalConfig(
        ENV,
        out,
        episodes=episodes,
        concurrency=concurrency,
        env_kwargs={"data_dir": str(data), "screen_size": (270, 600)},
    )
    started = time.perf_counter()
    summary = run_eval(config, model, progress=False)
    seconds = time.perf_counter() - started
    return {
        "steps": summary["steps"],
        "seconds": round(seconds, 2),
        "steps_per_s": round(summary["steps"] / seconds, 2),
        "step_accuracy": summary["step_accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = _shard(root / "data", args.episodes)
        results = {"local c1": _run(ma.load_model(), data, root / "local", args.episodes, 1)}
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = _serve(port)
        try:
            remote = ma.load_model(f"grpc://127.0.0.1:{port}")
            for concurrency in (1, 4, 8):
                results[f"grpc c{concurrency}"] = _run(
                    remote, data, root / f"remote{concurrency}", args.episodes, concurrency
                )
            results["server batch sizes"] = remote.backend.client.model_info()["counters"]["batch_sizes"]
        finally:
            server.terminate()
            server.wait(30)
        from molmo_agent.backends.registry import DEFAULT_MODEL_DIR

        engine, engine_port = _engine(root)
        try:
            for concurrency in (1, 4, 8):
                url = (
                    f"openai://127.0.0.1:{engine_port}/v1?model={DEFAULT_MODEL_DIR}&concurrency={concurrency}"
                )
                results[f"openai c{concurrency}"] = _run(
                    ma.load_model(url), data, root / f"engine{concurrency}", args.episodes, concurrency
                )
        finally:
            engine.terminate()
            engine.wait(30)
    for name, row in results.items():
        print(f"{name:20s} {row}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
