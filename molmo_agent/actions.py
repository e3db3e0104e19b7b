"""The one action schema shared by the agent loop, the gRPC server and the gym environments.

An :class:`Action` is what a model decided to do on a screen: AndroidControl's eight action types plus the
desktop ones a mouse and keyboard offer. Coordinates are pixels of the screenshot the model saw, so an
executor can use them directly. The schema validates itself on construction, so a malformed action fails
where it is made (with a message naming the field and the expected form) rather than deep in an executor.

Two wire shapes: our own JSON (:meth:`Action.to_dict`, key ``type``) and AndroidControl's action JSON
(:meth:`Action.to_android_control`, key ``action_type``, integer pixels).
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from .errors import ActionValidationError


class ActionType(StrEnum):
    """Every action an agent can take; values are the wire names (a ``str`` enum: ``"click" == CLICK``)."""

    CLICK = "click"
    LONG_PRESS = "long_press"
    SCROLL = "scroll"
    INPUT_TEXT = "input_text"
    OPEN_APP = "open_app"
    NAVIGATE_HOME = "navigate_home"
    NAVIGATE_BACK = "navigate_back"
    WAIT = "wait"
    DOUBLE_CLICK = "double_click"
    RIGHT_CLICK = "right_click"
    DRAG = "drag"
    HOTKEY = "hotkey"
    TYPE = "type"
    DONE = "done"


ANDROID_CONTROL_TYPES: frozenset[ActionType] = frozenset(
    {
        ActionType.CLICK,
        ActionType.LONG_PRESS,
        ActionType.SCROLL,
        ActionType.INPUT_TEXT,
        ActionType.OPEN_APP,
        ActionType.NAVIGATE_HOME,
        ActionType.NAVIGATE_BACK,
        ActionType.WAIT,
    }
)
"""The types AndroidControl records; the rest exist only on desktops."""

SCROLL_DIRECTIONS: frozenset[str] = frozenset({"up", "down", "left", "right"})
"""AndroidControl's scroll directions, kept as recorded (never inverted)."""


@dataclass(frozen=True)
class _Spec:
    """What one action type needs: its required fields and an example of the expected form."""

    required: tuple[str, ...]
    example: str


_SPECS: dict[ActionType, _Spec] = {
    ActionType.CLICK: _Spec(("x", "y"), '{"type": "click", "x": 120, "y": 340}'),
    ActionType.LONG_PRESS: _Spec(("x", "y"), '{"type": "long_press", "x": 120, "y": 340}'),
    ActionType.DOUBLE_CLICK: _Spec(("x", "y"), '{"type": "double_click", "x": 120, "y": 340}'),
    ActionType.RIGHT_CLICK: _Spec(("x", "y"), '{"type": "right_click", "x": 120, "y": 340}'),
    ActionType.DRAG: _Spec(("x", "y", "x2", "y2"), '{"type": "drag", "x": 10, "y": 20, "x2": 300, "y2": 20}'),
    ActionType.SCROLL: _Spec(("direction",), '{"type": "scroll", "direction": "down"} (up/down/left/right)'),
    ActionType.INPUT_TEXT: _Spec(("text",), '{"type": "input_text", "text": "hello"}'),
    ActionType.TYPE: _Spec(("text",), '{"type": "type", "text": "hello"}'),
    ActionType.OPEN_APP: _Spec(("app_name",), '{"type": "open_app", "app_name": "Settings"}'),
    ActionType.HOTKEY: _Spec(("keys",), '{"type": "hotkey", "keys": ["ctrl", "s"]}'),
    ActionType.NAVIGATE_HOME: _Spec((), '{"type": "navigate_home"}'),
    ActionType.NAVIGATE_BACK: _Spec((), '{"type": "navigate_back"}'),
    ActionType.WAIT: _Spec((), '{"type": "wait"}'),
    ActionType.DONE: _Spec((), '{"type": "done"} or {"type": "done", "text": "the answer"}'),
}
"""The one table of required fields per type (data, so adding a type is one line)."""

_COORDINATE_FIELDS = ("x", "y", "x2", "y2")
_STRING_FIELDS = ("direction", "text", "app_name")


def _fail(kind: ActionType | str, message: str) -> ActionValidationError:
    """An error naming the action type, what is wrong, and the expected form."""
    name = kind.value if isinstance(kind, ActionType) else str(kind)
    spec = _SPECS.get(kind) if isinstance(kind, ActionType) else None
    expected = f"; expected e.g. {spec.example}" if spec else ""
    return ActionValidationError(f"{name} action: {message}{expected}")


def _coerce_type(value: Any) -> ActionType:
    """Accept an :class:`ActionType` or its wire name, so JSON and Python callers look alike."""
    if isinstance(value, ActionType):
        return value
    try:
        return ActionType(str(value).strip().lower())
    except ValueError:
        known = ", ".join(t.value for t in ActionType)
        raise ActionValidationError(f"unknown action type {value!r}; expected one of: {known}") from None


def _check_coordinate(kind: ActionType, name: str, value: Any) -> float:
    """Pixels must be finite, non-negative real numbers: anything else cannot be clicked."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(kind, f"field {name!r} must be a number of pixels, got {value!r}")
    if not math.isfinite(value):
        raise _fail(kind, f"field {name!r} must be finite, got {value!r}")
    if value < 0:
        raise _fail(kind, f"field {name!r} must be >= 0 pixels, got {value!r}")
    return float(value)


def _check_keys(kind: ActionType, value: Any) -> tuple[str, ...] | None:
    """Keys arrive as lists from JSON; a tuple keeps the action hashable."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise _fail(kind, f"field 'keys' must be a list of key names, got {value!r}")
    if not all(isinstance(k, str) and k.strip() for k in value):
        raise _fail(kind, f"field 'keys' must hold non-empty key names, got {value!r}")
    return tuple(value)


