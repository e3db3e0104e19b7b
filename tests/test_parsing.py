"""Molmo's text formats: golden answers, failure reasons, round trips, and linear-time parsing of junk."""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molmo_agent.actions import Action, ActionType
from molmo_agent.parsing import (
    ActionParse,
    PointParse,
    answer_is_complete,
    format_action_molmo,
    format_point_molmo1,
    format_points_molmo2,
    parse_action,
    parse_action_detailed,
    parse_points,
    parse_points_detailed,
)
from molmo_agent.points import Point

WIDE = (1280, 720)
SMALL = (640, 480)


def _xy(points: list[Point] | tuple[Point, ...]) -> list[tuple[float, float]]:
    return [(round(p.x, 6), round(p.y, 6)) for p in points]


# ----------------------------------------------------------------------------------------- Molmo v1


def test_v1_single_point_percent_of_non_square_image() -> None:
    result = parse_points_detailed('<point x="50.0" y="25.0" alt="red mug">red mug</point>', [WIDE])
    assert result == PointParse(
        (Point(x=640.0, y=180.0, x_norm=0.5, y_norm=0.25, label="red mug", image_index=0, object_id=1),),
        "molmo1_point",
        None,
    )


def test_v1_several_points_pair_x_i_with_y_i() -> None:
    text = '<points x1="10.0" y1="20.5" x2="30.1" y2="44.0" alt="mugs">mugs</points>'
    result = parse_points_detailed(text, [WIDE])
    assert result.format == "molmo1_points"
    assert _xy(result.points) == [(128.0, 147.6), (385.28, 316.8)]
    assert [p.object_id for p in result.points] == [1, 2]
    assert {p.label for p in result.points} == {"mugs"}


def test_v1_pairs_follow_their_digits_not_their_order() -> None:
    text = '<points x2="30.0" x1="10.0" y1="20.0" y2="40.0" alt="m">m</points>'
    points = parse_points(text, [WIDE])
    assert [(p.object_id, p.x_norm, p.y_norm) for p in points] == [(1, 0.1, 0.2), (2, 0.3, 0.4)]


def test_v1_counting_sentence_and_alt_fallback() -> None:
    text = 'Counting the <points x1="9.1" y1="11.7" x2="17.2" y2="41.3" alt="the boats"></points> shows 2.'
    points = parse_points(text, [SMALL])
    assert len(points) == 2
    assert points[0].label == "the boats"


def test_v1_values_above_100_are_dropped_with_a_reason() -> None:
    text = '<points x1="10.0" y1="20.0" x2="130.0" y2="44.0" x3="-1" y3="5" alt="m">m</points>'
    result = parse_points_detailed(text, [WIDE])
    assert len(result.points) == 1
    assert result.reason is not None and "dropped 2" in result.reason


def test_v1_points_map_onto_the_first_image() -> None:
    points = parse_points('<point x="50" y="50">a</point>', [SMALL, WIDE])
    assert _xy(points) == [(320.0, 240.0)]
    assert points[0].image_index == 0


@pytest.mark.parametrize("text", ["There are none.", "there are none", "I looked. There are none."])
def test_there_are_none(text: str) -> None:
    result = parse_points_detailed(text, [WIDE])
    assert result.points == ()
    assert result.format is None
    assert result.reason is not None and "found none" in result.reason


# ------------------------------------------------------------------------------------------- Molmo2


def test_molmo2_per_mille_of_non_square_image() -> None:
    result = parse_points_detailed('<points coords="1 1 500 250">dog</points>', [WIDE])
    assert result.format == "molmo2_points"
    assert result.reason is None
    assert result.points == (
        Point(x=640.0, y=180.0, x_norm=0.5, y_norm=0.25, label="dog", image_index=0, object_id=1),
    )


def test_molmo2_zero_padded_triples() -> None:
    points = parse_points('<points coords="1 1 049 005 2 469 417">dogs</points>', [(1000, 1000)])
    assert _xy(points) == [(49.0, 5.0), (469.0, 417.0)]
    assert [p.object_id for p in points] == [1, 2]


