"""``molmo_agent/AndroidControl-v0``: offline step-accuracy evaluation on AndroidControl episodes."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

from molmo_agent.actions import Action
from molmo_agent.errors import ActionValidationError
from molmo_agent.geometry import ResizeTransform
from molmo_agent.parsing import format_action_molmo

from .androidcontrol.catalog import open_catalog
from .androidcontrol.episodes import Element, Episode
from .androidcontrol.scoring import PROTOCOLS, StepVerdict, Truth, ground_truth, score_answer
from .androidcontrol.sources import EpisodeSource, InMemoryEpisodes
from .androidcontrol.step_list import read_step_list
from .androidcontrol.tfrecord import CorruptRecord
from .spaces import MAX_TEXT, UnicodeText, action_space, to_action

logger = logging.getLogger(__name__)

TASK_LEVELS = ("low", "high")
MAX_ELEMENTS = 256
MAX_SCREEN_SIDE = 16384


def _map_action(action: Action, transform: ResizeTransform, to_original: bool) -> Action:
    """``action`` with its points moved between dataset pixels and observation pixels (clamped at 0)."""
    convert = transform.to_original if to_original else transform.to_transformed
    changes = {}
    for xs, ys in (("x", "y"), ("x2", "y2")):
        x, y = getattr(action, xs), getattr(action, ys)
        if x is not None and y is not None:
            changes[xs], changes[ys] = (max(v, 0.0) for v in convert(x, y))
    return dataclasses.replace(action, **changes) if changes else action


def _map_box(box: Sequence[float], transform: ResizeTransform) -> tuple[float, float, float, float]:
    left, top = transform.to_transformed(box[0], box[1])
    right, bottom = transform.to_transformed(box[2], box[3])
    return left, top, right, bottom


def _clip_text(text: str) -> str:
    return text[:MAX_TEXT]


def _png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the image header (the reference's ``dims``), without decoding pixels."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _plan(source: EpisodeSource, listed: dict[int, list[int]] | None) -> list[tuple[int, tuple[int, ...]]]:
    """(source index, step indices to score) for every episode the env plays, in the source's order."""
    plan, unknown_steps = [], 0
    ids = source.episode_ids()
    for index, episode_id in enumerate(ids):
        count = source.num_steps(index)
        if listed is None:
            steps = tuple(range(count))
        else:
            wanted = listed.get(episode_id, [])
            steps = tuple(s for s in wanted if s < count)
            unknown_steps += len(wanted) - len(steps)
        if steps:
            plan.append((index, steps))
    if listed is not None:
        missing = set(listed) - set(ids)
        if missing or unknown_steps:
            logger.warning(
                "the step list names %d episodes not in this split and %d steps past their episode's end; "
                "they are left out",
                len(missing),
                unknown_steps,
            )
    return plan


