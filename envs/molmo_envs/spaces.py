"""Spaces shared by every molmo_envs environment, and the one conversion between them and ``ma.Action``.

Environments declare ``action_space(screen_size)`` and accept either an :class:`~molmo_agent.Action` or an
element of that space in ``step``; :func:`to_action` turns either into an Action, :func:`from_action`
goes the other way. Text observations use :class:`UnicodeText`: gymnasium's default ``Text`` charset is
alphanumeric only and rejects the spaces and punctuation every goal contains.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

from molmo_agent.actions import Action, ActionType
from molmo_agent.errors import ActionValidationError

ACTION_TYPES: tuple[ActionType, ...] = tuple(ActionType)
"""Index order of the ``type`` entry of the action space."""
DIRECTIONS: tuple[str, ...] = ("up", "down", "left", "right")
MAX_TEXT = 512


class UnicodeText(spaces.Text):
    """A Text space that accepts any string up to ``max_length`` (samples stay printable ASCII)."""

    def __init__(self, max_length: int = MAX_TEXT, *, seed: int | None = None) -> None:
        super().__init__(max_length=max_length, min_length=0, charset=string.printable, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.max_length})"


def action_space(screen_size: tuple[int, int]) -> spaces.Dict:
    """The declared action space: a type index plus every field any type may need, in screen pixels."""
    width, height = screen_size
    high = np.array([width, height], dtype=np.float32)
    return spaces.Dict(
        {
            "type": spaces.Discrete(len(ACTION_TYPES)),
            "point": spaces.Box(0.0, high, shape=(2,), dtype=np.float32),
            "point2": spaces.Box(0.0, high, shape=(2,), dtype=np.float32),
            "direction": spaces.Discrete(len(DIRECTIONS)),
            "text": UnicodeText(),
            "app_name": UnicodeText(128),
        }
    )


_POINT_TYPES = {ActionType.CLICK, ActionType.LONG_PRESS, ActionType.DOUBLE_CLICK, ActionType.RIGHT_CLICK}


def to_action(value: Action | dict[str, Any]) -> Action:
    """An Action, or an element of :func:`action_space`, as an Action (fields the type does not use are
    ignored). Raises ``molmo_agent.ActionValidationError`` for an invalid element."""
    if isinstance(value, Action):
        return value
    try:
        return _from_element(value)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        if isinstance(exc, ActionValidationError):
            raise
        raise ActionValidationError(
            f"not an action: expected a molmo_agent.Action or a dict from action_space() with 'type' an "
            f"index below {len(ACTION_TYPES)} and that type's fields ({type(exc).__name__}: {exc})"
        ) from exc


def _from_element(value: dict[str, Any]) -> Action:
    index = int(value["type"])
    if not 0 <= index < len(ACTION_TYPES):
        raise IndexError(f"type index {index} out of range")
    kind = ACTION_TYPES[index]
    fields: dict[str, Any] = {"type": kind}
    if kind in _POINT_TYPES or kind is ActionType.DRAG:
        fields["x"], fields["y"] = (float(v) for v in np.asarray(value["point"]).reshape(2))
    if kind is ActionType.DRAG:
        fields["x2"], fields["y2"] = (float(v) for v in np.asarray(value["point2"]).reshape(2))
    if kind is ActionType.SCROLL:
        fields["direction"] = DIRECTIONS[int(value["direction"])]
    if kind in (ActionType.INPUT_TEXT, ActionType.TYPE, ActionType.DONE):
        fields["text"] = str(value.get("text", ""))
    if kind is ActionType.OPEN_APP:
        fields["app_name"] = str(value["app_name"])
    if kind is ActionType.HOTKEY:
        fields["keys"] = tuple(k for k in str(value.get("text", "")).split("+") if k)
    return Action(**fields)


def from_action(action: Action) -> dict[str, Any]:
    """An Action as an element of :func:`action_space` (hotkey keys travel as ``text`` joined by ``+``)."""
    point = (action.x or 0.0, action.y or 0.0)
    point2 = (action.x2 or 0.0, action.y2 or 0.0)
    text = action.text or ("+".join(action.keys) if action.keys else "")
    return {
        "type": ACTION_TYPES.index(action.type),
        "point": np.array(point, dtype=np.float32),
        "point2": np.array(point2, dtype=np.float32),
        "direction": DIRECTIONS.index(action.direction) if action.direction else 0,
        "text": text,
        "app_name": action.app_name or "",
    }