@pytest.mark.parametrize("separator", [";", "\t", " ; "])
def test_molmo2_several_images_each_with_its_own_size(separator: str) -> None:
    text = f'<points coords="1 1 500 250 2 100 100{separator}2 3 500 500">dogs</points>'
    result = parse_points_detailed(text, [WIDE, SMALL])
    assert result.reason is None
    assert _xy(result.points) == [(640.0, 180.0), (128.0, 72.0), (320.0, 240.0)]
    assert [p.image_index for p in result.points] == [0, 0, 1]
    assert [p.object_id for p in result.points] == [1, 2, 3]


def test_molmo2_image_index_without_a_size_is_dropped_with_a_reason() -> None:
    result = parse_points_detailed('<points coords="1 1 500 250;3 2 500 500">dogs</points>', [WIDE, SMALL])
    assert _xy(result.points) == [(640.0, 180.0)]
    assert result.reason is not None and "image 3" in result.reason and "image_sizes" in result.reason


def test_molmo2_out_of_range_points_are_dropped() -> None:
    result = parse_points_detailed('<points coords="1 1 1001 250 2 1000 1000 3 -5 10">x</points>', [WIDE])
    assert _xy(result.points) == [(1280.0, 720.0)]
    assert result.reason is not None and "dropped 2" in result.reason


def test_molmo2_tracks_use_timestamps() -> None:
    text = '<tracks coords="0.5 1 500 250 2 100 100;1.0 1 510 260">cars</tracks>'
    result = parse_points_detailed(text, [WIDE])
    assert result.format == "molmo2_tracks"
    assert [(p.timestamp, p.image_index, p.object_id) for p in result.points] == [
        (0.5, 0, 1),
        (0.5, 0, 2),
        (1.0, 1, 1),
    ]
    assert _xy(result.points)[2] == (652.8, 187.2)


def test_molmo2_video_points_read_timestamps() -> None:
    points = parse_points('<points coords="2.5 1 500 500\t4 1 250 250">ball</points>', [SMALL], video=True)
    assert [(p.timestamp, p.image_index) for p in points] == [(2.5, 0), (4.0, 1)]
    assert _xy(points) == [(320.0, 240.0), (160.0, 120.0)]


def test_molmo2_image_answer_with_fractional_index_is_rejected() -> None:
    result = parse_points_detailed('<points coords="0.5 1 500 250">x</points>', [WIDE])
    assert result.points == ()
    assert result.reason is not None and "image index" in result.reason


def test_several_tags_are_all_collected() -> None:
    text = (
        '<points coords="1 1 500 250">dogs</points> and '
        '<point x="50.0" y="50.0" alt="cat">cat</point> and <points coords="1 1 100 100">mice</points>'
    )
    result = parse_points_detailed(text, [WIDE])
    assert [p.label for p in result.points] == ["dogs", "cat", "mice"]
    assert result.format == "molmo2_points"


def test_molmo2_alt_and_self_closing_and_colon() -> None:
    text = 'Counting the <points coords="1 1 073 160 2 173 600" alt="boats">the boats</points> shows 2.'
    assert [p.label for p in parse_points(text, [WIDE])] == ["the boats"] * 2
    assert len(parse_points('<points coords="1: 1 500 250"/>', [WIDE])) == 1


# --------------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "text",
    [
        '<points coords="1 1 156 10',
        '<point x="61.5" y="40',
        '<points coords="1 1 156 104">do',
        '<point x="61.5" y="40.4" alt="red mug">red m',
    ],
)
def test_truncated_tags_yield_nothing_and_say_so(text: str) -> None:
    result = parse_points_detailed(text, [WIDE])
    assert result.points == ()
    assert result.reason is not None and "truncated" in result.reason


def test_truncated_tag_does_not_hide_a_later_complete_one() -> None:
    result = parse_points_detailed('<point x="1" <point x="50" y="50">a</point>', [WIDE])
    assert len(result.points) == 1
    assert result.reason is not None and "truncated" in result.reason


def test_incomplete_triple_keeps_complete_ones() -> None:
    result = parse_points_detailed('<points coords="1 1 500 250 2 100">x</points>', [WIDE])
    assert len(result.points) == 1
    assert result.reason is not None and "triple" in result.reason


