"""Run a model over episodes of an environment, one JSONL line per step, resumable.

Each finished episode is appended to ``steps.jsonl`` in one write, so an interrupted run loses at most
the episode in progress; a rerun with the same output folder and the same configuration (``run.json``)
skips the episodes already there. The policy is Molmo's action format for AndroidControl-style envs
(goal + step instruction -> action) and pointing for instruction-following envs ("tap the blue Settings
button", "point to the red cube").

An env that scores answer text itself (``env.unwrapped.accepts_text``, AndroidControl) is given the model's
raw answer, read by the protocol's own reference; other envs get the parsed action. Either way an answer
that cannot be read, or a model call that failed, is a wrong step: never a free ``wait``.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..actions import Action, ActionType
from ..agent.policies import PointPolicy
from ..agent.records import Observation
from ..errors import MolmoAgentError
from ..extras import missing_extra
from ..model import POINT_OPTIONS, MolmoModel
from .report import write_report
from .runs import prepare_folder, run_manifest
from .steps import jsonable, step_fields
from .summary import summarize
from .views import View, to_env_pixels

logger = logging.getLogger(__name__)

STEPS_FILE = "steps.jsonl"
SCREENS = ("failures", "all", "none")
ENV_PREFIX = "molmo_envs:"
ACT_TOKENS = 96


@dataclass(frozen=True)
class EvalConfig:
    env_id: str
    out_dir: Path
    episodes: int | str = 20
    """A number, or ``"all"`` for an env that replays a fixed dataset (it exposes ``num_episodes``)."""
    protocol: str | None = None
    """Scoring protocol for envs that have one (AndroidControl: ``molmo`` or ``distance14``)."""
    policy: str = "auto"
    """``action`` (Molmo's action format), ``point`` (pointing-grounded) or ``auto`` (by observation)."""
    seed: int = 0
    """Episode ``e`` resets with seed ``seed + e``."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 1
    """Episodes run in parallel (one env each): with a ``grpc://`` model their requests reach the server
    together, so its dynamic batching serves them in one model call."""
    max_new_tokens: int | None = None
    """Answer budget of the action policy; None: 16 under protocol ``molmo`` (as Molmo's own evaluation),
    else 96. The point policy uses the pointing budget (it stops once the coordinates are written)."""
    max_episode_steps: int | None = None
    """Overrides the registration's step limit (1: only the first action counts)."""
    view: View = field(default_factory=View)
    """How the model is shown each frame (rescaled, BGR); actions are mapped back to the env's pixels."""
    screens: str = "failures"
    """Which steps' screenshots the folder keeps: ``failures`` (what the report shows; a whole-dataset run
    would otherwise write gigabytes), ``all`` (the demo's pages) or ``none``."""

    def __post_init__(self) -> None:
        if self.episodes != "all" and (not isinstance(self.episodes, int) or self.episodes < 1):
            raise ValueError(f"episodes must be >= 1 or 'all', got {self.episodes!r}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.policy not in ("auto", "action", "point"):
            raise ValueError(f"policy must be auto, action or point, got {self.policy!r}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.screens not in SCREENS:
            raise ValueError(f"screens must be one of {', '.join(SCREENS)}, got {self.screens!r}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")
        object.__setattr__(self, "out_dir", Path(self.out_dir))


@dataclass(frozen=True)
class RunSettings:
    """What a run resolved from its config and its env, fixed before the first episode."""

    policy: str
    protocol: str | None
    max_new_tokens: int
    episodes: list[int]
    accepts_text: bool
    dataset: bool
    """The env replays a fixed dataset: episode ``e`` is its ``e``-th episode (``options.episode_index``)."""


def make_env(config: EvalConfig):
    try:
        import gymnasium as gym
    except ImportError as exc:
        raise missing_extra(exc, "evaluation") from exc

    env_id = config.env_id if ":" in config.env_id else ENV_PREFIX + config.env_id
    kwargs = dict(config.env_kwargs)
    if config.protocol is not None:
        kwargs["protocol"] = config.protocol
    if config.max_episode_steps is not None:
        return gym.make(env_id, max_episode_steps=config.max_episode_steps, **kwargs)
    return gym.make(env_id, **kwargs)


def resolve(config: EvalConfig, env, episodes: Sequence[int] | None = None) -> RunSettings:
    """Policy, protocol, token budget and episode list, read from the config and the env (no reset)."""
    unwrapped = env.unwrapped
    num_episodes = getattr(unwrapped, "num_episodes", None)
    if episodes is None:
        if config.episodes == "all" and num_episodes is None:
            raise MolmoAgentError(
                f"--episodes all needs an env that replays a fixed dataset; {config.env_id} draws new "
                "episodes from its seed: pass a number"
            )
        count = int(num_episodes) if config.episodes == "all" else int(config.episodes)
        episodes = range(count)
    policy = config.policy
    if policy == "auto":
        keys = getattr(env.observation_space, "spaces", {})
        policy = "action" if "goal" in keys else "point"
    protocol = config.protocol or getattr(unwrapped, "protocol", None)
    return RunSettings(
        policy=policy,
        protocol=protocol,
        max_new_tokens=_token_budget(config, policy, protocol),
        episodes=list(episodes),
        accepts_text=bool(getattr(unwrapped, "accepts_text", False)),
        dataset=num_episodes is not None,
    )


def _token_budget(config: EvalConfig, policy: str, protocol: str | None) -> int:
    if policy == "point":
        if config.max_new_tokens is not None:
            raise MolmoAgentError(
                "max_new_tokens applies to the action policy; the point policy decodes until its "
                f"coordinates are written (at most {POINT_OPTIONS.max_new_tokens} tokens)"
            )
        return POINT_OPTIONS.max_new_tokens
    if config.max_new_tokens is not None:
        return config.max_new_tokens
    from molmo_envs.androidcontrol.scoring import PROTOCOLS, default_max_new_tokens

    return default_max_new_tokens(protocol) if protocol in PROTOCOLS else ACT_TOKENS


# -- one step ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the env is stepped with, and the model's side of the step record."""

    step_with: Action | str
    unparsed: bool
    record: dict[str, Any]


def _frame(obs: dict[str, Any]) -> np.ndarray:
    for key in ("screenshot", "image"):
        if key in obs:
            return np.asarray(obs[key])
    raise KeyError(f"the observation has no screenshot or image (keys: {sorted(obs)})")


def decide(model: MolmoModel, settings: RunSettings, view: View, obs: dict[str, Any]) -> Decision:
    """One prediction. A failed model call (e.g. the server is down) is recorded on the step and scored
    as an empty answer; the run goes on."""
    try:
        if settings.policy == "action":
            return _act(model, settings, view, obs)
        return _point(model, settings, view, obs)
    except MolmoAgentError as exc:
        record = {"task": _task(settings.policy, obs), "raw_text": "", "predicted": None}
        record |= {"parse_error": None, "model_ms": 0.0, "error": f"{type(exc).__name__}: {exc}"}
        return Decision("" if settings.accepts_text else Action(type=ActionType.WAIT), True, record)


def _task(policy: str, obs: dict[str, Any]) -> str:
    if policy == "action":
        return f"{obs['goal']} / {obs.get('instruction') or ''}"
    return str(obs.get("instruction") or obs.get("goal"))


def _act(model: MolmoModel, settings: RunSettings, view: View, obs: dict[str, Any]) -> Decision:
    image, transform = view.present(_frame(obs))
    step = str(obs.get("instruction") or "") or None
    result = model.act_detailed(image, str(obs["goal"]), step=step, max_new_tokens=settings.max_new_tokens)
    action = to_env_pixels(result.action, transform) if result.action is not None else None
    t = result.timings
    record = _model_record(_task("action", obs), result.text, action, result.reason, t.total_ms)
    if settings.accepts_text:
        return Decision(result.text, action is None, record)
    return Decision(action or Action(type=ActionType.WAIT), action is None, record)


def _point(model: MolmoModel, settings: RunSettings, view: View, obs: dict[str, Any]) -> Decision:
    image, transform = view.present(_frame(obs))
    instruction = _task("point", obs)
    decision = PointPolicy(model).decide(Observation(image), instruction, 0, [])
    action = to_env_pixels(decision.action, transform) if decision.action is not None else None
    model_ms = decision.preprocess_ms + decision.model_ms + decision.parse_ms
    record = _model_record(instruction, decision.raw_text, action, decision.reason, model_ms)
    return Decision(action or Action(type=ActionType.WAIT), action is None, record)


def _model_record(task: str, text: str, action: Action | None, reason: str | None, ms: float) -> dict:
    return {
        "task": task,
        "raw_text": text,
        "predicted": action.to_dict() if action is not None else None,
        "parse_error": None if action is not None else (reason or "no action"),
        "error": None,
        "model_ms": round(ms, 3),
    }


# -- episodes ---------------------------------------------------------------------------------------------


def run_episode(
    env,
    model: MolmoModel,
    config: EvalConfig,
    settings: RunSettings,
    episode: int,
    shots: Path | None = None,
) -> list[dict]:
    """Play one episode to its end; one record per step (screenshots saved under ``shots`` if given)."""
    options = {"episode_index": episode} if settings.dataset else None
    try:
        obs, info = env.reset(seed=config.seed + episode, options=options)
    except ValueError as exc:
        if getattr(exc, "record", None) is None:  # not a dataset record that broke since it was indexed
            raise
        logger.warning("episode %d skipped: %s", episode, exc)  # the env lists it in corrupt_records
        return []
    lines: list[dict] = []
    while True:
        started = time.perf_counter()
        decision = decide(model, settings, config.view, obs)
        env_started = time.perf_counter()
        next_obs, reward, terminated, truncated, after = env.step(decision.step_with)
        finished = time.perf_counter()
        record = {
            "episode": episode,
            "episode_id": jsonable(after.get("episode_id", episode)),
            "seed": config.seed + episode,
            "step": len(lines),
            **decision.record,
            **step_fields(info, after, reward, decision.record["predicted"], decision.unparsed),
            "env_ms": round((finished - env_started) * 1000, 3),
            "step_ms": round((finished - started) * 1000, 3),
            "done": bool(terminated or truncated),
        }
        if shots is not None and (config.screens == "all" or not record["correct"]):
            shot = shots / f"ep{episode:04d}_step{len(lines):03d}.png"
            _image(obs).save(shot)
            record["screenshot"] = f"{shots.name}/{shot.name}"
        lines.append(record)
        obs, info = next_obs, after
        if terminated or truncated:
            return lines


def _image(obs: dict[str, Any]):
    """The frame as the env rendered it (the env's pixels, whatever view the model was shown)."""
    from PIL import Image

    return Image.fromarray(_frame(obs).astype(np.uint8))


def play(
    config: EvalConfig,
    model: MolmoModel,
    settings: RunSettings,
    episodes: Sequence[int],
    shots: Path | None = None,
    first_env=None,
    corrupt: list[dict] | None = None,
) -> Iterator[tuple[int, list[dict]]]:
    """Episodes as they finish (in parallel with ``concurrency`` > 1), each on an env of its own.

    ``corrupt`` receives the dataset records the envs skipped as corrupt (shard and offset), if any.
    """
    envs: queue.Queue = queue.Queue()
    workers = min(config.concurrency, max(len(episodes), 1))
    if first_env is not None:
        envs.put(first_env)
    for _ in range(workers - envs.qsize()):
        envs.put(make_env(config))

    def on_a_free_env(episode: int) -> list[dict]:
        env = envs.get()
        try:
            return run_episode(env, model, config, settings, episode, shots)
        finally:
            envs.put(env)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval-episode")
    try:
        futures = {pool.submit(on_a_free_env, episode): episode for episode in episodes}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        while not envs.empty():
            env = envs.get()
            if corrupt is not None:
                corrupt.extend(_corrupt_records(env))
            env.close()


def _corrupt_records(env) -> list[dict]:
    return [
        {"path": str(r.path), "offset": int(r.offset), "reason": str(r.reason)}
        for r in getattr(env.unwrapped, "corrupt_records", [])
    ]


def evaluate_in_memory(
    config: EvalConfig, model: MolmoModel, episodes: Sequence[int] | None = None
) -> tuple[dict[str, Any], list[dict]]:
    """The same episodes and scoring as :func:`run_eval`, without files: (summary, step records).

    For callers that score often (the trainer's periodic evaluation, benchmarks) and keep only numbers.
    """
    env = make_env(config)
    settings = resolve(config, env, episodes)
    manifest = run_manifest(config, settings, env, model, hash_weights=False)
    by_episode = dict(play(config, model, settings, settings.episodes, first_env=env))
    records = [line for episode in settings.episodes for line in by_episode[episode]]
    return summarize(records, manifest), records


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
    force: bool = False,
    on_episode: Callable[[int, list[dict]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model``; returns the summary (also written to disk with the report).

    The folder's ``run.json`` pins the configuration: a rerun with another one is refused
    (:class:`~molmo_agent.evaluation.runs.RunMismatchError`) unless ``force`` starts the folder over.
    """
    env = make_env(config)
    try:
        settings = resolve(config, env)
        manifest = run_manifest(config, settings, env, model)
        prepare_folder(config.out_dir, manifest, force=force)
    except BaseException:
        env.close()
        raise
    shots = config.out_dir / "screens"
    shots.mkdir(exist_ok=True)
    steps_path = config.out_dir / STEPS_FILE
    done = completed_episodes(steps_path)
    todo = [e for e in settings.episodes if e not in done]
    bar = _progress(len(todo), progress)
    correct = total = 0
    corrupt: list[dict] = []
    try:
        for episode, lines in play(config, model, settings, todo, shots, first_env=env, corrupt=corrupt):
            with steps_path.open("a") as out:  # a whole episode per write: resume never sees half of one
                out.write("".join(json.dumps(line) + "\n" for line in lines))
            correct += sum(line["correct"] for line in lines)
            total += len(lines)
            if bar is not None:
                bar.set_postfix(step_acc=f"{correct / max(total, 1):.1%}")
                bar.update(1)
            if on_episode is not None:
                on_episode(episode, lines)
    finally:
        if bar is not None:
            bar.close()
    wanted = set(settings.episodes)
    records = [json.loads(line) for line in steps_path.read_text().splitlines() if line.strip()]
    records = [r for r in records if r["episode"] in wanted]
    summary = summarize(records, manifest)
    unique = {(r["path"], r["offset"]): r for r in corrupt}
    summary["corrupt_records"] = {"count": len(unique), "records": list(unique.values())[:100]}
    write_report(summary, records, config.out_dir)
    return summary


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="episode", desc="eval")
