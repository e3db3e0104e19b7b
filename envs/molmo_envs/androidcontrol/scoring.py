"""AndroidControl step accuracy under two protocols whose numbers are not comparable with each other.

``molmo`` (how Molmo's paper scored AndroidControl; one point per step):
  - action types must match, except that a predicted click on the app's icon counts for ``open_app``
    (the icon is a visible element whose text or content description equals the app name, ignoring case);
  - click / long press: the predicted point must lie inside the target box, the smallest visible
    accessibility node (by width, then height) whose bounds contain the ground-truth point (inclusive);
    with no such node the box is the ground-truth point +/- 10 px;
  - typed text and app names: equal after lower-casing and stripping; scroll: same direction;
    home / back / wait: the type match is enough.

``distance14`` (OS-Atlas, UI-TARS): types must match; a click / long press is right within 14% of the
screen (Euclidean distance of normalised coordinates <= 0.14, i.e. 140 on a 0-1000 scale); text and app
names are right with token F1 > 0.5; scroll directions must be equal.

All coordinates are pixels of the screen the dataset recorded (the env maps predictions back first).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from molmo_agent.actions import Action, ActionType

from .episodes import Box, Element

Protocol = Literal["molmo", "distance14"]
PROTOCOLS: tuple[str, ...] = ("molmo", "distance14")
FALLBACK_HALF_SIZE = 10.0
"""Half the side of the target box when no accessibility node contains the ground-truth point."""
DISTANCE_THRESHOLD = 0.14
"""distance14's radius as a fraction of the screen (140 on a 0-1000 scale)."""
TEXT_F1_THRESHOLD = 0.5
_EPS = 1e-6  # pixels / normalised units: absorbs float noise from resizing, never a real margin
_POINT_TYPES = frozenset({ActionType.CLICK, ActionType.LONG_PRESS})


@dataclass(frozen=True)
class StepVerdict:
    """Whether one predicted step was right, why, and the box a point had to hit (if any)."""

    correct: bool
    reason: str
    target_box: Box | None
    protocol: str


def contains(box: Box, x: float, y: float) -> bool:
    """``(x, y)`` inside ``box = (left, top, right, bottom)``, edges included."""
    left, top, right, bottom = box
    return left - _EPS <= x <= right + _EPS and top - _EPS <= y <= bottom + _EPS


def target_box(x: float, y: float, elements: Sequence[Element]) -> tuple[Box, bool]:
    """The box a prediction must hit for a ground-truth point, and whether it came from a node.

    The smallest containing node wins, comparing width first and height second; the earliest node breaks
    an exact tie. Without a containing node: the point +/- :data:`FALLBACK_HALF_SIZE` pixels.
    """
    containing = [e for e in elements if contains(e.bounds, x, y)]
    if containing:
        return min(containing, key=lambda e: (e.width, e.height)).bounds, True
    half = FALLBACK_HALF_SIZE
    return (x - half, y - half, x + half, y + half), False


def _normalize_text(text: str | None) -> str:
    return (text or "").strip().lower()


def token_f1(predicted: str | None, truth: str | None) -> float:
    """Token-level F1 of two strings (lower-cased, whitespace tokens); two empty strings score 1."""
    pred, gold = _normalize_text(predicted).split(), _normalize_text(truth).split()
    if not pred and not gold:
        return 1.0
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def app_icon(app_name: str, elements: Sequence[Element]) -> Element | None:
    """The visible element labelled with the app's name (text or content description, any case)."""
    name = _normalize_text(app_name)
    for element in elements:
        if name and name in (_normalize_text(element.text), _normalize_text(element.content_description)):
            return element
    return None


def _verdict(correct: bool, reason: str, box: Box | None, protocol: str) -> StepVerdict:
    return StepVerdict(correct, reason, box, protocol)


def _score_point_molmo(predicted: Action, truth: Action, elements: Sequence[Element]) -> StepVerdict:
    box, from_node = target_box(truth.x, truth.y, elements)
    where = "the target node" if from_node else "the +/-10 px box around the ground-truth point"
    if contains(box, predicted.x, predicted.y):
        return _verdict(True, f"{predicted.type} inside {where}", box, "molmo")
    return _verdict(
        False, f"{predicted.type} at ({predicted.x:.1f}, {predicted.y:.1f}) outside {where}", box, "molmo"
    )


def _score_point_distance(predicted: Action, truth: Action, screen_size: tuple[int, int]) -> StepVerdict:
    width, height = screen_size
    distance = math.hypot((predicted.x - truth.x) / width, (predicted.y - truth.y) / height)
    if distance <= DISTANCE_THRESHOLD + _EPS:
        return _verdict(
            True, f"{predicted.type} {distance:.3f} of the screen away (<= 0.14)", None, "distance14"
        )
    return _verdict(False, f"{predicted.type} {distance:.3f} of the screen away (> 0.14)", None, "distance14")


def _score_text(predicted: str | None, truth: str | None, what: str, protocol: str) -> StepVerdict:
    if protocol == "molmo":
        same = _normalize_text(predicted) == _normalize_text(truth)
        return _verdict(
            same,
            f"{what} {'matches' if same else 'differs'} after lower-casing and stripping",
            None,
            protocol,
        )
    f1 = token_f1(predicted, truth)
    return _verdict(
        f1 > TEXT_F1_THRESHOLD, f"{what} token F1 {f1:.2f} ({'>' if f1 > 0.5 else '<='} 0.5)", None, protocol
    )


def score_step(
    predicted: Action,
    truth: Action,
    elements: Sequence[Element],
    screen_size: tuple[int, int],
    protocol: Protocol = "molmo",
) -> StepVerdict:
    """Score one predicted action against the ground truth on the screen it was taken on.

    Args:
        predicted: The policy's action, in the dataset screen's pixels.
        truth: The ground-truth action (same pixels).
        elements: The screen's visible accessibility elements (for target boxes and app icons).
        screen_size: ``(width, height)`` of that screen (for ``distance14``).
        protocol: ``"molmo"`` or ``"distance14"`` (see the module docstring).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if protocol == "molmo" and truth.type is ActionType.OPEN_APP and predicted.type is ActionType.CLICK:
        icon = app_icon(truth.app_name or "", elements)
        if icon is None:
            return _verdict(
                False, f"click for open_app but no visible icon named {truth.app_name!r}", None, protocol
            )
        hit = contains(icon.bounds, predicted.x, predicted.y)
        reason = f"click {'on' if hit else 'off'} the icon of {truth.app_name!r}"
        return _verdict(hit, reason, icon.bounds, protocol)
    if predicted.type is not truth.type:
        return _verdict(False, f"type {predicted.type} != {truth.type}", None, protocol)
    if truth.type in _POINT_TYPES:
        if protocol == "molmo":
            return _score_point_molmo(predicted, truth, elements)
        return _score_point_distance(predicted, truth, screen_size)
    if truth.type is ActionType.SCROLL:
        same = predicted.direction == truth.direction
        return _verdict(same, f"scroll {predicted.direction} vs {truth.direction}", None, protocol)
    if truth.type is ActionType.INPUT_TEXT:
        return _score_text(predicted.text, truth.text, "typed text", protocol)
    if truth.type is ActionType.OPEN_APP:
        return _score_text(predicted.app_name, truth.app_name, "app name", protocol)
    return _verdict(True, f"{truth.type} matches", None, protocol)
