"""The shared env spaces and the one Action <-> space-element conversion."""

from __future__ import annotations

import numpy as np
import pytest

from molmo_agent import Action, ActionType
from molmo_envs.spaces import ACTION_TYPES, UnicodeText, action_space, from_action, to_action

EXAMPLES = [
    Action(type="click", x=10.5, y=20.25),
    Action(type="long_press", x=1, y=2),
    Action(type="double_click", x=3, y=4),
    Action(type="right_click", x=5, y=6),
    Action(type="drag", x=1, y=2, x2=300, y2=400),
    Action(type="scroll", direction="left"),
    Action(type="input_text", text="héllo, wörld! <b>"),
    Action(type="type", text="plain"),
    Action(type="open_app", app_name="Google Maps"),
    Action(type="hotkey", keys=("ctrl", "s")),
    Action(type="navigate_home"),
    Action(type="navigate_back"),
    Action(type="wait"),
    Action(type="done", text="42"),
]


@pytest.mark.parametrize("action", EXAMPLES, ids=lambda a: a.type.value)
def test_every_action_round_trips_through_a_space_element(action):
    space = action_space((1080, 2400))
    element = from_action(action)
    assert space.contains(element)
    assert to_action(element) == action


def test_the_space_covers_every_action_type():
    assert set(ACTION_TYPES) == set(ActionType)
    assert {a.type for a in EXAMPLES} == set(ActionType)


def test_sampled_elements_convert_or_fail_clearly():
    from molmo_agent.errors import ActionValidationError

    space = action_space((640, 480))
    space.seed(0)
    for _ in range(200):
        element = space.sample()
        try:
            action = to_action(element)
        except ActionValidationError:
            continue  # e.g. an open_app with an empty name: a clear error, not a crash
        assert action.type is ACTION_TYPES[int(element["type"])]


def test_unicode_text_accepts_what_goals_contain():
    space = UnicodeText(40)
    assert space.contains("Open the Settings app, then tap “Wi-Fi”.")
    assert not space.contains("x" * 41)
    assert not space.contains(42)
    assert space.contains(space.sample())


def test_an_action_passes_through_unchanged():
    action = Action(type="click", x=1, y=2)
    assert to_action(action) is action
    assert isinstance(from_action(action)["point"], np.ndarray)