def _check_direction(kind: ActionType, value: str | None) -> str | None:
    """Directions are compared as lower-case words; AndroidControl's recorded direction is kept as is."""
    if value is None:
        return None
    direction = value.strip().lower()
    if direction not in SCROLL_DIRECTIONS:
        raise _fail(kind, f"field 'direction' must be one of up/down/left/right, got {value!r}")
    return direction


def _check_amount(kind: ActionType, value: Any) -> int | None:
    """Scroll clicks are whole numbers (numpy integers from a policy are accepted)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(kind, f"field 'amount' must be an integer number of scroll clicks, got {value!r}")
    return int(value)


def _check_present(kind: ActionType, action: Action) -> None:
    """Enforce :data:`_SPECS`: every required field is set (and non-empty where emptiness is meaningless)."""
    for name in _SPECS[kind].required:
        value = getattr(action, name)
        if value is None:
            raise _fail(kind, f"missing required field {name!r}")
        if name in ("app_name", "keys") and not (value.strip() if isinstance(value, str) else value):
            raise _fail(kind, f"field {name!r} must not be empty")


@dataclass(frozen=True)
class Action:
    """One action on a screen; coordinates are pixels of the screenshot (origin top-left).

    Attributes:
        type: What to do (a plain string such as ``"click"`` is accepted and converted).
        x, y: The point acted on (click, long press, double/right click, drag start).
        x2, y2: Where a drag ends.
        direction: Scroll direction, one of up/down/left/right, as AndroidControl records it.
        text: Text to type (``input_text``/``type``) or the final answer (``done``).
        app_name: The app to open (``open_app``).
        keys: A key or key combination (``hotkey``), e.g. ``("ctrl", "s")``.
        amount: Scroll clicks on desktops (optional).
        raw: The model text the action was parsed from; not part of equality.
    """

    type: ActionType
    x: float | None = None
    y: float | None = None
    x2: float | None = None
    y2: float | None = None
    direction: str | None = None
    text: str | None = None
    app_name: str | None = None
    keys: tuple[str, ...] | None = None
    amount: int | None = None
    raw: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        kind = _coerce_type(self.type)
        object.__setattr__(self, "type", kind)
        for name in _COORDINATE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_coordinate(kind, name, value))
        for name in _STRING_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise _fail(kind, f"field {name!r} must be a string, got {value!r}")
        object.__setattr__(self, "keys", _check_keys(kind, self.keys))
        object.__setattr__(self, "direction", _check_direction(kind, self.direction))
        object.__setattr__(self, "amount", _check_amount(kind, self.amount))
        _check_present(kind, self)

    @property
    def point(self) -> tuple[float, float] | None:
        """The point acted on, or ``None`` for actions without one."""
        if self.x is None or self.y is None:
            return None
        return (self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        """Our JSON shape: only the fields that are set, ``type`` as its wire name, ``raw`` left out."""
        out: dict[str, Any] = {"type": self.type.value}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("type", "raw") or value is None:
                continue
            out[f.name] = list(value) if f.name == "keys" else value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Action:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so newer producers stay readable."""
        if not isinstance(data, dict):
            raise ActionValidationError(f"an action must be a JSON object, got {type(data).__name__}")
        if "type" not in data:
            hint = " (AndroidControl JSON: use from_android_control)" if "action_type" in data else ""
            raise ActionValidationError(
                f"action is missing the 'type' field{hint}; expected e.g. {_SPECS[ActionType.CLICK].example}"
            )
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Action:
        """Inverse of :meth:`to_json`; bad JSON is an :class:`ActionValidationError`, not a JSON error."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ActionValidationError(f"action is not valid JSON ({exc}): {str(text)[:80]!r}") from None
        return cls.from_dict(data)

    def to_android_control(self) -> dict[str, Any]:
        """AndroidControl's action JSON (integer pixels); desktop-only types have no equivalent."""
        if self.type not in ANDROID_CONTROL_TYPES:
            allowed = ", ".join(sorted(t.value for t in ANDROID_CONTROL_TYPES))
            raise _fail(self.type, f"has no AndroidControl equivalent (AndroidControl types: {allowed})")
        out: dict[str, Any] = {"action_type": self.type.value}
        if self.point is not None and self.type in (ActionType.CLICK, ActionType.LONG_PRESS):
            out["x"], out["y"] = round(self.point[0]), round(self.point[1])
        for name in _SPECS[self.type].required:
            if name not in ("x", "y"):
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_android_control(cls, data: Any) -> Action:
        """Read one AndroidControl action (as in the dataset's ``actions`` JSON strings)."""
        if not isinstance(data, dict):
            raise ActionValidationError(
                f"an AndroidControl action must be a JSON object, got {type(data).__name__}"
            )
        if "action_type" not in data:
            raise ActionValidationError(
                'AndroidControl action is missing "action_type"; '
                'expected e.g. {"action_type": "click", "x": 120, "y": 340}'
            )
        kind = _coerce_type(data["action_type"])
        if kind not in ANDROID_CONTROL_TYPES:
            raise _fail(kind, "is not an AndroidControl action type")
        allowed = set(_SPECS[kind].required)
        return cls(type=kind, **{k: v for k, v in data.items() if k in allowed})
