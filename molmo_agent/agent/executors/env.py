"""Apply the agent's actions to a gymnasium environment (evaluation without a screen)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from ...actions import Action
from ...images import load_image
from ..records import Observation, Outcome
from .base import Executor


def default_screenshot(observation: Any) -> Image.Image:
    """The screenshot inside an observation: the observation itself, or its ``screenshot``/``image`` entry."""
    if isinstance(observation, dict):
        for key in ("screenshot", "image", "pixels"):
            if key in observation:
                return load_image(np.asarray(observation[key]))
        raise KeyError(f"observation has no screenshot entry (keys: {sorted(observation)})")
    return load_image(np.asarray(observation))


class EnvExecutor(Executor):
    """Steps ``env`` with each action (envs of this package accept :class:`Action` directly).

    ``to_env_action`` converts for environments with another action space. The episode's end finishes
    the run; rewards and ``info`` are kept on each step's outcome.
    """

    def __init__(
        self,
        env,
        *,
        reset_options: dict | None = None,
        seed: int | None = None,
        to_env_action: Callable[[Action], Any] = lambda action: action,
        screenshot_of: Callable[[Any], Image.Image] = default_screenshot,
    ) -> None:
        self.env = env
        self.to_env_action = to_env_action
        self.screenshot_of = screenshot_of
        self.observation, self.info = env.reset(seed=seed, options=reset_options)
        self.total_reward = 0.0

    def observe(self) -> Observation:
        started = time.perf_counter()
        image = self.screenshot_of(self.observation)
        extra = {"info": self.info}
        return Observation(image, capture_ms=(time.perf_counter() - started) * 1000, extra=extra)

    def execute(self, action: Action) -> Outcome:
        self.observation, reward, terminated, truncated, self.info = self.env.step(self.to_env_action(action))
        self.total_reward += float(reward)
        return Outcome(
            executed=True,
            reward=float(reward),
            finished=bool(terminated or truncated),
            note="terminated" if terminated else ("truncated" if truncated else ""),
            info=dict(self.info),
        )

    def close(self) -> None:
        self.env.close()
