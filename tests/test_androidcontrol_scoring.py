"""AndroidControl step scoring under the ``molmo`` and ``distance14`` protocols, on hand-built steps."""

from __future__ import annotations

import pytest

from molmo_agent.actions import Action
from molmo_envs.androidcontrol.episodes import Element
from molmo_envs.androidcontrol.scoring import StepVerdict, score_step, target_box, token_f1

SCREEN = (1000, 2000)
ROOT = Element((0, 0, 1000, 1800), class_name="FrameLayout")
LIST = Element((0, 200, 1000, 1200), class_name="LinearLayout")
ROW = Element((0, 300, 1000, 500), class_name="LinearLayout")
BUTTON = Element((100, 320, 600, 480), text="Wi-Fi", class_name="Button")
# Same width as BUTTON, shorter: the tie on width is broken by height.
BADGE = Element((100, 400, 600, 470), text="On", class_name="TextView")
WIDE_FLAT = Element((0, 330, 1000, 340), class_name="View")  # flatter than BUTTON but wider
CLOCK = Element((700, 1600, 800, 1700), content_description="CLOCK", class_name="TextView")
ELEMENTS = [ROOT, LIST, ROW, BUTTON, BADGE, WIDE_FLAT, CLOCK]


def click(x, y, kind="click"):
    return Action(type=kind, x=x, y=y)


def verdict(predicted, truth, protocol="molmo", elements=ELEMENTS) -> StepVerdict:
    result = score_step(predicted, truth, elements, SCREEN, protocol)
    assert result.protocol == protocol
    return result


# --- target boxes -----------------------------------------------------------------------------------------


def test_smallest_containing_node_by_width_then_height():
    assert target_box(300, 335, ELEMENTS) == (BUTTON.bounds, True)  # WIDE_FLAT is flatter but wider
    assert target_box(300, 450, ELEMENTS) == (BADGE.bounds, True)  # same width as BUTTON, shorter
    assert target_box(800, 400, ELEMENTS) == (ROW.bounds, True)
    assert target_box(800, 1000, ELEMENTS) == (LIST.bounds, True)


def test_containment_is_inclusive_of_edges():
    assert target_box(600, 320, ELEMENTS) == (BUTTON.bounds, True)  # the button's top-right corner


def test_no_containing_node_falls_back_to_ten_pixels():
    assert target_box(500, 1900, ELEMENTS) == ((490, 1890, 510, 1910), False)


# --- molmo protocol ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["click", "long_press"])
def test_point_inside_the_smallest_node(kind):
    truth = click(300, 350, kind)
    good = verdict(click(590, 470, kind), truth)
    assert good.correct and good.target_box == BUTTON.bounds
    assert verdict(click(600, 480, kind), truth).correct  # bottom-right corner, inclusive
    assert not verdict(click(601, 350, kind), truth).correct  # inside ROW, outside BUTTON
    assert not verdict(click(300, 319, kind), truth).correct


def test_nested_box_choice_changes_what_counts():
    truth = click(300, 450)  # inside BADGE (nested in BUTTON)
    assert verdict(click(300, 410), truth).correct
    wrong = verdict(click(300, 380), truth)  # inside BUTTON but above BADGE
    assert not wrong.correct and wrong.target_box == BADGE.bounds


def test_fallback_box_is_ten_pixels_inclusive():
    truth = click(500, 1900)
    assert verdict(click(510, 1890), truth).correct
    assert not verdict(click(510.5, 1900), truth).correct
    assert not verdict(click(500, 1889), truth).correct
    assert "+/-10 px" in verdict(click(600, 1900), truth).reason


def test_hidden_nodes_are_not_elements():
    """Scoring sees only the elements it is given; the env passes only visible ones (see the forest test)."""
    truth = click(300, 350)
    assert verdict(click(300, 450), truth, elements=[ROOT, ROW]).correct


def test_types_must_match():
    assert not verdict(click(300, 350, "long_press"), click(300, 350)).correct
    assert not verdict(Action(type="wait"), Action(type="navigate_back")).correct
    wrong = verdict(Action(type="navigate_home"), click(300, 350))
    assert not wrong.correct and "type" in wrong.reason


