"""Dry run: observe a real or given screen, record actions, never touch anything."""

from __future__ import annotations

import time
from collections.abc import Callable

from PIL import Image

from ...actions import Action
from ...images import ImageLike, load_image
from ..records import Observation, Outcome
from .base import Executor


class DryRunExecutor(Executor):
    """Records every action instead of performing it.

    ``screen`` is what ``observe`` returns: another executor (its screen is watched, its ``execute`` is
    never called), a callable returning an image, or one fixed image.
    """

    def __init__(self, screen: Executor | Callable[[], ImageLike] | ImageLike) -> None:
        self.screen = screen
        self.actions: list[Action] = []

    def observe(self) -> Observation:
        if isinstance(self.screen, Executor):
            return self.screen.observe()
        started = time.perf_counter()
        source = self.screen() if callable(self.screen) else self.screen
        image = source if isinstance(source, Image.Image) else load_image(source)
        return Observation(image, capture_ms=(time.perf_counter() - started) * 1000)

    def execute(self, action: Action) -> Outcome:
        self.actions.append(action)
        return Outcome(executed=False, note="dry run: recorded, not performed")

    def close(self) -> None:
        if isinstance(self.screen, Executor):
            self.screen.close()
