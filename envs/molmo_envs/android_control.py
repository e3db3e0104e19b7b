"""``molmo_agent/AndroidControl-v0``: offline step-accuracy evaluation on AndroidControl episodes."""

from __future__ import annotations

import dataclasses
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
from molmo_agent.prompts import act_prompt

from .androidcontrol.episodes import Element, Episode, load_episodes
from .androidcontrol.scoring import PROTOCOLS, StepVerdict, score_step
from .spaces import MAX_TEXT, UnicodeText, action_space, to_action

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


class AndroidControlEnv(gym.Env):
    """Replay AndroidControl episodes and score each predicted step against the recorded one.

    ## Description

    AndroidControl (Li et al., 2024) records people completing tasks on Android phones: per step a
    screenshot, the accessibility forest, the action taken and a step instruction. This env is an
    *offline* evaluation: whatever the policy does, the episode advances along the recorded trajectory,
    and each step earns 1 if the predicted action matches the recorded one under the chosen scoring
    protocol (``molmo``, as Molmo's paper scored it, or ``distance14``, as OS-Atlas and UI-TARS did; see
    :mod:`molmo_envs.androidcontrol.scoring`). The mean reward per step is the step accuracy. Molmo
    reported 88.7% (low-level) and 69.0% (high-level) on the IDD test subsplit under ``molmo``.

    ## Action Space

    ``molmo_envs.spaces.action_space(screen_size)``: a ``Dict`` with a ``type`` index and every field any
    type needs, coordinates in observation pixels. A :class:`molmo_agent.Action` is accepted as well. An
    action that does not validate (e.g. ``open_app`` with no name) scores 0 and the episode goes on.

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

    The first screen of an episode. Episodes come in a fixed order (ascending episode id when read from
    ``data_dir``, the given order for ``episodes``), cycling; a seeded
    ``reset`` restarts that order, and ``reset(options={"episode_id": N})`` or
    ``options={"episode_index": i}`` picks one.

    ## Episode End

    Terminated after the last recorded action has been scored. Never truncated by the env itself; the
    registered id adds a ``TimeLimit`` of 50 steps (longer than any recorded episode).

    ## Information

    ``reset``: ``episode_id``, ``step`` (0), ``num_steps``, ``elements`` (dicts for the observed elements),
    ``protocol``. ``step`` adds, for the step just scored: ``gt_action`` (our Action JSON, observation
    pixels), ``gt_action_android_control`` (the dataset's JSON, dataset pixels), ``predicted_action``,
    ``correct``, ``reason``, ``target_box`` (observation pixels, or ``None``), ``step`` (its index).

    ## Arguments

    - ``data_dir``: folder with the shards, ``splits.json`` and ``test_subsplits.json``.
    - ``split``: ``train``, ``validation`` or ``test``; ``subsplit``: e.g. ``IDD`` (test only).
    - ``task_level``: ``low`` (goal plus step instruction) or ``high`` (goal only).
    - ``protocol``: ``molmo`` or ``distance14``.
    - ``screen_size``: ``(W, H)`` of the observed screenshot.
    - ``episodes``: episodes already loaded (then ``data_dir`` may be ``None``).
    - ``max_elements``: rows of ``elements.boxes``.

    ```python
    import gymnasium as gym

    env = gym.make("molmo_envs:molmo_agent/AndroidControl-v0", data_dir="android_control", subsplit="IDD")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.unwrapped.gt_action())  # an oracle step
    ```
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 1}

    def __init__(
        self,
        data_dir: str | Path | None = None,
        split: str | None = "test",
        subsplit: str | None = None,
        task_level: str = "low",
        protocol: str = "molmo",
        screen_size: tuple[int, int] = (1080, 2400),
        episodes: Sequence[Episode] | None = None,
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
        if episodes is None:
            if data_dir is None:
                raise ValueError("pass data_dir (the AndroidControl folder) or episodes")
            episodes = sorted(load_episodes(data_dir, split, subsplit), key=lambda e: e.episode_id)
        self.episodes = [e for e in episodes if e.num_steps > 0]
        if not self.episodes:
            raise ValueError(
                f"no episodes with actions in split={split!r} subsplit={subsplit!r} of {data_dir}"
            )
        self._index_by_id = {e.episode_id: i for i, e in enumerate(self.episodes)}
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
        self._step = 0

    # --- the current step -------------------------------------------------------------------------------

    @property
    def episode(self) -> Episode:
        if self._episode is None:
            raise RuntimeError("call reset() before using the environment")
        return self._episode

    def _transform(self, index: int | None = None) -> ResizeTransform:
        index = self._screen_index if index is None else index
        return ResizeTransform.resize(self.episode.screenshot_sizes[index], self.screen_size)

    @property
    def _screen_index(self) -> int:
        return min(self._step, self.episode.num_steps)

    @property
    def done(self) -> bool:
        return self._step >= self.episode.num_steps

    @property
    def goal(self) -> str:
        """The episode's goal (Molmo's ``high_level`` prompt piece)."""
        return self.episode.goal

    @property
    def instruction(self) -> str:
        """The current step's instruction (``low_level``); empty in high-level mode or after the last step."""
        if self.task_level == "high" or self.done:
            return ""
        return self.episode.step_instructions[self._step]

    def prompt(self) -> str:
        """Molmo's AndroidControl prompt for the current step (``high_level: ... low_level: ...``)."""
        return act_prompt(self.goal, self.instruction or None)

    def gt_action(self) -> Action:
        """The recorded action of the current step, in observation pixels."""
        if self.done:
            raise RuntimeError("the episode is over: there is no ground-truth action left; call reset()")
        return _map_action(self.episode.action(self._step), self._transform(), to_original=False)

    def supervision(self) -> str:
        """The current ground-truth step as the action string Molmo was trained to emit."""
        return format_action_molmo(self.gt_action(), self.screen_size)

    def elements(self) -> list[Element]:
        """The current screen's visible elements, in dataset pixels."""
        return self.episode.elements(self._screen_index)

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
            if episode_id not in self._index_by_id:
                raise ValueError(
                    f"episode {episode_id} is not among this env's {len(self.episodes)} episodes"
                )
            index = self._index_by_id[episode_id]
        elif "episode_index" in options:
            index = int(options["episode_index"]) % len(self.episodes)
        else:
            index = self._cursor
        self._cursor = (index + 1) % len(self.episodes)
        self._episode, self._step = self.episodes[index], 0
        return self._observation(), self._info()

    def score(self, action: Action | dict[str, Any]) -> StepVerdict:
        """Score ``action`` (observation pixels) on the current step without advancing."""
        if self.done:
            raise RuntimeError("the episode is over; call reset()")
        index = self._step
        try:
            predicted = _map_action(to_action(action), self._transform(index), to_original=True)
        except ActionValidationError as exc:
            return StepVerdict(False, f"invalid action: {exc}", None, self.protocol)
        size = self.episode.screenshot_sizes[index]
        return score_step(
            predicted, self.episode.action(index), self.episode.elements(index), size, self.protocol
        )

    def step(
        self, action: Action | dict[str, Any]
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        verdict = self.score(action)
        try:
            predicted = to_action(action).to_dict()
        except ActionValidationError:
            predicted = None
        transform, index = self._transform(), self._step
        gt = self.gt_action()
        target = None if verdict.target_box is None else _map_box(verdict.target_box, transform)
        self._step += 1
        info = self._info()
        info.update(
            step=index,
            gt_action=gt.to_dict(),
            gt_action_android_control=dict(self.episode.actions[index]),
            predicted_action=predicted,
            correct=verdict.correct,
            reason=verdict.reason,
            target_box=target,
        )
        return self._observation(), float(verdict.correct), self.done, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self._observation()["screenshot"]
        return None