@pytest.mark.parametrize("text", ["", "   ", "garbage", "<p>hello</p>", "<points>no coords</points>"])
def test_garbage_gives_no_points_and_a_reason(text: str) -> None:
    result = parse_points_detailed(text, [WIDE])
    assert result.points == ()
    assert result.format is None or result.format == "molmo1_points"
    assert result.reason


def test_garbage_reason_quotes_the_text_and_states_the_format() -> None:
    result = parse_points_detailed("I think it is on the left" + " really" * 50, [WIDE])
    assert result.reason is not None
    assert "'I think it is on the left" in result.reason and "..." in result.reason
    assert '<point x="61.5"' in result.reason and "<points coords=" in result.reason


@pytest.mark.parametrize("value", [None, 3, b"<point x='1' y='1'>a</point>", ["a"]])
def test_non_text_input(value: object) -> None:
    result = parse_points_detailed(value, [WIDE])  # type: ignore[arg-type]
    assert result == PointParse((), None, result.reason)
    assert result.reason is not None and "expected text" in result.reason
    assert parse_points(value, [WIDE]) == []  # type: ignore[arg-type]


def test_bad_image_sizes_never_raise() -> None:
    assert parse_points('<point x="5" y="5">a</point>', []) == []
    assert "image size" in (parse_points_detailed('<point x="5" y="5">a</point>', [(0, 10)]).reason or "")
    assert parse_points('<point x="5" y="5">a</point>', None) == []  # type: ignore[arg-type]


def test_a_bare_size_pair_is_one_image() -> None:
    assert _xy(parse_points('<points coords="1 1 500 250">x</points>', WIDE)) == [(640.0, 180.0)]  # type: ignore[arg-type]


def test_labels_are_unescaped() -> None:
    assert (
        parse_points('<point x="1" y="1" alt="a">salt &amp; pepper</point>', [WIDE])[0].label
        == "salt & pepper"
    )


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_point_parser_never_raises_on_any_text(text: str) -> None:
    result = parse_points_detailed(text, [WIDE, SMALL])
    assert isinstance(result, PointParse)
    assert result.points or result.reason


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='<>/"= \t;:.-0123456789xyalt pointscrackTheren', max_size=200), st.booleans())
def test_point_parser_never_raises_on_tag_like_text(text: str, video: bool) -> None:
    for point in parse_points(text, [WIDE, SMALL], video=video):
        assert 0.0 <= point.x_norm <= 1.0 and 0.0 <= point.y_norm <= 1.0


# ---------------------------------------------------------------------------------- answer complete


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("", False),
        ("<points coords=", False),
        ('<points coords="1 1 100 200">dogs', False),
        ('<points coords="1 1 100 200">dogs</points>', True),
        ('<tracks coords="0.5 1 100 200">car</tracks>', True),
        ('<point x="1" y="2" alt="a">a</point>', True),
        ('<points x1="1" y1="2" alt="a">a</points>', True),
        ('<points coords="1 1 100 200"/>', True),
        ("There are none.", True),
        ("</points> stray closing tag", False),
        (None, False),
    ],
)
def test_answer_is_complete(text: str, complete: bool) -> None:
    assert answer_is_complete(text) is complete


def test_answer_is_complete_grows_with_the_answer() -> None:
    answer = 'Counting the <points coords="1 1 073 160 2 173 600">boats</points> shows a total of 2.'
    first = next(i for i in range(len(answer) + 1) if answer_is_complete(answer[:i]))
    assert answer[:first].endswith("</points>")


# ------------------------------------------------------------------------------------------ renderers


def test_format_points_molmo2_golden() -> None:
    text = format_points_molmo2([[(0.156, 0.104), (0.469, 0.417)], [], [(0.0495, 1.0)]], "dogs")
    assert text == '<points coords="1 1 156 104 2 469 417;3 3 050 1000">dogs</points>'
    assert format_points_molmo2([[], []], "dogs") == "There are none."