@pytest.mark.parametrize("kind", ["navigate_home", "navigate_back", "wait"])
def test_argumentless_types_need_only_the_type(kind):
    assert verdict(Action(type=kind), Action(type=kind)).correct


def test_scroll_direction_must_match():
    truth = Action(type="scroll", direction="down")
    assert verdict(Action(type="scroll", direction="down"), truth).correct
    assert not verdict(Action(type="scroll", direction="up"), truth).correct


def test_text_is_compared_after_lower_casing_and_stripping():
    truth = Action(type="input_text", text="Pizza near me")
    assert verdict(Action(type="input_text", text="  pizza NEAR me \n"), truth).correct
    assert not verdict(Action(type="input_text", text="pizza near"), truth).correct
    assert not verdict(Action(type="input_text", text="pizza  near me"), truth).correct


def test_app_name_is_compared_after_lower_casing_and_stripping():
    truth = Action(type="open_app", app_name="Clock")
    assert verdict(Action(type="open_app", app_name=" clock "), truth).correct
    assert not verdict(Action(type="open_app", app_name="Clocks"), truth).correct


def test_click_on_the_app_icon_counts_for_open_app():
    truth = Action(type="open_app", app_name="Clock")
    on_icon = verdict(click(750, 1650), truth)  # icon labelled "CLOCK" in its content description
    assert on_icon.correct and on_icon.target_box == CLOCK.bounds
    assert not verdict(click(850, 1650), truth).correct
    assert not verdict(click(750, 1650, "long_press"), truth).correct
    no_icon = verdict(click(750, 1650), Action(type="open_app", app_name="Maps"))
    assert not no_icon.correct and "no visible icon" in no_icon.reason


def test_icon_found_by_text_too():
    icon = Element((0, 0, 10, 10), text="gmail ")
    assert verdict(click(5, 5), Action(type="open_app", app_name="Gmail"), elements=[icon]).correct


# --- distance14 protocol ----------------------------------------------------------------------------------


def test_distance14_threshold_edge():
    truth = click(500, 1000)
    # 0.14 of the width = 140 px horizontally; 0.14 of the height = 280 px vertically.
    assert verdict(click(640, 1000), truth, "distance14").correct
    assert not verdict(click(640.5, 1000), truth, "distance14").correct
    assert verdict(click(500, 1280), truth, "distance14").correct
    assert not verdict(click(500, 1281), truth, "distance14").correct
    # Diagonal: (0.1, 0.1) normalised is 0.141 away: outside, though each axis alone is inside.
    assert not verdict(click(600, 1200), truth, "distance14").correct
    assert verdict(click(598, 1196), truth, "distance14").correct


def test_distance14_ignores_boxes():
    truth = click(500, 1900)  # no node: molmo's box is +/-10 px
    assert verdict(click(620, 1900), truth, "distance14").correct  # 0.12 of the width away
    assert not verdict(click(620, 1900), truth).correct


def test_distance14_text_token_f1():
    truth = Action(type="input_text", text="pizza near me")
    assert verdict(Action(type="input_text", text="Pizza near"), truth, "distance14").correct  # F1 0.8
    assert not verdict(Action(type="input_text", text="pizza"), truth, "distance14").correct  # F1 0.5
    truth_app = Action(type="open_app", app_name="Google Maps")
    assert verdict(Action(type="open_app", app_name="maps google"), truth_app, "distance14").correct
    assert verdict(Action(type="open_app", app_name="Maps"), truth_app, "distance14").correct  # F1 0.67
    assert not verdict(Action(type="open_app", app_name="Maps"), truth_app).correct  # molmo: exact


def test_distance14_has_no_app_icon_exception():
    assert not verdict(click(750, 1650), Action(type="open_app", app_name="Clock"), "distance14").correct


def test_token_f1_values():
    assert token_f1("a b c", "a b c") == 1.0
    assert token_f1("", "") == 1.0
    assert token_f1("a", "b") == 0.0
    assert token_f1("pizza", "pizza near me") == pytest.approx(0.5)


def test_unknown_protocol_is_rejected():
    with pytest.raises(ValueError, match="distance14"):
        score_step(Action(type="wait"), Action(type="wait"), [], SCREEN, "exact")