class AndroidControlEnv(gym.Env):
    """Replay AndroidControl episodes and score each answer against the recorded step.

    ## Description

    AndroidControl (Li et al., 2024) records people completing tasks on Android phones: per step a
    screenshot, the accessibility forest, the action taken and a step instruction. This env is an
    *offline* evaluation: whatever the policy does, the episode advances along the recorded trajectory,
    and each step earns 1 if the answer matches the recorded action under the chosen protocol, computed
    exactly as that protocol's released evaluator does (``molmo``: Molmo's; ``distance14``: OS-Atlas's;
    see :mod:`molmo_envs.androidcontrol.scoring`). The mean reward per step is the step accuracy. Molmo
    reported 88.7% (low-level) and 69.0% (high-level) on the IDD test episodes under ``molmo``.

    Episodes are read from the shards one at a time through a cached index
    (:func:`~molmo_envs.androidcontrol.catalog.open_catalog`): memory holds one episode, not the split.

    ## Action Space

    ``molmo_envs.spaces.action_space(screen_size)``: a ``Dict`` with a ``type`` index and every field any
    type needs, coordinates in observation pixels. Two more forms are accepted by ``step``: the model's
    **raw answer text** (``"Action: Click(45.3, 71.2)"``), scored exactly as the protocol's reference reads
    it, and a :class:`molmo_agent.Action`. Actions are written as the answer Molmo would give (percent
    with one decimal) and scored the same way. An answer the reference cannot read (or an action that
    does not validate) is a wrong step, never a substitute action.

    ## Observation Space

    A ``Dict``:

    - ``screenshot``: ``Box(0, 255, (H, W, 3), uint8)``, the current screen resized to ``screen_size``.
    - ``goal``: the episode's goal (text, at most 512 characters).
    - ``instruction``: the current step's instruction in low-level mode; empty in high-level mode and
      after the last step.
    - ``screen_size``: ``(W, H)`` of the screenshot.
    - ``elements``: visible accessibility elements: ``boxes`` ``(max_elements, 4)`` float32
      ``(left, top, right, bottom)`` in observation pixels, zero-padded, and ``count``. Their text, content
      description and class are in ``info["elements"]``.

    ## Rewards

    1.0 for a correct step, 0.0 otherwise.

    ## Starting State

    The first listed step of an episode. Episodes come in dataset order (shard, then position; the given
    order for ``episodes``), cycling; a seeded ``reset`` restarts that order, and
    ``reset(options={"episode_id": N})`` or ``options={"episode_index": i}`` picks one.

    ## Episode End

    Terminated after the episode's last scored step (every recorded action, or the listed ones). Never
    truncated by the env itself; the registered id adds a ``TimeLimit`` of 50 steps (longer than any
    recorded episode).

    ## Information

    ``reset``: ``episode_id``, ``step`` (the dataset's step index), ``num_steps``, ``elements`` (dicts for
    the observed elements), ``protocol``, ``subsplit`` (IDD, app_unseen, task_unseen, category_unseen or
    ``None``). ``step`` adds, for the step just scored: ``step`` (its index), ``correct``, ``reason``,
    ``answer`` (the text scored), ``predicted_type`` (the action type as the reference read the answer,
    ``"unparsed"`` if none), ``gt_answer`` (the ground truth as the reference stores it), ``gt_action``
    (our Action JSON, observation pixels), ``gt_action_android_control`` (the dataset's JSON),
    ``predicted_action`` (when an action was given), ``target_box`` (observation pixels, or ``None``).

    ## Arguments

    - ``data_dir``: folder with the shards, ``splits.json`` and ``test_subsplits.json``.
    - ``split``: ``train``, ``validation`` or ``test``; ``subsplit``: e.g. ``IDD`` (test only; Molmo's test
      set is ``split="test", subsplit="IDD"``).
    - ``task_level``: ``low`` (goal plus step instruction) or ``high`` (goal only).
    - ``protocol``: ``molmo`` or ``distance14``.
    - ``steps``: a file of (episode, step) pairs to score instead of every step (e.g. OS-Atlas's
      ``eval/data/ac_idx.txt``, its 7,708-step sample; formats in :mod:`molmo_envs.androidcontrol.step_list`).
    - ``screen_size``: ``(W, H)`` of the observed screenshot.
    - ``episodes``: episodes already loaded (then ``data_dir`` may be ``None``).
    - ``max_elements``: rows of ``elements.boxes``.

    ```python
    import gymnasium as gym

    env = gym.make("molmo_envs:molmo_agent/AndroidControl-v0", data_dir="android_control", subsplit="IDD")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("Action: Click(45.3, 71.2)")
    ```
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 1}
    accepts_text: ClassVar[bool] = True
    """``step`` takes the model's raw answer text (the evaluation harness checks this)."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        split: str | None = "test",
        subsplit: str | None = None,
        task_level: str = "low",
        protocol: str = "molmo",
        screen_size: tuple[int, int] = (1080, 2400),
        episodes: Sequence[Episode] | None = None,
        steps: str | Path | None = None,
        max_elements: int = MAX_ELEMENTS,
        render_mode: str | None = None,
    ) -> None:
        if task_level not in TASK_LEVELS:
            raise ValueError(f"task_level must be one of {TASK_LEVELS}, got {task_level!r}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        width, height = (int(v) for v in screen_size)
        if not (0 < width <= MAX_SCREEN_SIDE and 0 < height <= MAX_SCREEN_SIDE):
            raise ValueError(
                f"screen_size must be (width, height) in 1..{MAX_SCREEN_SIDE}, got {screen_size!r}"
            )
        if episodes is not None:
            self._source: EpisodeSource = InMemoryEpisodes(episodes)
        elif data_dir is not None:
            self._source = open_catalog(data_dir, split, subsplit)
        else:
            raise ValueError("pass data_dir (the AndroidControl folder) or episodes")
        self._plan = _plan(self._source, read_step_list(steps) if steps is not None else None)
        if not self._plan:
            where = (
                f"the step list {steps}" if steps is not None else f"split={split!r} subsplit={subsplit!r}"
            )
            raise ValueError(f"no episodes with steps to score in {where} of {data_dir}")
        ids = self._source.episode_ids()
        self._position_by_id = {ids[index]: position for position, (index, _) in enumerate(self._plan)}
        self.task_level, self.protocol, self.render_mode = task_level, protocol, render_mode
        self.screen_size = (width, height)
        self.max_elements = int(max_elements)

        box_high = np.tile(np.array([width, height, width, height], dtype=np.float32), (self.max_elements, 1))
        self.observation_space = spaces.Dict(
            {
                "screenshot": spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8),
                "goal": UnicodeText(),
                "instruction": UnicodeText(),
                "screen_size": spaces.Box(1, MAX_SCREEN_SIDE, shape=(2,), dtype=np.int64),
                "elements": spaces.Dict(
                    {
                        "boxes": spaces.Box(0.0, box_high, dtype=np.float32),
                        "count": spaces.Discrete(self.max_elements + 1),
                    }
                ),
            }
        )
        self.action_space = action_space(self.screen_size)

        self._cursor = 0
        self._episode: Episode | None = None
        self._steps: tuple[int, ...] = ()
        self._position = 0
        self._truth: tuple[int, Truth] | None = None

    # --- the dataset ------------------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        """Episodes this env plays (``reset(options={"episode_index": i})`` for ``i`` below this)."""
        return len(self._plan)

    @property
    def episode_ids(self) -> list[int]:
        """The ids of the episodes this env plays, in play order."""
        ids = self._source.episode_ids()
        return [ids[index] for index, _ in self._plan]

    @property
    def num_scored_steps(self) -> int:
        """Steps scored over all episodes: the denominator of a full run's step accuracy."""
        return sum(len(steps) for _, steps in self._plan)

    @property
    def corrupt_records(self) -> list[CorruptRecord]:
        """Records skipped as corrupt (shard and offset), while indexing or reading."""
        return list(self._source.corrupt)

    # --- the current step -------------------------------------------------------------------------------

    @property
    def episode(self) -> Episode:
        if self._episode is None:
            raise RuntimeError("call reset() before using the environment")
        return self._episode

    @property
    def done(self) -> bool:
        return self._position >= len(self._steps)

    @property
    def _step(self) -> int:
        """The dataset's index of the step being scored (after the last one: the final screen's index)."""
        return self._steps[self._position] if not self.done else self._steps[-1] + 1

    @property
    def _screen_index(self) -> int:
        return min(self._step, self.episode.num_steps)

    def _screen_size(self, index: int) -> tuple[int, int]:
        return _png_size(self.episode.screenshots[index])

    def _transform(self, index: int | None = None) -> ResizeTransform:
        index = self._screen_index if index is None else index
        return ResizeTransform.resize(self._screen_size(index), self.screen_size)

    @property
    def goal(self) -> str:
        """The episode's goal."""
        return self.episode.goal

    @property
    def instruction(self) -> str:
        """The current step's instruction; empty in high-level mode or after the last step."""
        if self.task_level == "high" or self.done:
            return ""
        return self.episode.step_instructions[self._step]

    @property
    def subsplit(self) -> str | None:
        """The current episode's test subsplit (IDD, app_unseen, task_unseen, category_unseen), if any."""
        return self._source.subsplit_of(self.episode.episode_id)

    def gt_action(self) -> Action:
        """The recorded action of the current step, in observation pixels."""
        if self.done:
            raise RuntimeError("the episode is over: there is no ground-truth action left; call reset()")
        return _map_action(self.episode.action(self._step), self._transform(), to_original=False)

    def elements(self) -> list[Element]:
        """The current screen's visible elements, in dataset pixels."""
        return self.episode.elements(self._screen_index)

    def ground_truth(self) -> Truth:
        """The current step's ground truth as the protocol's reference stores it."""
        if self.done:
            raise RuntimeError("the episode is over; call reset()")
        index = self._step
        if self._truth is None or self._truth[0] != index:
            episode = self.episode
            truth = ground_truth(
                self.protocol,
                episode.actions[index],
                self._screen_size(index),
                episode.accessibility_trees[index],
            )
            self._truth = (index, truth)
        return self._truth[1]

    # --- gymnasium API ----------------------------------------------------------------------------------

    def _observation(self) -> dict[str, Any]:
        index = self._screen_index
        image = self.episode.screenshot(index)
        if (image.shape[1], image.shape[0]) != self.screen_size:
            image = np.asarray(Image.fromarray(image).resize(self.screen_size, Image.Resampling.BILINEAR))
        transform = self._transform(index)
        elements = self.elements()[: self.max_elements]
        boxes = np.zeros((self.max_elements, 4), dtype=np.float32)
        if elements:
            mapped = np.array([_map_box(e.bounds, transform) for e in elements], dtype=np.float32)
            boxes[: len(elements)] = np.clip(mapped, 0.0, self.observation_space["elements"]["boxes"].high[0])
        return {
            "screenshot": image,
            "goal": _clip_text(self.goal),
            "instruction": _clip_text(self.instruction),
            "screen_size": np.array(self.screen_size, dtype=np.int64),
            "elements": {"boxes": boxes, "count": len(elements)},
        }

    def _info(self) -> dict[str, Any]:
        transform = self._transform()
        elements = []
        for element in self.elements()[: self.max_elements]:
            entry = element.to_dict()
            entry["bounds"] = list(_map_box(element.bounds, transform))
            elements.append(entry)
        return {
            "episode_id": self.episode.episode_id,
            "step": self._step,
            "num_steps": self.episode.num_steps,
            "elements": elements,
            "protocol": self.protocol,
            "subsplit": self.subsplit,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if seed is not None:
            self._cursor = 0
        if "episode_id" in options:
            episode_id = int(options["episode_id"])
            if episode_id not in self._position_by_id:
                raise ValueError(f"episode {episode_id} is not among this env's {self.num_episodes} episodes")
            position = self._position_by_id[episode_id]
        elif "episode_index" in options:
            position = int(options["episode_index"]) % self.num_episodes
        else:
            position = self._cursor
        self._cursor = (position + 1) % self.num_episodes
        index, self._steps = self._plan[position]
        self._episode, self._position, self._truth = None, 0, None
        self._episode = self._source.load(index)  # CorruptRecordError: a record that broke since indexing
        return self._observation(), self._info()

    def _answer(self, action: str | Action | dict[str, Any]) -> tuple[str, dict[str, Any] | None, str]:
        """The text to score, the action given (as JSON), and why the text is empty when it is."""
        if isinstance(action, str):
            return action, None, ""
        try:
            given = to_action(action)
        except ActionValidationError as exc:
            return "", None, f"invalid action: {exc}"
        index = self._step
        in_dataset_pixels = _map_action(given, self._transform(index), to_original=True)
        try:
            return format_action_molmo(in_dataset_pixels, self._screen_size(index)), given.to_dict(), ""
        except (KeyError, ValueError) as exc:
            return "", given.to_dict(), f"{given.type} is not an AndroidControl action ({exc})"

    def score(self, action: str | Action | dict[str, Any]) -> StepVerdict:
        """Score an answer or action (observation pixels) on the current step without advancing."""
        if self.done:
            raise RuntimeError("the episode is over; call reset()")
        answer, _, problem = self._answer(action)
        verdict = score_answer(self.protocol, answer, self.ground_truth())
        return dataclasses.replace(verdict, reason=problem) if problem else verdict

    def step(
        self, action: str | Action | dict[str, Any]
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.done:
            raise RuntimeError("the episode is over; call reset()")
        answer, given, problem = self._answer(action)
        verdict = score_answer(self.protocol, answer, self.ground_truth())
        transform, index = self._transform(), self._step
        gt = self.gt_action()
        target = None if verdict.target_box is None else _map_box(verdict.target_box, transform)
        self._position += 1
        info = self._info()
        info.update(
            step=index,
            correct=verdict.correct,
            reason=problem or verdict.reason,
            answer=answer,
            predicted_type=verdict.predicted_type,
            gt_answer=verdict.truth,
            gt_action=gt.to_dict(),
            gt_action_android_control=dict(self.episode.actions[index]),
            predicted_action=given,
            target_box=target,
        )
        return self._observation(), float(verdict.correct), self.done, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self._observation()["screenshot"]
        return None

    def close(self) -> None:
        self._source.close()
        super().close()