def test_format_point_molmo1_golden() -> None:
    assert format_point_molmo1([(0.615, 0.404)], "red mug") == (
        '<point x="61.5" y="40.4" alt="red mug">red mug</point>'
    )
    assert format_point_molmo1([(0.1, 0.205), (0.301, 0.44)], "mugs") == (
        '<points x1="10.0" y1="20.5" x2="30.1" y2="44.0" alt="mugs">mugs</points>'
    )
    assert format_point_molmo1([], "mugs") == "There are none."


unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
sizes = st.tuples(st.integers(1, 4000), st.integers(1, 4000))
labels = st.text(max_size=20).map(str.strip)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(sizes, st.lists(st.tuples(unit, unit), max_size=5)), min_size=1, max_size=4),
    labels,
)
def test_molmo2_format_parse_round_trip(images: list, label: str) -> None:
    image_sizes = [size for size, _ in images]
    expected = [(i, x, y) for i, (_, pts) in enumerate(images) for x, y in pts]
    text = format_points_molmo2([pts for _, pts in images], label)
    result = parse_points_detailed(text, image_sizes)
    assert len(result.points) == len(expected)
    for point, (index, x, y) in zip(result.points, expected, strict=True):
        assert point.image_index == index
        assert abs(point.x_norm - x) <= 0.0005 + 1e-9 and abs(point.y_norm - y) <= 0.0005 + 1e-9
        width, height = image_sizes[index]
        assert point.x == pytest.approx(point.x_norm * width) and point.y == pytest.approx(
            point.y_norm * height
        )
        assert point.label == label
    assert [p.object_id for p in result.points] == list(range(1, len(expected) + 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(unit, unit), min_size=1, max_size=8), sizes, labels)
def test_molmo1_format_parse_round_trip(points: list, size: tuple[int, int], label: str) -> None:
    result = parse_points_detailed(format_point_molmo1(points, label), [size])
    assert result.format == ("molmo1_point" if len(points) == 1 else "molmo1_points")
    assert len(result.points) == len(points)
    for point, (x, y) in zip(result.points, points, strict=True):
        assert abs(point.x_norm - x) <= 0.0005 + 1e-9 and abs(point.y_norm - y) <= 0.0005 + 1e-9
        assert point.label == label


# -------------------------------------------------------------------------------------------- actions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Click(50.0, 25.0)", Action("click", x=640, y=180)),
        ("click ( 50 , 25 )", Action("click", x=640, y=180)),
        ("CLICK(50.0,25.0)", Action("click", x=640, y=180)),
        ("Long Press(10.0, 10.0)", Action("long_press", x=128, y=72)),
        ("long  press(10, 10)", Action("long_press", x=128, y=72)),
        ("Scroll down", Action("scroll", direction="down")),
        ("scroll  UP", Action("scroll", direction="up")),
        ("Scroll left", Action("scroll", direction="left")),
        ("Scroll right.", Action("scroll", direction="right")),
        ("Type some text", Action("input_text", text="some text")),
        ("type   Hello, World!  ", Action("input_text", text="Hello, World!")),
        ("Open App Settings", Action("open_app", app_name="Settings")),
        ("open app Google Maps", Action("open_app", app_name="Google Maps")),
        ("Open App Clock\nbecause the alarm is there", Action("open_app", app_name="Clock")),
        ("Navigate Home", Action("navigate_home")),
        ("navigate  back", Action("navigate_back")),
        ("Wait", Action("wait")),
        ("Double Click(50, 25)", Action("double_click", x=640, y=180)),
        ("Right Click(50, 25)", Action("right_click", x=640, y=180)),
        ("Drag(0, 0, 100, 100)", Action("drag", x=0, y=0, x2=1280, y2=720)),
        ("Hotkey ctrl+s", Action("hotkey", keys=("ctrl", "s"))),
        ("Hotkey Enter", Action("hotkey", keys=("enter",))),
        ("Done", Action("done")),
        ("Done.", Action("done")),
        ("Done 42 apples", Action("done", text="42 apples")),
        ("Scroll down 3", Action("scroll", direction="down", amount=3)),
    ],
)
def test_action_strings(text: str, expected: Action) -> None:
    result = parse_action_detailed(text, WIDE)
    assert result == ActionParse(expected, None)
    assert result.action is not None and result.action.raw == text


