"""Run a model over episodes of an environment, one JSONL line per step, resumable.

Each finished episode is appended to ``steps.jsonl`` in one write, so an interrupted run loses at most
the episode in progress; a rerun with the same output folder skips the episodes already there. The
policy is Molmo's action format for AndroidControl-style envs (goal + step instruction -> action) and
pointing for instruction-following envs ("tap the blue Settings button", "point to the red cube").
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..actions import Action, ActionType
from ..agent.policies import PointPolicy
from ..agent.records import Observation
from ..errors import MolmoAgentError
from ..images import load_image
from ..model import MolmoModel
from .summary import summarize, write_report

STEPS_FILE = "steps.jsonl"
ENV_PREFIX = "molmo_envs:"


@dataclass(frozen=True)
class EvalConfig:
    env_id: str
    out_dir: Path
    episodes: int = 20
    protocol: str | None = None
    """Scoring protocol for envs that have one (AndroidControl: ``molmo`` or ``distance14``)."""
    policy: str = "auto"
    """``action`` (Molmo's action format), ``point`` (pointing-grounded) or ``auto`` (by observation)."""
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 1
    """Episodes run in parallel (one env each): with a ``grpc://`` model their requests reach the server
    together, so its dynamic batching serves them in one model call."""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.policy not in ("auto", "action", "point"):
            raise ValueError(f"policy must be auto, action or point, got {self.policy!r}")
        object.__setattr__(self, "out_dir", Path(self.out_dir))


def make_env(config: EvalConfig):
    import gymnasium as gym

    env_id = config.env_id if ":" in config.env_id else ENV_PREFIX + config.env_id
    kwargs = dict(config.env_kwargs)
    if config.protocol is not None:
        kwargs["protocol"] = config.protocol
    return gym.make(env_id, **kwargs)


def _screenshot(obs: dict[str, Any]):
    for key in ("screenshot", "image"):
        if key in obs:
            return load_image(np.asarray(obs[key]))
    raise KeyError(f"the observation has no screenshot or image (keys: {sorted(obs)})")


def _policy_kind(config: EvalConfig, obs: dict[str, Any]) -> str:
    if config.policy != "auto":
        return config.policy
    return "action" if "goal" in obs else "point"


def _decide(model: MolmoModel, kind: str, obs: dict[str, Any]) -> dict[str, Any]:
    """One prediction: the action (a ``wait`` stands in for an unusable answer or a failed model call)
    and its record. A failed call (e.g. the server is down) is recorded on the step; the run goes on."""
    try:
        return _predict(model, kind, obs)
    except MolmoAgentError as exc:
        task = str(obs.get("instruction") or obs.get("goal") or "")
        record = {"task": task, "raw_text": "", "predicted": None, "parse_error": None, "model_ms": 0.0}
        return {
            "action": Action(type=ActionType.WAIT),
            "record": {**record, "error": f"{type(exc).__name__}: {exc}"},
        }


def _predict(model: MolmoModel, kind: str, obs: dict[str, Any]) -> dict[str, Any]:
    image = _screenshot(obs)
    if kind == "action":
        step = str(obs.get("instruction") or "") or None
        result = model.act_detailed(image, str(obs["goal"]), step=step)
        action, text, reason, t = result.action, result.text, result.reason, result.timings
        prompt_goal = f"{obs['goal']} / {step or ''}"
        model_ms = t.decode_ms + t.preprocess_ms + t.model_ms + t.parse_ms
    else:
        instruction = str(obs.get("instruction") or obs.get("goal"))
        decision = PointPolicy(model).decide(Observation(image), instruction, 0, [])
        action, text, reason = decision.action, decision.raw_text, decision.reason
        prompt_goal = instruction
        model_ms = decision.preprocess_ms + decision.model_ms + decision.parse_ms
    usable = action is not None and action.type is not ActionType.DONE
    return {
        "action": action if usable else Action(type=ActionType.WAIT),
        "record": {
            "task": prompt_goal,
            "raw_text": text,
            "predicted": action.to_dict() if action is not None else None,
            "parse_error": None if action is not None else (reason or "no action"),
            "error": None,
            "model_ms": round(model_ms, 3),
        },
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Action):
        return value.to_dict()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _run_episode(env, model: MolmoModel, config: EvalConfig, episode: int, shots: Path) -> list[dict]:
    obs, info = env.reset(seed=config.seed + episode)
    lines, step = [], 0
    while True:
        started = time.perf_counter()
        decision = _decide(model, _policy_kind(config, obs), obs)
        env_started = time.perf_counter()
        next_obs, reward, terminated, truncated, info = env.step(decision["action"])
        finished = time.perf_counter()
        shot = shots / f"ep{episode:04d}_step{step:03d}.png"
        _screenshot(obs).save(shot)
        correct = bool(info["correct"]) if "correct" in info else float(reward) > 0
        record = {
            "episode": episode,
            "episode_id": _jsonable(info.get("episode_id", episode)),
            "step": step,
            **decision["record"],
            "reward": float(reward),
            "correct": correct,
            "gt_action": _jsonable(info.get("gt_action")),
            "target_box": _jsonable(info.get("target_box")),
            "reason": _jsonable(info.get("reason", "")),
            "protocol": _jsonable(info.get("protocol", config.protocol)),
            "env_ms": round((finished - env_started) * 1000, 3),
            "step_ms": round((finished - started) * 1000, 3),
            "screenshot": str(shot.relative_to(config.out_dir)),
            "done": bool(terminated or truncated),
            "success": _jsonable(info.get("success")),
        }
        lines.append(record)
        obs, step = next_obs, step + 1
        if terminated or truncated:
            return lines


def completed_episodes(path: Path) -> set[int]:
    """Episodes already in the JSONL (each is written whole, so present means finished)."""
    if not path.is_file():
        return set()
    done = set()
    for line in path.read_text().splitlines():
        try:
            done.add(int(json.loads(line)["episode"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash: that episode is rerun
    return done


def run_eval(
    config: EvalConfig,
    model: MolmoModel,
    *,
    progress: bool = True,
    on_episode: Callable[[int, list[dict]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``config.episodes`` episodes; returns the summary (also written to disk)."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    shots = config.out_dir / "screens"
    shots.mkdir(exist_ok=True)
    steps_path = config.out_dir / STEPS_FILE
    (config.out_dir / "config.json").write_text(json.dumps(_jsonable(asdict(config)), indent=2))
    done = completed_episodes(steps_path)
    todo = [e for e in range(config.episodes) if e not in done]
    envs: queue.Queue = queue.Queue()
    for _ in range(min(config.concurrency, max(len(todo), 1))):
        envs.put(make_env(config))

    def episode_on_a_free_env(episode: int) -> list[dict]:
        env = envs.get()
        try:
            return _run_episode(env, model, config, episode, shots)
        finally:
            envs.put(env)

    bar = _progress(len(todo), progress)
    correct = total = 0
    pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="eval-episode")
    try:
        futures = {pool.submit(episode_on_a_free_env, episode): episode for episode in todo}
        for future in as_completed(futures):
            lines = future.result()
            with steps_path.open("a") as out:  # a whole episode per write: resume never sees half of one
                out.write("".join(json.dumps(line) + "\n" for line in lines))
            correct += sum(line["correct"] for line in lines)
            total += len(lines)
            if bar is not None:
                bar.set_postfix(step_acc=f"{correct / max(total, 1):.1%}")
                bar.update(1)
            if on_episode is not None:
                on_episode(futures[future], lines)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        while not envs.empty():
            envs.get().close()
        if bar is not None:
            bar.close()
    records = [json.loads(line) for line in steps_path.read_text().splitlines() if line.strip()]
    summary = summarize(records, env_id=config.env_id, protocol=config.protocol, model_id=model.info.model_id)
    write_report(summary, records, config.out_dir)
    return summary


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="episode", desc="eval")
