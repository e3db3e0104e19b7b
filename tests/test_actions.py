"""The action schema: validation, our JSON and AndroidControl's JSON."""

from __future__ import annotations

import math

import pytest

from molmo_agent.actions import ANDROID_CONTROL_TYPES, Action, ActionType
from molmo_agent.errors import ActionValidationError, MolmoAgentError

ONE_OF_EACH = [
    Action(ActionType.CLICK, x=10.5, y=20.0),
    Action(ActionType.LONG_PRESS, x=1.0, y=2.0),
    Action(ActionType.SCROLL, direction="down"),
    Action(ActionType.INPUT_TEXT, text="hello world"),
    Action(ActionType.OPEN_APP, app_name="Settings"),
    Action(ActionType.NAVIGATE_HOME),
    Action(ActionType.NAVIGATE_BACK),
    Action(ActionType.WAIT),
    Action(ActionType.DOUBLE_CLICK, x=3.0, y=4.0),
    Action(ActionType.RIGHT_CLICK, x=5.0, y=6.0),
    Action(ActionType.DRAG, x=1.0, y=2.0, x2=300.0, y2=400.0),
    Action(ActionType.HOTKEY, keys=("ctrl", "s")),
    Action(ActionType.TYPE, text="typed at the focus"),
    Action(ActionType.DONE),
    Action(ActionType.DONE, text="42"),
    Action(ActionType.SCROLL, direction="up", amount=3),
]


def test_action_types_cover_android_control_and_desktop() -> None:
    assert {t.value for t in ANDROID_CONTROL_TYPES} == {
        "click",
        "long_press",
        "scroll",
        "input_text",
        "open_app",
        "navigate_home",
        "navigate_back",
        "wait",
    }
    desktop = {t.value for t in ActionType} - {t.value for t in ANDROID_CONTROL_TYPES}
    assert desktop == {"double_click", "right_click", "drag", "hotkey", "type", "done"}
    assert isinstance(ActionType.CLICK, str)
    assert ActionType.CLICK == "click"


@pytest.mark.parametrize("action", ONE_OF_EACH, ids=lambda a: a.type.value)
def test_dict_and_json_round_trip(action: Action) -> None:
    assert Action.from_dict(action.to_dict()) == action
    assert Action.from_json(action.to_json()) == action
    assert action.to_dict()["type"] == action.type.value
    assert None not in action.to_dict().values()
    assert "raw" not in action.to_dict()


def test_to_dict_has_only_set_fields() -> None:
    assert Action("click", x=1, y=2).to_dict() == {"type": "click", "x": 1.0, "y": 2.0}
    assert Action("hotkey", keys=["ctrl", "s"]).to_dict() == {"type": "hotkey", "keys": ["ctrl", "s"]}


def test_plain_strings_and_lists_are_coerced() -> None:
    action = Action("hotkey", keys=["ctrl", "s"])
    assert action.type is ActionType.HOTKEY
    assert action.keys == ("ctrl", "s")
    assert hash(action) == hash(Action(ActionType.HOTKEY, keys=("ctrl", "s")))
    assert Action("scroll", direction="Down").direction == "down"


def test_raw_is_not_part_of_equality() -> None:
    assert Action("wait", raw="Wait") == Action("wait", raw="something else")
    assert Action("wait", raw="Wait").raw == "Wait"


def test_point_property() -> None:
    assert Action("click", x=1, y=2).point == (1.0, 2.0)
    assert Action("wait").point is None


def test_empty_text_is_allowed_for_typing() -> None:
    assert Action("input_text", text="").text == ""


ANDROID_JSON = [
    (Action("click", x=100.4, y=200.6), {"action_type": "click", "x": 100, "y": 201}),
    (Action("long_press", x=5, y=6), {"action_type": "long_press", "x": 5, "y": 6}),
    (Action("scroll", direction="up"), {"action_type": "scroll", "direction": "up"}),
    (Action("scroll", direction="left"), {"action_type": "scroll", "direction": "left"}),
    (Action("input_text", text="hi"), {"action_type": "input_text", "text": "hi"}),
    (Action("open_app", app_name="Gmail"), {"action_type": "open_app", "app_name": "Gmail"}),
    (Action("navigate_home"), {"action_type": "navigate_home"}),
    (Action("navigate_back"), {"action_type": "navigate_back"}),
    (Action("wait"), {"action_type": "wait"}),
]


@pytest.mark.parametrize(("action", "expected"), ANDROID_JSON, ids=lambda v: str(v)[:30])
def test_to_android_control(action: Action, expected: dict) -> None:
    assert action.to_android_control() == expected


@pytest.mark.parametrize(("action", "android"), ANDROID_JSON, ids=lambda v: str(v)[:30])
def test_from_android_control(action: Action, android: dict) -> None:
    parsed = Action.from_android_control(android)
    assert parsed.type == action.type
    assert parsed.to_android_control() == android


@pytest.mark.parametrize("direction", ["up", "down", "left", "right"])
def test_scroll_direction_is_kept_as_recorded(direction: str) -> None:
    android = {"action_type": "scroll", "direction": direction}
    action = Action.from_android_control(android)
    assert action.direction == direction
    assert action.to_android_control()["direction"] == direction


