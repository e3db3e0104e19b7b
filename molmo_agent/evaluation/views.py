"""How the model is shown an env's frame: rescaled and/or as a BGR array, and how its actions come back.

A view is a robustness check of the pixel path (a resized frame, an OpenCV BGR array): the model answers
in the view's pixels and the action is mapped back to the env's pixels before the env scores it, so a
coordinate bug anywhere on the way shows up as a lower score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..actions import Action
from ..geometry import ResizeTransform
from ..images import load_image


@dataclass(frozen=True)
class View:
    """Rescale the frame by ``scale`` and/or hand it over as a BGR array (``bgr``)."""

    scale: float = 1.0
    bgr: bool = False

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"a view's scale must be > 0, got {self.scale}")

    @property
    def name(self) -> str:
        parts = [] if self.scale == 1.0 else [f"x{self.scale:g}"]
        return "+".join(parts + (["bgr"] if self.bgr else [])) or "plain"

    def present(self, frame: np.ndarray) -> tuple[Image.Image, ResizeTransform]:
        """The image the model sees and the transform from the env's pixels to the view's."""
        frame = np.asarray(frame)
        height, width = frame.shape[:2]
        view = frame
        if self.scale != 1.0:
            import cv2

            size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
            interpolation = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
            view = cv2.resize(frame, size, interpolation=interpolation)
        transform = ResizeTransform.resize((width, height), (view.shape[1], view.shape[0]))
        if self.bgr:
            return load_image(np.ascontiguousarray(view[..., ::-1]), bgr=True), transform
        return load_image(view), transform


def to_env_pixels(action: Action, transform: ResizeTransform) -> Action:
    """The action's points mapped from the view back to the env's pixels (identity for the plain view)."""
    data = action.to_dict()
    for xs, ys in (("x", "y"), ("x2", "y2")):
        if data.get(xs) is not None and data.get(ys) is not None:
            data[xs], data[ys] = transform.to_original(data[xs], data[ys])
    return Action.from_dict(data)


PLAIN = View()
"""The frame as the env rendered it."""