def test_plan_then_action_takes_the_last_action() -> None:
    text = "Plan: open the menu, then Action: click it.\nAction: Click(50.0, 25.0)"
    assert parse_action(text, WIDE) == Action("click", x=640, y=180)
    assert parse_action("Plan: go home first.\naction :  Navigate Home", WIDE) == Action("navigate_home")


@pytest.mark.parametrize(
    "text",
    [
        '{"action_type": "click", "x": 640, "y": 180}',
        'Action: ```json\n{"action_type": "click", "x": 640, "y": 180}\n```',
        'I will do {"type": "click", "x": 640, "y": 180} now',
        '{"note": {}, "type": "click", "x": 640.0, "y": 180.0}',
    ],
)
def test_json_actions_in_pixels(text: str) -> None:
    assert parse_action(text, WIDE) == Action("click", x=640, y=180)


def test_json_android_control_types() -> None:
    assert parse_action('{"action_type":"scroll","direction":"up"}', WIDE) == Action("scroll", direction="up")
    assert parse_action('{"action_type":"open_app","app_name":"Chrome"}', WIDE) == Action(
        "open_app", app_name="Chrome"
    )


@pytest.mark.parametrize(
    ("text", "snippets"),
    [
        ("Click(150.0, 20.0)", ["'Click(150.0, 20.0)'", "outside 0-100 percent", "Click(45.3, 71.2)"]),
        ("Click(10)", ["expected 2 numbers", "Click(45.3, 71.2)"]),
        ("Click(1, 2", ["missing ')'"]),
        ("Scroll sideways", ["up, down, left or right", "Scroll down"]),
        ("Type", ["nothing to type"]),
        ("Open App", ["no app name"]),
        ("Hotkey +", ["no keys"]),
        ("I don't know what to do", ["no action in", "Click(45.3, 71.2)", "Navigate Home", "action_type"]),
        ("", ["no action in", "expected one of"]),
        ('{"action_type": "fly"}', ["unknown action type 'fly'"]),
        ('{"action_type": "click", "x": 5000, "y": 1}', ["outside the 1280x720 screenshot"]),
        ('{"type": "drag", "x": 5, "y": 1}', ["drag action", "missing required field 'x2'"]),
    ],
)
def test_unparseable_actions_explain_themselves(text: str, snippets: list[str]) -> None:
    result = parse_action_detailed(text, WIDE)
    assert result.action is None
    assert result.reason is not None
    for snippet in snippets:
        assert snippet in result.reason


def test_action_reason_truncates_long_output() -> None:
    result = parse_action_detailed("blah " * 1000, WIDE)
    assert result.reason is not None and len(result.reason) < 1000 and "..." in result.reason