def test_android_click_pixels_are_ints() -> None:
    out = Action("click", x=10.49, y=0.5).to_android_control()
    assert isinstance(out["x"], int) and isinstance(out["y"], int)
    assert out["x"] == 10


@pytest.mark.parametrize(
    "action", [a for a in ONE_OF_EACH if a.type not in ANDROID_CONTROL_TYPES], ids=lambda a: a.type.value
)
def test_desktop_types_have_no_android_control_equivalent(action: Action) -> None:
    with pytest.raises(ActionValidationError, match="no AndroidControl equivalent") as info:
        action.to_android_control()
    assert action.type.value in str(info.value)


def test_from_android_control_rejects_desktop_and_unknown_types() -> None:
    with pytest.raises(ActionValidationError, match="not an AndroidControl action type"):
        Action.from_android_control({"action_type": "drag", "x": 1, "y": 2, "x2": 3, "y2": 4})
    with pytest.raises(ActionValidationError, match="unknown action type 'teleport'"):
        Action.from_android_control({"action_type": "teleport"})
    with pytest.raises(ActionValidationError, match="action_type"):
        Action.from_android_control({"type": "click"})
    with pytest.raises(ActionValidationError, match="JSON object"):
        Action.from_android_control(["click"])


@pytest.mark.parametrize(
    ("kind", "kwargs", "field"),
    [
        ("click", {"x": 1}, "y"),
        ("long_press", {}, "x"),
        ("double_click", {"y": 1}, "x"),
        ("right_click", {"x": 1}, "y"),
        ("drag", {"x": 1, "y": 2, "x2": 3}, "y2"),
        ("scroll", {}, "direction"),
        ("input_text", {}, "text"),
        ("type", {}, "text"),
        ("open_app", {}, "app_name"),
        ("hotkey", {}, "keys"),
    ],
)
def test_missing_required_field_is_named(kind: str, kwargs: dict, field: str) -> None:
    with pytest.raises(ActionValidationError) as info:
        Action(kind, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{kind} action")
    assert f"missing required field {field!r}" in message
    assert "expected e.g." in message


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_coordinates_are_rejected(bad: float) -> None:
    with pytest.raises(ActionValidationError, match="'x' must be finite"):
        Action("click", x=bad, y=1)


def test_negative_and_non_numeric_coordinates_are_rejected() -> None:
    with pytest.raises(ActionValidationError, match=r"'y2' must be >= 0 pixels, got -1"):
        Action("drag", x=1, y=1, x2=1, y2=-1)
    with pytest.raises(ActionValidationError, match="'x' must be a number of pixels"):
        Action("click", x="12", y=1)
    with pytest.raises(ActionValidationError, match="'x' must be a number of pixels"):
        Action("click", x=True, y=1)


def test_bad_field_values_are_rejected_with_the_expected_form() -> None:
    with pytest.raises(ActionValidationError, match="up/down/left/right, got 'sideways'"):
        Action("scroll", direction="sideways")
    with pytest.raises(ActionValidationError, match="'app_name' must not be empty"):
        Action("open_app", app_name="  ")
    with pytest.raises(ActionValidationError, match="'keys' must not be empty"):
        Action("hotkey", keys=[])
    with pytest.raises(ActionValidationError, match="'keys' must be a list"):
        Action("hotkey", keys="ctrl+s")
    with pytest.raises(ActionValidationError, match="non-empty key names"):
        Action("hotkey", keys=["ctrl", ""])
    with pytest.raises(ActionValidationError, match="'text' must be a string"):
        Action("input_text", text=5)
    with pytest.raises(ActionValidationError, match="'amount' must be an integer"):
        Action("scroll", direction="down", amount=1.5)


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(ActionValidationError) as info:
        Action("teleport")
    assert "unknown action type 'teleport'" in str(info.value)
    assert "click" in str(info.value) and "navigate_back" in str(info.value)


def test_errors_are_package_errors_and_value_errors() -> None:
    with pytest.raises(MolmoAgentError):
        Action("scroll")
    with pytest.raises(ValueError):
        Action("scroll")


def test_from_dict_errors_are_clear_never_key_errors() -> None:
    with pytest.raises(ActionValidationError, match="missing the 'type' field"):
        Action.from_dict({"x": 1})
    with pytest.raises(ActionValidationError, match="from_android_control"):
        Action.from_dict({"action_type": "click", "x": 1, "y": 2})
    with pytest.raises(ActionValidationError, match="JSON object"):
        Action.from_dict("click")
    with pytest.raises(ActionValidationError, match="unknown action type"):
        Action.from_dict({"type": None})


def test_from_dict_ignores_unknown_keys() -> None:
    assert Action.from_dict({"type": "wait", "seconds": 2}) == Action("wait")


@pytest.mark.parametrize("text", ["", "{", "not json", '{"type": "click", "x": 1,}'])
def test_from_json_bad_json(text: str) -> None:
    with pytest.raises(ActionValidationError, match="not valid JSON"):
        Action.from_json(text)


def test_from_json_non_object() -> None:
    with pytest.raises(ActionValidationError, match="JSON object, got list"):
        Action.from_json("[1, 2]")
