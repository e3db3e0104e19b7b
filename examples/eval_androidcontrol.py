"""Evaluate a Molmo checkpoint on AndroidControl the way the Molmo paper scored it.

    python examples/eval_androidcontrol.py --data-dir /data/android_control --model allenai/Molmo-7B-D-0924

``--data-dir`` holds the released GZIP TFRecord shards plus ``splits.json`` and ``test_subsplits.json``.
Without it, a small synthetic shard in the official format is written to a temporary folder and the
embedded default model runs on it (offline), which shows the pipeline, not a meaningful score.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from molmo_agent.evaluation import EvalConfig, run_eval
from molmo_agent.model import load_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir")
    parser.add_argument("--model", default=None)
    parser.add_argument(
        "--episodes",
        type=lambda v: v if v == "all" else int(v),
        default="all",
        help="a number, or 'all' (every episode of the split)",
    )
    parser.add_argument("--protocol", choices=["molmo", "distance14"], default="molmo")
    parser.add_argument("--task-level", choices=["low", "high"], default="low")
    parser.add_argument(
        "--subsplit", default="IDD", help="IDD (the paper's), app_unseen, ...; 'none' for all"
    )
    parser.add_argument("--out", default="androidcontrol-eval")
    args = parser.parse_args()

    data_dir = args.data_dir or _synthetic_shard()
    env_kwargs = {
        "data_dir": data_dir,
        "split": "test",
        "subsplit": None if args.subsplit == "none" else args.subsplit,
        "task_level": args.task_level,
    }
    config = EvalConfig(
        "molmo_agent/AndroidControl-v0",
        Path(args.out),
        episodes=args.episodes,
        protocol=args.protocol,
        policy="action",
        env_kwargs=env_kwargs,
    )
    summary = run_eval(config, load_model(args.model))
    print(
        f"step accuracy ({summary['protocol']}): {summary['step_accuracy']:.1%} over {summary['steps']} steps"
    )
    for action_type, accuracy in summary["per_type_accuracy"].items():
        print(f"  {action_type:14s} {accuracy:.1%} ({summary['per_type_steps'][action_type]} steps)")
    print(f"report: {config.out_dir / 'report.html'}")


def _synthetic_shard() -> str:
    from molmo_envs.androidcontrol.synthetic import make_episodes
    from molmo_envs.androidcontrol.writer import write_dataset

    folder = tempfile.mkdtemp(prefix="androidcontrol-synthetic-")
    episodes = make_episodes(4)
    ids = [e.episode_id for e in episodes]
    write_dataset(
        folder, episodes, splits={"train": [], "validation": [], "test": ids}, subsplits={"IDD": ids}
    )
    print(f"no --data-dir: wrote a synthetic shard in the official format to {folder}")
    return folder


if __name__ == "__main__":
    main()