def test_action_parser_odd_inputs() -> None:
    assert "expected text" in (parse_action_detailed(None, WIDE).reason or "")  # type: ignore[arg-type]
    assert "invalid image size" in (parse_action_detailed("Wait", (0, 0)).reason or "")
    assert parse_action("Clicked the button", WIDE) is None


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_action_parser_never_raises(text: str) -> None:
    result = parse_action_detailed(text, WIDE)
    assert (result.action is None) != (result.reason is None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ClickTypeScrollDoneAction: (),.0123456789{}"_xy-', max_size=80))
def test_action_parser_never_raises_on_action_like_text(text: str) -> None:
    assert isinstance(parse_action_detailed(text, SMALL), ActionParse)


ACTIONS_FOR_STRINGS = [
    Action("click", x=640, y=180),
    Action("long_press", x=12.8, y=7.2),
    Action("double_click", x=1280, y=720),
    Action("right_click", x=0, y=0),
    Action("drag", x=128, y=72, x2=1152, y2=648),
    Action("scroll", direction="left"),
    Action("scroll", direction="down", amount=2),
    Action("input_text", text="hello world"),
    Action("open_app", app_name="Google Maps"),
    Action("navigate_home"),
    Action("navigate_back"),
    Action("wait"),
    Action("hotkey", keys=("ctrl", "shift", "t")),
    Action("done"),
    Action("done", text="The answer is 42"),
]


@pytest.mark.parametrize("action", ACTIONS_FOR_STRINGS, ids=lambda a: a.type.value)
def test_action_string_round_trip(action: Action) -> None:
    assert parse_action(format_action_molmo(action, WIDE), WIDE) == action


def test_format_action_golden() -> None:
    assert format_action_molmo(Action("click", x=579.84, y=512.64), WIDE) == "Click(45.3, 71.2)"
    assert format_action_molmo(Action("long_press", x=640, y=360), WIDE) == "Long Press(50.0, 50.0)"
    assert format_action_molmo(Action("scroll", direction="down"), WIDE) == "Scroll down"
    assert format_action_molmo(Action("input_text", text="abc"), WIDE) == "Type abc"
    assert format_action_molmo(Action("open_app", app_name="Settings"), WIDE) == "Open App Settings"
    assert format_action_molmo(Action("navigate_home"), WIDE) == "Navigate Home"
    assert format_action_molmo(Action("hotkey", keys=["ctrl", "s"]), WIDE) == "Hotkey ctrl+s"


def test_desktop_type_renders_as_type_and_reads_as_input_text() -> None:
    text = format_action_molmo(Action("type", text="abc"), WIDE)
    assert text == "Type abc"
    assert parse_action(text, WIDE) == Action(ActionType.INPUT_TEXT, text="abc")


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["click", "long_press", "double_click", "right_click"]),
    sizes,
    unit,
    unit,
)
def test_point_action_round_trip_within_rounding(
    kind: str, size: tuple[int, int], fx: float, fy: float
) -> None:
    width, height = size
    action = Action(kind, x=fx * width, y=fy * height)
    parsed = parse_action(format_action_molmo(action, size), size)
    assert parsed is not None and parsed.type == action.type and parsed.point is not None
    assert abs(parsed.point[0] - fx * width) <= 0.0005 * width + 1e-6
    assert abs(parsed.point[1] - fy * height) <= 0.0005 * height + 1e-6


# -------------------------------------------------------------------------------- linear-time guard


@functools.cache
def _junk() -> dict[str, str]:
    rng = random.Random(0)
    return {
        "open coords": '<points coords="' + "1 " * 500_000,
        "closed coords": '<points coords="' + "1 " * 500_000 + '">x</points>',
        "open points": '<point x="' * 100_000,
        "open points then >": '<point x="' * 100_000 + ">",
        "unclosed elements": '<point x="1" y="2"><points coords="1 1 1 1"><tracks coords="1">' * 15_000,
        "long attribute": "<point " + "a" * 1_000_000 + ">a</point>",
        "quotes": "<point " + '"' * 1_000_000 + ">a</point>",
        "v1 pairs": "<points " + 'x1="1" y1="2" ' * 70_000 + ">a</points>",
        "many elements": '<points coords="1 1 100 200">a</points>' * 25_000,
        "random unicode": "".join(chr(rng.randint(32, 0x2FFFF)) for _ in range(1_000_000)),
        "angles": "<" * 1_000_000,
        "action labels": "Action:" * 150_000,
        "spaces": "Click(" + " " * 1_000_000,
        "digits": "Click(" + "1" * 1_000_000 + ")",
        "nested json": '{"a":[' * 160_000,
        "open json string": '{"type": "' + "x" * 1_000_000,
        "braces": "{" * 1_000_000,
    }


@pytest.mark.parametrize("name", list(_junk()))
def test_one_megabyte_of_junk_reads_as_nothing(name: str) -> None:
    """Junk gives no points and no action, with a reason, and never raises (its speed, linear in the text,
    is printed by ``benchmarks/speed_checks.py``: timing is not asserted in tests)."""
    text = _junk()[name]
    assert len(text) >= 900_000
    for video in (False, True):
        parsed = parse_points_detailed(text, [WIDE], video=video)
        assert len(parsed.points) <= 20_000  # repeated valid tags are read, up to the parser's cap
        assert parsed.points or parsed.reason
    action = parse_action_detailed(text, WIDE)
    assert action.action is None and action.reason
    assert isinstance(answer_is_complete(text), bool)
