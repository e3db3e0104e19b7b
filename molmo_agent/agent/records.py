"""What the agent loop sees, decides and does, as plain data (one record per step)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..actions import Action

SCREEN_SIGNATURE_SIZE = (64, 36)
"""Screens are compared at this size: small enough to be cheap, large enough to see a dialog open."""


@dataclass(frozen=True)
class Observation:
    """One look at the screen (or camera): the image and how long capturing it took."""

    screenshot: Image.Image
    capture_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.screenshot.size

    def thumbnail(self) -> bytes:
        """A small grey thumbnail: cheap to keep every step, enough to tell whether the screen changed."""
        thumb = self.screenshot.convert("L").resize(SCREEN_SIGNATURE_SIZE, Image.Resampling.BILINEAR)
        return thumb.tobytes()


def screens_match(a: bytes, b: bytes, *, level: int = 12, fraction: float = 0.01) -> bool:
    """True when two thumbnails show the same screen: under ``fraction`` of pixels differ by more than
    ``level`` grey levels, so a blinking cursor or a ticking clock does not count as a change."""
    if len(a) != len(b) or not a:
        return False
    difference = np.abs(np.frombuffer(a, np.uint8).astype(np.int16) - np.frombuffer(b, np.uint8))
    return int((difference > level).sum()) < fraction * len(a)


def signature(thumbnail: bytes) -> str:
    """A short digest of a thumbnail for the trajectory record."""
    return hashlib.blake2b(thumbnail, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Decision:
    """What a policy chose, with the model text behind it; ``action`` is None when the text was unusable."""

    action: Action | None
    prompt: str
    raw_text: str
    reason: str | None = None
    preprocess_ms: float = 0.0
    model_ms: float = 0.0
    parse_ms: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What executing an action did. ``finished`` ends the run (an environment's episode ended)."""

    executed: bool
    note: str = ""
    reward: float | None = None
    finished: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepRecord:
    """Everything about one step, in the order it happened; serialised to the trajectory's JSONL."""

    index: int
    prompt: str = ""
    raw_text: str = ""
    action: Action | None = None
    error: str | None = None
    outcome: Outcome | None = None
    screen_signature: str = ""
    screen_thumbnail: bytes = field(default=b"", repr=False)
    capture_ms: float = 0.0
    preprocess_ms: float = 0.0
    model_ms: float = 0.0
    parse_ms: float = 0.0
    execute_ms: float = 0.0
    screenshot: Image.Image | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the screenshot itself is written separately by the recorder)."""
        outcome = self.outcome
        return {
            "index": self.index,
            "prompt": self.prompt,
            "raw_text": self.raw_text,
            "action": self.action.to_dict() if self.action else None,
            "error": self.error,
            "outcome": None
            if outcome is None
            else {
                "executed": outcome.executed,
                "note": outcome.note,
                "reward": outcome.reward,
                "finished": outcome.finished,
            },
            "screen_signature": self.screen_signature,
            "timings_ms": {
                "capture": round(self.capture_ms, 3),
                "preprocess": round(self.preprocess_ms, 3),
                "model": round(self.model_ms, 3),
                "parse": round(self.parse_ms, 3),
                "execute": round(self.execute_ms, 3),
            },
        }


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such rewards are written as null."""
    return value if value is None or math.isfinite(value) else None


@dataclass
class RunResult:
    """A finished run: why it stopped and every step."""

    goal: str
    stop_reason: str
    """``done``, ``step_limit``, ``time_limit``, ``stuck``, ``finished`` (environment), ``quit`` (user) or
    ``error`` (the screen could not be observed)."""
    steps: list[StepRecord]
    record_dir: str | None = None

    @property
    def actions(self) -> list[Action]:
        """The actions that went through (performed, or recorded by a dry run), in order."""
        return [s.action for s in self.steps if s.action is not None and s.outcome is not None]
