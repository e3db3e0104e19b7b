"""The point record every part of molmo-agent speaks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Point:
    """One location the model pointed at.

    ``x``/``y`` are pixels of the *original* image the caller passed (not of any resized copy the model saw),
    so a point can be used directly for a click or a depth lookup. ``x_norm``/``y_norm`` are the same location
    as fractions of width/height in [0, 1], which survive any later rescaling by the caller.

    Attributes:
        x: Column in pixels of the original image (float; sub-pixel precision is kept).
        y: Row in pixels of the original image.
        x_norm: ``x / width`` in [0, 1].
        y_norm: ``y / height`` in [0, 1].
        label: The text the model attached to the point (usually the query echoed), may be empty.
        image_index: 0-based index of the image (or video frame) the point belongs to.
        object_id: The model's object id (Molmo2 numbers objects from 1; Molmo v1 numbers points from 1).
        timestamp: Seconds into a video for video points/tracks, else ``None``.
    """

    x: float
    y: float
    x_norm: float
    y_norm: float
    label: str = ""
    image_index: int = 0
    object_id: int = 1
    timestamp: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's and the server's wire shape)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Point:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so newer producers stay readable."""
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})
