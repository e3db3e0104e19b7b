"""An independent table of verdicts for the two AndroidControl scoring protocols.

Every expected value below was derived by reading the released evaluators, not our implementation:

* ``molmo``: allenai/molmo ``olmo/eval/evaluators.py`` (``compute_stepwise_accuracy``,
  ``AndroidControlEval``),
  ground truth from ``olmo/hf_datasets/android_control.py`` (``process_action``, ``_generate_examples``,
  ``map_coordinates_mmolmo``, ``map_bounding_box``) and ``olmo/hf_datasets/android_control_utils.py``
  (``extract_bbs_from_a11y``, ``find_gt_box(strategy='smallest')``, ``within_bounding_box``,
  ``extract_app_bb``, ``reduce_a11y_tree``, ``remove_duplicates``, ``Element.__str__``).
* ``distance14``: OS-Copilot/OS-Atlas ``eval/eval_scripts/android_control/evaluation_unify.py``
  (``evaluate`` and ``calculate_f1_score``), with Molmo-format answers rewritten to OS-Atlas form first.

Short names used in the case ids and comments:
  ``cut``      AndroidControlEval: ``pred_text.split("Action:")[1].strip()`` when "Action:" is present.
  ``parse``    compute_stepwise_accuracy.parse_action: ``strip().lower()``, type by ``startswith``.
  ``coords``   parse_action.get_coords: first two ``\\d+(?:\\.\\d+)?`` as floats (minus signs are lost).
  ``inbox``    compute_stepwise_accuracy.within_bounding_box: ``re.findall(r"\\d+\\.\\d+", box)``, inclusive.
  ``bbs``      extract_bbs_from_a11y; ``smallest`` find_gt_box; ``fallback`` the +/-10 px box.
  ``map``      map_coordinates_mmolmo / map_bounding_box: ``round(v / W * 100, 1)``.
  ``appbb``    extract_app_bb on reduce_a11y_tree's text (lower-cased tree, search text as given).
  ``a14``      the OS-Atlas script.
"""

from __future__ import annotations

import functools

import pytest

from molmo_envs.androidcontrol.distance14_protocol import os_atlas_truth, score_distance14
from molmo_envs.androidcontrol.molmo_protocol import forest_to_json, molmo_truth, score_molmo

# ----------------------------------------------------------------------------------------------------
# Builders: forests in the shape json.loads(MessageToJson(forest)) has (proto3: 0 / "" / False are omitted).
# ----------------------------------------------------------------------------------------------------

E = (1000, 2000)  # easy screen: percent = x / 10, y / 20
R = (1080, 2400)  # realistic screen: the 0.1 % rounding bites


def nd(
    x1=0, y1=0, x2=0, y2=0, *, text="", vis=True, cls="", res="", pkg="com.example.app", click=False, nb=False
):
    """One node as MessageToJson writes it; nb=True: no boundsInScreen at all."""
    node: dict = {}
    if not nb:
        node["boundsInScreen"] = {
            k: v for k, v in zip(("left", "top", "right", "bottom"), (x1, y1, x2, y2), strict=True) if v != 0
        }
    if cls:
        node["className"] = cls
    if pkg:
        node["packageName"] = pkg
    if text:
        node["text"] = text
    if res:
        node["viewIdResourceName"] = res
    if click:
        node["isClickable"] = True
    if vis:
        node["isVisibleToUser"] = True
    return node


def forest(*windows):
    return {"windows": [{"tree": {"nodes": list(w)}} for w in windows]}


def click(x, y):
    return {"action_type": "click", "x": x, "y": y}


def long_press(x, y):
    return {"action_type": "long_press", "x": x, "y": y}


def open_app(name):
    return {"action_type": "open_app", "app_name": name}


def type_text(text):
    return {"action_type": "input_text", "text": text}


def scroll(direction):
    return {"action_type": "scroll", "direction": direction}


HOME = {"action_type": "navigate_home"}
BACK = {"action_type": "navigate_back"}
WAIT = {"action_type": "wait"}

NO_NODES = {"windows": []}
BOX = nd(100, 200, 500, 400)  # E: [10.0, 10.0, 50.0, 20.0]; R: [9.3, 8.3, 46.3, 16.7]
GMAIL = nd(100, 200, 300, 400, text="Gmail", click=True)  # E: [10.0, 10.0, 30.0, 20.0]
SWITCH = "android.widget.Switch"
EDIT = "android.widget.EditText"

# ----------------------------------------------------------------------------------------------------
# Part 1: Molmo ground truth (target_action, str(target_box)) for one step.
# ----------------------------------------------------------------------------------------------------

FB_30_15 = "[29.0, 14.5, 31.0, 15.5]"  # fallback around (300, 300) px on E
E_BOX = "[10.0, 10.0, 50.0, 20.0]"
APP_BOX = "[10.0, 10.0, 30.0, 20.0]"

TRUTH_CASES = [
    # --- click: where the nodes come from (bbs iterates a11y["windows"]; decision: no key -> no nodes)
    pytest.param(click(300, 300), E, {}, "Click(30.0, 15.0)", FB_30_15, id="no-windows-key-fallback"),
    pytest.param(click(300, 300), E, NO_NODES, "Click(30.0, 15.0)", FB_30_15, id="empty-windows-fallback"),
    pytest.param(click(300, 300), E, {"windows": [{}]}, "Click(30.0, 15.0)", FB_30_15, id="window-no-tree"),
    pytest.param(
        click(300, 300), E, {"windows": [{"tree": {}}]}, "Click(30.0, 15.0)", FB_30_15, id="tree-no-nodes"
    ),
    pytest.param(click(300, 300), E, forest([BOX]), "Click(30.0, 15.0)", E_BOX, id="inside-node"),
    # --- inclusive borders in pixels (utils.within_bounding_box: int coords, x1 <= x <= x2)
    pytest.param(click(100, 300), E, forest([BOX]), "Click(10.0, 15.0)", E_BOX, id="left-edge-inclusive"),
    pytest.param(click(500, 300), E, forest([BOX]), "Click(50.0, 15.0)", E_BOX, id="right-edge-inclusive"),
    pytest.param(click(300, 200), E, forest([BOX]), "Click(30.0, 10.0)", E_BOX, id="top-edge-inclusive"),
    pytest.param(click(300, 400), E, forest([BOX]), "Click(30.0, 20.0)", E_BOX, id="bottom-edge-inclusive"),
    pytest.param(
        click(99, 300),
        E,
        forest([BOX]),
        "Click(9.9, 15.0)",
        "[8.9, 14.5, 10.9, 15.5]",
        id="1px-left-fallback",
    ),
    pytest.param(
        click(501, 300),
        E,
        forest([BOX]),
        "Click(50.1, 15.0)",
        "[49.1, 14.5, 51.1, 15.5]",
        id="1px-right-fallback",
    ),
    pytest.param(
        click(300, 402),
        E,
        forest([BOX]),
        "Click(30.0, 20.1)",
        "[29.0, 19.6, 31.0, 20.6]",
        id="2px-below-fallback",
    ),
    pytest.param(
        click(300, 198),
        E,
        forest([BOX]),
        "Click(30.0, 9.9)",
        "[29.0, 9.4, 31.0, 10.4]",
        id="2px-above-fallback",
    ),
    # --- smallest rule: sort by the (width, height) tuple, stable
    pytest.param(
        click(300, 300),
        E,
        forest([nd(x2=1000, y2=2000), BOX]),
        "Click(30.0, 15.0)",
        E_BOX,
        id="nested-inner-wins",
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([BOX, nd(x2=1000, y2=2000)]),
        "Click(30.0, 15.0)",
        E_BOX,
        id="nested-inner-first",
    ),
    pytest.param(
        click(175, 175),
        E,
        forest([nd(100, 100, 200, 200), nd(150, 150, 250, 250)]),
        "Click(17.5, 8.8)",
        "[10.0, 5.0, 20.0, 10.0]",
        id="same-size-first-wins",
    ),
    pytest.param(
        click(175, 175),
        E,
        forest([nd(150, 150, 250, 250), nd(100, 100, 200, 200)]),
        "Click(17.5, 8.8)",
        "[15.0, 7.5, 25.0, 12.5]",
        id="same-size-first-wins-swapped",
    ),
    pytest.param(
        click(50, 50),
        E,
        forest([nd(x2=100, y2=100), nd(x2=99, y2=1000)]),
        "Click(5.0, 2.5)",
        "[0.0, 0.0, 9.9, 50.0]",
        id="width-compared-first",
    ),
    pytest.param(
        click(50, 50),
        E,
        forest([nd(x2=100, y2=500), nd(x2=100, y2=300)]),
        "Click(5.0, 2.5)",
        "[0.0, 0.0, 10.0, 15.0]",
        id="height-breaks-width-tie",
    ),
    pytest.param(
        click(20, 50),
        E,
        forest([nd(x2=100, y2=100), nd(x2=50, y2=1000)]),
        "Click(2.0, 2.5)",
        "[0.0, 0.0, 5.0, 50.0]",
        id="not-by-area",
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([nd(0, 0, 1000, 2000), nd(250, 250, 350, 350, vis=False), BOX]),
        "Click(30.0, 15.0)",
        E_BOX,
        id="invisible-smaller-ignored",
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([{"boundsInScreen": {"left": 250, "top": 250, "right": 350, "bottom": 350}}, BOX]),
        "Click(30.0, 15.0)",
        E_BOX,
        id="visible-key-missing-ignored",
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([{**nd(250, 250, 350, 350), "isVisibleToUser": False}, BOX]),
        "Click(30.0, 15.0)",
        E_BOX,
        id="visible-false-ignored",
    ),
    pytest.param(
        click(300, 300), E, forest([nd(nb=True)]), "Click(30.0, 15.0)", FB_30_15, id="no-bounds-skipped"
    ),
    pytest.param(
        click(300, 300), E, forest([nd()]), "Click(30.0, 15.0)", FB_30_15, id="all-zero-bounds-skipped"
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([nd(300, 300, 300, 300), BOX]),
        "Click(30.0, 15.0)",
        "[30.0, 15.0, 30.0, 15.0]",
        id="zero-size-node-wins",
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([nd(300, 250, 300, 350), BOX]),
        "Click(30.0, 15.0)",
        "[30.0, 12.5, 30.0, 17.5]",
        id="zero-width-node-wins",
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([nd(500, 400, 100, 200)]),
        "Click(30.0, 15.0)",
        FB_30_15,
        id="inverted-node-never",
    ),
    # --- bounds equal to 0 are omitted by MessageToJson and bbs substitutes 0 / W / H
    pytest.param(
        click(900, 200),
        E,
        forest([nd(100, 100, 0, 300)]),
        "Click(90.0, 10.0)",
        "[10.0, 5.0, 100.0, 15.0]",
        id="right-0-becomes-W",
    ),
    pytest.param(
        click(200, 1500),
        E,
        forest([nd(100, 100, 300, 0)]),
        "Click(20.0, 75.0)",
        "[10.0, 5.0, 30.0, 100.0]",
        id="bottom-0-becomes-H",
    ),
    pytest.param(
        click(0, 0),
        E,
        forest([nd(0, 0, 200, 300)]),
        "Click(0.0, 0.0)",
        "[0.0, 0.0, 20.0, 15.0]",
        id="left-top-0",
    ),
    pytest.param(
        click(700, 1000),
        E,
        forest([nd(500, 0, 0, 0)]),
        "Click(70.0, 50.0)",
        "[50.0, 0.0, 100.0, 100.0]",
        id="only-left-present",
    ),
    pytest.param(
        click(700, 1000),
        R,
        forest([nd(540, 0, 0, 0)]),
        "Click(64.8, 41.7)",
        "[50.0, 0.0, 100.0, 100.0]",
        id="only-left-present-R",
    ),
    # --- negative / partly off-screen boxes (the minus survives in the string; inbox drops it later)
    pytest.param(
        click(10, 200),
        E,
        forest([nd(-50, 100, 200, 300)]),
        "Click(1.0, 10.0)",
        "[-5.0, 5.0, 20.0, 15.0]",
        id="negative-left-node",
    ),
    pytest.param(
        click(5, 1000),
        E,
        NO_NODES,
        "Click(0.5, 50.0)",
        "[-0.5, 49.5, 1.5, 50.5]",
        id="fallback-off-left-edge",
    ),
    pytest.param(
        click(0, 0), E, NO_NODES, "Click(0.0, 0.0)", "[-1.0, -0.5, 1.0, 0.5]", id="fallback-at-origin"
    ),
    pytest.param(
        click(1000, 2000),
        E,
        NO_NODES,
        "Click(100.0, 100.0)",
        "[99.0, 99.5, 101.0, 100.5]",
        id="fallback-far-corner",
    ),
    # --- multiple windows: all nodes of all windows compete
    pytest.param(
        click(300, 300),
        E,
        forest([nd(x2=1000, y2=2000)], [BOX]),
        "Click(30.0, 15.0)",
        E_BOX,
        id="second-window-smaller",
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([BOX], [nd(x2=1000, y2=2000)]),
        "Click(30.0, 15.0)",
        E_BOX,
        id="first-window-smaller",
    ),
    pytest.param(
        click(175, 175),
        E,
        forest([nd(100, 100, 200, 200)], [nd(150, 150, 250, 250)]),
        "Click(17.5, 8.8)",
        "[10.0, 5.0, 20.0, 10.0]",
        id="tie-across-windows-first",
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([nd(x2=1000, y2=2000)], [nd(250, 250, 350, 350, vis=False)]),
        "Click(30.0, 15.0)",
        "[0.0, 0.0, 100.0, 100.0]",
        id="second-window-invisible",
    ),
    pytest.param(
        click(300, 300),
        E,
        {"windows": [{}, {"tree": {"nodes": [BOX]}}]},
        "Click(30.0, 15.0)",
        E_BOX,
        id="empty-window-then-node",
    ),
    # --- long press uses the same box
    pytest.param(
        long_press(300, 300), E, forest([BOX]), "Long Press(30.0, 15.0)", E_BOX, id="long-press-box"
    ),
    pytest.param(
        long_press(5, 1000),
        E,
        NO_NODES,
        "Long Press(0.5, 50.0)",
        "[-0.5, 49.5, 1.5, 50.5]",
        id="long-press-fallback",
    ),
    # --- floats / negatives in the action JSON: map's r"Click\((\d+), (\d+)\)" fails -> the pixel text stays,
    #     and the box's r"\d+" takes the fraction digits as the second number
    pytest.param(
        click(300.0, 300),
        E,
        forest([BOX]),
        "Click(300.0, 300)",
        "[29.0, -0.5, 31.0, 0.5]",
        id="float-x-box-at-y0",
    ),
    pytest.param(click(300, 300.0), E, forest([BOX]), "Click(300, 300.0)", E_BOX, id="float-y-box-ok"),
    pytest.param(
        click(300.0, 300.0),
        E,
        forest([nd(0, 0, 1000, 100), BOX]),
        "Click(300.0, 300.0)",
        "[0.0, 0.0, 100.0, 5.0]",
        id="float-xy-box-of-top-strip",
    ),
    pytest.param(
        click(561.0, 535),
        R,
        NO_NODES,
        "Click(561.0, 535)",
        "[51.0, -0.4, 52.9, 0.4]",
        id="float-x-R-fallback",
    ),
    pytest.param(
        long_press(300.5, 300),
        E,
        NO_NODES,
        "Long Press(300.5, 300)",
        "[29.0, -0.2, 31.0, 0.8]",
        id="float-long-press-frac-5",
    ),
    pytest.param(
        click(-3, 300),
        E,
        NO_NODES,
        "Click(-3, 300)",
        "[-0.7, 14.5, 1.3, 15.5]",
        id="negative-x-minus-dropped",
    ),
    # --- the realistic screen: rounding
    pytest.param(
        click(561, 535), R, NO_NODES, "Click(51.9, 22.3)", "[51.0, 21.9, 52.9, 22.7]", id="R-fallback"
    ),
    pytest.param(
        click(300, 300), R, forest([BOX]), "Click(27.8, 12.5)", "[9.3, 8.3, 46.3, 16.7]", id="R-node"
    ),
    pytest.param(
        click(1, 1200), R, NO_NODES, "Click(0.1, 50.0)", "[-0.8, 49.6, 1.0, 50.4]", id="R-x1-fallback"
    ),
    pytest.param(
        click(1080, 2400),
        R,
        NO_NODES,
        "Click(100.0, 100.0)",
        "[99.1, 99.6, 100.9, 100.4]",
        id="R-corner-fallback",
    ),
    pytest.param(
        click(10, 200),
        R,
        forest([nd(-50, 100, 200, 300)]),
        "Click(0.9, 8.3)",
        "[-4.6, 4.2, 18.5, 12.5]",
        id="R-negative-left-node",
    ),
    # y - 10 = -1 px: -1 / 2400 * 100 rounds to -0.0, printed "-0.0"
    pytest.param(
        click(540, 9), R, NO_NODES, "Click(50.0, 0.4)", "[49.1, -0.0, 50.9, 0.8]", id="R-negative-zero"
    ),
    # --- open_app: the box extract_app_bb finds in the reduced tree
    pytest.param(open_app("gmail"), E, forest([GMAIL]), "Open App gmail", APP_BOX, id="app-lowercase-found"),
    pytest.param(
        open_app("Gmail"), E, forest([GMAIL]), "Open App Gmail", "", id="app-capitalised-never-found"
    ),
    pytest.param(open_app("GMAIL"), E, forest([GMAIL]), "Open App GMAIL", "", id="app-upper-never-found"),
    pytest.param(open_app("gmail"), E, {}, "Open App gmail", "", id="app-no-windows-key"),
    pytest.param(open_app("gmail"), E, NO_NODES, "Open App gmail", "", id="app-no-nodes"),
    pytest.param(open_app("chrome"), E, forest([GMAIL]), "Open App chrome", "", id="app-absent"),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(100, 200, 300, 400, text="Gmail", vis=False)]),
        "Open App gmail",
        "",
        id="app-invisible",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(100, 200, 301, 401, text="Gmail")]),
        "Open App gmail",
        APP_BOX,
        id="app-odd-size-floor",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(101, 201, 300, 400, text="Gmail")]),
        "Open App gmail",
        "[10.1, 10.1, 29.9, 20.0]",  # bottom 399: 399 / 2000 * 100 == 19.950000000000003 -> 20.0
        id="app-odd-size-shrinks",
    ),
    pytest.param(
        open_app("maps"),
        E,
        forest([nd(500, 500, 700, 700, text="Maps Go"), nd(100, 200, 300, 400, text="Maps")]),
        "Open App maps",
        "[50.0, 25.0, 70.0, 35.0]",
        id="app-prefix-of-earlier-text",
    ),
    pytest.param(
        open_app("maps"),
        E,
        forest([nd(100, 200, 300, 400, text="Maps"), nd(500, 500, 700, 700, text="Maps Go")]),
        "Open App maps",
        APP_BOX,
        id="app-exact-first",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(500, 500, 700, 700, text="Gmail", vis=False), GMAIL]),
        "Open App gmail",
        "",
        id="app-dup-text-first-invisible",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(500, 500, 700, 700, text="Gmail"), GMAIL]),
        "Open App gmail",
        "[50.0, 25.0, 70.0, 35.0]",
        id="app-dup-text-first-kept",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(500, 500, 700, 700, text="Gmail", vis=False)], [GMAIL]),
        "Open App gmail",
        APP_BOX,
        id="app-dup-text-other-window",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(500, 500, 700, 700, text="GMAIL"), GMAIL]),
        "Open App gmail",
        "[50.0, 25.0, 70.0, 35.0]",
        id="app-texts-differ-in-case",
    ),
    pytest.param(
        open_app("switch"),
        E,
        forest([nd(100, 200, 300, 400, cls=SWITCH)]),
        "Open App switch",
        APP_BOX,
        id="switch",
    ),
    pytest.param(
        open_app("switch"),
        E,
        forest([nd(0, 0, 50, 50), nd(100, 200, 300, 400, cls=SWITCH)]),
        "Open App switch",
        "",
        id="switch-removed-as-dup-textless",
    ),
    pytest.param(
        open_app("switch"),
        E,
        forest([nd(100, 200, 300, 400, cls=SWITCH, text="Wi-Fi")]),
        "Open App switch",
        "",
        id="switch-suffix-after-text",
    ),
    pytest.param(
        open_app("wi-fi"),
        E,
        forest([nd(100, 200, 300, 400, cls=SWITCH, text="Wi-Fi")]),
        "Open App wi-fi",
        APP_BOX,
        id="switch-own-text",
    ),
    pytest.param(
        open_app("notes"),
        E,
        forest([nd(100, 200, 300, 400, cls=EDIT, text="Notes")]),
        "Open App notes",
        APP_BOX,
        id="editabletext-suffix",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(100, 200, 300, 400, res="com.google.android.gm:id/gmail")]),
        "Open App gmail",
        "",
        id="resource-not-text",
    ),
    pytest.param(
        open_app("maps"),
        E,
        forest(
            [
                nd(0, 0, 10, 10, text="x", pkg="com.a"),
                nd(100, 200, 300, 400, text="Maps", pkg="com.b"),
                nd(500, 500, 700, 700, text="Maps Go", pkg="com.a"),
            ]
        ),
        "Open App maps",
        "[50.0, 25.0, 70.0, 35.0]",
        id="grouped-by-package-order",
    ),
    pytest.param(
        open_app("what?"),
        E,
        forest([nd(100, 200, 300, 400, text="What?")]),
        "Open App what?",
        APP_BOX,
        id="regex-question-mark",
    ),
    pytest.param(
        open_app("app (beta)"),
        E,
        forest([nd(100, 200, 300, 400, text="App (beta)")]),
        "Open App app (beta)",
        "",
        id="regex-parens-no-match",
    ),
    pytest.param(
        open_app("app ("),
        E,
        forest([nd(100, 200, 300, 400, text="App (")]),
        "Open App app (",
        "",
        id="regex-invalid-decision",
    ),
    pytest.param(
        open_app("c++"),
        E,
        forest([nd(100, 200, 300, 400, text="C++")]),
        "Open App c++",
        APP_BOX,
        id="regex-possessive-py311",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(-101, 200, 99, 400, text="Gmail")]),
        "Open App gmail",
        "",
        id="app-negative-center",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(100, 200, 300, 0, text="Gmail")]),
        "Open App gmail",
        "",
        id="app-bottom-0-negative-size",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(0, 0, 0, 0, text="Gmail")]),
        "Open App gmail",
        "[0.0, 0.0, 0.0, 0.0]",
        id="app-zero-bounds",
    ),
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(0, 0, 10, 10, text="x")], [GMAIL]),
        "Open App gmail",
        APP_BOX,
        id="app-second-window",
    ),
    pytest.param(
        open_app("google maps"),
        E,
        forest([nd(100, 200, 300, 400, text="Google Maps")]),
        "Open App google maps",
        APP_BOX,
        id="app-two-words",
    ),
    pytest.param(
        open_app(""),
        E,
        forest([nd(100, 200, 300, 400, text="Clock")]),
        "Open App ",
        APP_BOX,
        id="app-empty-name",
    ),
    pytest.param(
        open_app("gmail"),
        R,
        forest([nd(100, 200, 300, 400, text="Gmail")]),
        "Open App gmail",
        "[9.3, 8.3, 27.8, 16.7]",
        id="app-R",
    ),
    # --- more oddities
    pytest.param(
        open_app("gmail"),
        E,
        forest([nd(-101, 200, 99, 400, text="Gmail")], [GMAIL]),
        "Open App gmail",
        APP_BOX,
        id="app-negative-center-skipped-next-matches",
    ),
    pytest.param(
        open_app("a.b"),
        E,
        forest([nd(500, 500, 700, 700, text="axb"), nd(100, 200, 300, 400, text="a.b")]),
        "Open App a.b",
        "[50.0, 25.0, 70.0, 35.0]",
        id="regex-dot-matches-earlier-text",
    ),
    pytest.param(
        open_app("a.b"),
        E,
        forest([nd(500, 500, 700, 700, text="axb")]),
        "Open App a.b",
        "",
        id="regex-dot-literal-check-first",
    ),
    pytest.param(
        click(300, 300),
        E,
        forest([nd(0, 0, 1000, 2000, text="Same"), nd(250, 250, 350, 350, text="Same")]),
        "Click(30.0, 15.0)",
        "[25.0, 12.5, 35.0, 17.5]",
        id="click-ignores-remove-duplicates",
    ),
    pytest.param(
        click(300.25, 300),
        E,
        NO_NODES,
        "Click(300.25, 300)",
        "[29.0, 0.8, 31.0, 1.8]",
        id="float-x-fraction-25-is-y",
    ),
    pytest.param(
        click(-3.5, 300), E, NO_NODES, "Click(-3.5, 300)", "[-0.7, -0.2, 1.3, 0.8]", id="negative-float-x"
    ),
    pytest.param(
        click(300, -7),
        E,
        NO_NODES,
        "Click(300, -7)",
        "[29.0, -0.1, 31.0, 0.9]",
        id="negative-y-minus-dropped",
    ),
    pytest.param(
        click(300, 300),
        E,
        {"windows": [{"tree": {"nodes": []}}, {"tree": {"nodes": [BOX]}}]},
        "Click(30.0, 15.0)",
        E_BOX,
        id="empty-nodes-window",
    ),
    # --- the other action types: no box
    pytest.param(scroll("down"), E, forest([BOX]), "Scroll down", "", id="scroll-down"),
    pytest.param(scroll("up"), E, forest([BOX]), "Scroll up", "", id="scroll-up"),
    pytest.param(scroll("left"), E, NO_NODES, "Scroll left", "", id="scroll-left"),
    pytest.param(scroll("right"), E, NO_NODES, "Scroll right", "", id="scroll-right"),
    pytest.param(type_text("Hello World"), E, forest([BOX]), "Type Hello World", "", id="type"),
    pytest.param(type_text(""), E, NO_NODES, "Type ", "", id="type-empty"),
    pytest.param(type_text("Click(1, 2)"), E, NO_NODES, "Type Click(1, 2)", "", id="type-looks-like-click"),
    pytest.param(HOME, E, forest([BOX]), "Navigate Home", "", id="home"),
    pytest.param(BACK, E, NO_NODES, "Navigate Back", "", id="back"),
    pytest.param(WAIT, E, NO_NODES, "Wait", "", id="wait"),
    pytest.param({"action_type": "status"}, E, NO_NODES, "", "", id="unknown-action-type-empty"),
]


@pytest.mark.parametrize(("action", "dims", "tree", "want_action", "want_box"), TRUTH_CASES)
def test_molmo_truth(action, dims, tree, want_action, want_box):
    truth = molmo_truth(action, dims, tree)
    assert (truth.target_action, truth.target_box) == (want_action, want_box)


# ----------------------------------------------------------------------------------------------------
# Part 2: Molmo verdicts. A scenario is one ground-truth step; each case is (scenario, answer, expected).
# ----------------------------------------------------------------------------------------------------

SCENARIOS = {
    # Click(30.0, 15.0), box [10.0, 10.0, 50.0, 20.0]
    "click": (click(300, 300), E, forest([BOX])),
    # Click(27.8, 12.5), box [9.3, 8.3, 46.3, 16.7]
    # (pixels 100..500 = 9.259..46.296 %, 200..400 = 8.333..16.667 %)
    "click_R": (click(300, 300), R, forest([BOX])),
    # Click(561.0, 535), box [51.0, -0.4, 52.9, 0.4] -> inbox reads [51.0, 0.4, 52.9, 0.4]
    "click_float": (click(561.0, 535), R, NO_NODES),
    # Click(0.1, 50.0), box [-0.8, 49.6, 1.0, 50.4] -> inbox reads x in [0.8, 1.0]
    "click_edge": (click(1, 1200), R, NO_NODES),
    # Click(0.9, 8.3), box [-4.6, 4.2, 18.5, 12.5] -> inbox reads x in [4.6, 18.5]
    "click_neg": (click(10, 200), R, forest([nd(-50, 100, 200, 300)])),
    # Click(30.0, 15.0), box [30.0, 15.0, 30.0, 15.0]
    "click_zero": (click(300, 300), E, forest([nd(300, 300, 300, 300), BOX])),
    # Click(5.0, 2.5), box [0.0, 0.0, 9.9, 50.0] (width sorts first)
    "click_width": (click(50, 50), E, forest([nd(x2=100, y2=100), nd(x2=99, y2=1000)])),
    # Click(17.5, 8.8), box [10.0, 5.0, 20.0, 10.0] (stable tie)
    "click_tie": (click(175, 175), E, forest([nd(100, 100, 200, 200), nd(150, 150, 250, 250)])),
    # Click(30.0, 15.0), box [0.0, 0.0, 100.0, 100.0]: the small node is invisible
    "click_invis": (click(300, 300), E, forest([nd(x2=1000, y2=2000), nd(250, 250, 350, 350, vis=False)])),
    # Click(90.0, 10.0), box [10.0, 5.0, 100.0, 15.0] (right 0 -> W)
    "click_right0": (click(900, 200), E, forest([nd(100, 100, 0, 300)])),
    # Click(30.0, 15.0), fallback [29.0, 14.5, 31.0, 15.5]
    "click_fb": (click(300, 300), E, NO_NODES),
    # Click(300, 300.0) (pixels kept), box [10.0, 10.0, 50.0, 20.0]
    "click_float_y": (click(300, 300.0), E, forest([BOX])),
    # Long Press(30.0, 15.0), box [10.0, 10.0, 50.0, 20.0]
    "lp": (long_press(300, 300), E, forest([BOX])),
    # Open App gmail, box [10.0, 10.0, 30.0, 20.0]
    "app": (open_app("gmail"), E, forest([GMAIL])),
    # Open App Gmail, box ""
    "app_cap": (open_app("Gmail"), E, forest([GMAIL])),
    # Open App Google Maps, box ""
    "app_two": (open_app("Google Maps"), E, NO_NODES),
    "type": (type_text("Hello World"), E, NO_NODES),  # Type Hello World
    "type_empty": (type_text(""), E, NO_NODES),  # Type  -> parsed text ""
    "type_action": (type_text("Action: done"), E, NO_NODES),  # Type Action: done
    "type_trail": (type_text("hello "), E, NO_NODES),  # Type hello  -> strip -> text "hello"
    "type_lead": (type_text(" hello"), E, NO_NODES),  # Type  hello -> text " hello"
    "type_eszett": (type_text("Straße"), E, NO_NODES),
    "down": (scroll("down"), E, NO_NODES),
    "up": (scroll("up"), E, NO_NODES),
    "left": (scroll("left"), E, NO_NODES),
    "right": (scroll("right"), E, NO_NODES),
    "home": (HOME, E, NO_NODES),
    "back": (BACK, E, NO_NODES),
    "wait": (WAIT, E, NO_NODES),
    "unknown": ({"action_type": "status"}, E, NO_NODES),  # "" -> parse type None
    "app_zero": (open_app("gmail"), E, forest([nd(text="Gmail")])),  # box [0.0, 0.0, 0.0, 0.0]
    "app_empty": (open_app(""), E, forest([nd(100, 200, 300, 400, text="Clock")])),  # Open App , APP_BOX
    "click_negzero": (click(540, 9), R, NO_NODES),  # Click(50.0, 0.4), box [49.1, -0.0, 50.9, 0.8]
    "type_click": (type_text("Click(1, 2)"), E, NO_NODES),  # Type Click(1, 2)
    "type_dotted_i": (type_text("İstanbul"), E, NO_NODES),  # lower() gives "i̇stanbul"
}


@functools.cache
def scenario_truth(name):
    action, dims, tree = SCENARIOS[name]
    return molmo_truth(action, dims, tree)


def cases(scenario, *rows):
    return [pytest.param(scenario, answer, want, id=f"{scenario}:{note}") for answer, want, note in rows]


MOLMO_CASES = [
    *cases(
        "click",  # box [10.0, 10.0, 50.0, 20.0]
        ("Click(30.0, 15.0)", True, "exact"),
        ("Click(10.0, 10.0)", True, "inbox-top-left-inclusive"),
        ("Click(50.0, 20.0)", True, "inbox-bottom-right-inclusive"),
        ("Click(10.0, 20.0)", True, "inbox-bottom-left"),
        ("Click(50.0, 10.0)", True, "inbox-top-right"),
        ("Click(9.9, 15.0)", False, "left-by-0.1"),
        ("Click(50.1, 15.0)", False, "right-by-0.1"),
        ("Click(30.0, 9.9)", False, "above-by-0.1"),
        ("Click(30.0, 20.1)", False, "below-by-0.1"),
        ("Click(9.99, 15.0)", False, "left-by-0.01"),
        ("Click(50.01, 15.0)", False, "right-by-0.01"),
        ("Click(10, 20)", True, "integers"),
        ("Click(30.05, 15.0)", True, "two-decimals"),
        ("CLICK(30, 15)", True, "parse-upper"),
        ("click (30, 15)", True, "parse-space-before-paren"),
        ("Clicked at 30, 15", True, "parse-startswith-click"),
        ("Clicking(30.0, 15.0)", True, "parse-clicking"),
        ("Click(30.0,15.0)", True, "no-space"),
        ("Click 30.0 15.0", True, "no-parens"),
        ("Click(x=30, y=15)", True, "coords-keywords"),
        ("Click(30%, 15%)", True, "coords-percent-signs"),
        ("Click(30.0, 15.0", True, "unclosed"),
        ("Click(-30.0, 15.0)", True, "coords-minus-lost-inside"),
        ("Click(-5.0, 15.0)", False, "coords-minus-lost-outside"),
        ("Click(30.0, -15.0)", True, "coords-minus-lost-y"),
        ("Click(30.0, 15.0, 99.0)", True, "coords-extra-number"),
        ("Click(30.0, 15.0) then Click(90, 90)", True, "coords-first-two"),
        ("Click(90, 90) Click(30.0, 15.0)", False, "coords-first-two-outside"),
        ("Click(30.0)", False, "coords-one-number"),
        ("Click()", False, "coords-none"),
        ("Click", False, "click-bare"),
        ("Click(1e1, 15)", False, "coords-exponent-splits"),
        ("Click(30.0.5, 15.0)", False, "coords-double-dot"),
        ("Click(.30, 15)", True, "coords-leading-dot-30"),
        ("Click(3,0, 15)", False, "coords-comma-decimal"),
        ("Click(300, 300)", False, "pixels-not-percent"),
        ("Click(30.0, 150.0)", False, "y-out"),
        ("Long Press(30.0, 15.0)", False, "type-mismatch-long-press"),
        ("Tap(30.0, 15.0)", False, "tap-unknown"),
        ("Clack(30, 15)", False, "clack-unknown"),
        ("Open App Gmail", False, "open-app"),
        ("  Click(30.0, 15.0)  ", True, "parse-strip"),
        ("\nClick(30.0, 15.0)\n", True, "parse-strip-newlines"),
        ("Plan: tap the button. Action: Click(30.0, 15.0)", True, "cut-plan"),
        ("Plan: tap it. Action:Click(30.0, 15.0)", True, "cut-no-space"),
        ("Action: Click(30.0, 15.0)", True, "cut-action-only"),
        ("Action:   Click(30.0, 15.0)   ", True, "cut-strip"),
        ("Action: Click(30.0, 15.0) Action: Click(90.0, 90.0)", True, "cut-between-first-two"),
        ("Action: Click(90.0, 90.0) Action: Click(30.0, 15.0)", False, "cut-second-ignored"),
        ("Plan: Click(90, 90). Action: Click(30.0, 15.0)", True, "cut-plan-numbers-ignored"),
        ("Plan: Action: Click(30.0, 15.0)", True, "cut-empty-plan"),
        ("action: Click(30.0, 15.0)", False, "cut-case-sensitive"),
        ("ACTION: Click(30.0, 15.0)", False, "cut-upper-not-cut"),
        ("Plan: click 30 15", False, "no-action-starts-with-plan"),
        ("Click(30.0, 15.0) Action:", False, "cut-empty-after"),
        ("Click(30.0, 15.0)\nAction: Wait", False, "cut-takes-wait"),
        ("Action: Click(30.0, 15.0)<|endoftext|>", True, "eos-token-after"),
        ("Action: Click(3 0, 15)", False, "coords-split-digits"),
        ("Action: Click 30 15", True, "cut-no-parens"),
        ("Plan: the 2nd item. Action: Click(30, 15)", True, "cut-plan-digits"),
    ),
    *cases(
        "click_R",  # box string [9.3, 8.3, 46.3, 16.7]; pixel box is 9.259..46.296 x 8.333..16.667
        ("Click(27.8, 12.5)", True, "exact"),
        ("Click(9.26, 12.0)", False, "inside-in-pixels-outside-rounded-left"),
        ("Click(9.29, 12.0)", False, "inside-in-pixels-outside-rounded-left-2"),
        ("Click(9.3, 12.0)", True, "rounded-left-edge"),
        ("Click(46.3, 12.0)", True, "outside-in-pixels-inside-rounded-right"),
        ("Click(46.31, 12.0)", False, "right-just-outside"),
        ("Click(46.296, 12.0)", True, "pixel-right-edge"),
        ("Click(20.0, 8.3)", True, "outside-in-pixels-inside-rounded-top"),
        ("Click(20.0, 8.29)", False, "top-just-outside"),
        ("Click(20.0, 8.34)", True, "top-inside"),
        ("Click(20.0, 16.7)", True, "outside-in-pixels-inside-rounded-bottom"),
        ("Click(20.0, 16.68)", True, "bottom-pixel-outside-rounded-inside"),
        ("Click(20.0, 16.71)", False, "bottom-just-outside"),
        ("Click(9.2, 16.8)", False, "corner-outside"),
        ("Click(46.3, 16.7)", True, "corner-inside"),
    ),
    *cases(
        "click_float",  # Click(561.0, 535) in pixels; box around (561, 0): inbox [51.0, 0.4, 52.9, 0.4]
        ("Click(52.0, 0.4)", True, "only-y-0.4"),
        ("Click(51.0, 0.4)", True, "left-edge"),
        ("Click(52.9, 0.4)", True, "right-edge"),
        ("Click(51.9, 22.3)", False, "true-location-wrong"),
        ("Click(561.0, 535)", False, "gt-text-wrong"),
        ("Click(52.0, 0.3)", False, "y-0.3"),
        ("Click(52.0, -0.4)", True, "minus-lost"),
        ("Click(52.0, 0.5)", False, "y-0.5"),
    ),
    *cases(
        "click_edge",  # Click(0.1, 50.0); box [-0.8, 49.6, 1.0, 50.4] -> x in [0.8, 1.0]
        ("Click(0.1, 50.0)", False, "exact-gt-is-wrong"),
        ("Click(0.0, 50.0)", False, "x0"),
        ("Click(0.8, 50.0)", True, "x0.8"),
        ("Click(1.0, 50.0)", True, "x1.0"),
        ("Click(1.1, 50.0)", False, "x1.1"),
        ("Click(-0.8, 50.0)", True, "minus-lost-pred"),
        ("Click(0.9, 49.6)", True, "top"),
        ("Click(0.9, 50.5)", False, "below"),
    ),
    *cases(
        "click_neg",  # Click(0.9, 8.3); box [-4.6, 4.2, 18.5, 12.5] -> x in [4.6, 18.5]
        ("Click(0.9, 8.3)", False, "exact-gt-is-wrong"),
        ("Click(4.6, 8.3)", True, "minus-lost-left-edge"),
        ("Click(4.5, 8.3)", False, "left-of-lost-minus"),
        ("Click(18.5, 12.5)", True, "bottom-right"),
        ("Click(10.0, 4.2)", True, "top"),
        ("Click(10.0, 4.1)", False, "above"),
    ),
    *cases(
        "click_zero",  # box [30.0, 15.0, 30.0, 15.0]
        ("Click(30.0, 15.0)", True, "exact"),
        ("Click(30, 15)", True, "ints"),
        ("Click(30.0, 15.1)", False, "off-0.1"),
        ("Click(29.9, 15.0)", False, "left-0.1"),
        ("Click(30.01, 15.0)", False, "off-0.01"),
    ),
    *cases(
        "click_width",  # box [0.0, 0.0, 9.9, 50.0]
        ("Click(5.0, 2.5)", True, "exact"),
        ("Click(5.0, 40.0)", True, "in-tall-narrow-box"),
        ("Click(9.95, 4.0)", False, "in-wide-box-only"),
        ("Click(0.0, 0.0)", True, "origin"),
        ("Click(9.9, 50.0)", True, "far-corner"),
    ),
    *cases(
        "click_tie",  # box [10.0, 5.0, 20.0, 10.0]
        ("Click(17.5, 8.8)", True, "exact"),
        ("Click(20.0, 10.0)", True, "first-box-corner"),
        ("Click(22.0, 11.0)", False, "second-box-only"),
        ("Click(12.0, 6.0)", True, "first-box-only"),
    ),
    *cases(
        "click_invis",  # box [0.0, 0.0, 100.0, 100.0]
        ("Click(90.0, 90.0)", True, "anywhere"),
        ("Click(100.0, 100.0)", True, "corner"),
        ("Click(100.1, 50.0)", False, "beyond"),
        ("Click(0, 0)", True, "origin"),
    ),
    *cases(
        "click_right0",  # box [10.0, 5.0, 100.0, 15.0]
        ("Click(95.0, 10.0)", True, "right-default-W"),
        ("Click(100.0, 15.0)", True, "corner"),
        ("Click(9.9, 10.0)", False, "left"),
    ),
    *cases(
        "click_fb",  # box [29.0, 14.5, 31.0, 15.5]
        ("Click(30.0, 15.0)", True, "exact"),
        ("Click(29.0, 14.5)", True, "corner"),
        ("Click(31.0, 15.5)", True, "far-corner"),
        ("Click(31.1, 15.0)", False, "right"),
        ("Click(30.0, 15.6)", False, "below"),
        ("Click(28.9, 15.0)", False, "left"),
    ),
    *cases(
        "click_float_y",  # target Click(300, 300.0) (parse reads it fine); box [10.0, 10.0, 50.0, 20.0]
        ("Click(30.0, 15.0)", True, "percent-in-box"),
        ("Click(300, 300)", False, "pixels-outside"),
    ),
    *cases(
        "lp",  # Long Press(30.0, 15.0), box [10.0, 10.0, 50.0, 20.0]
        ("Long Press(30.0, 15.0)", True, "exact"),
        ("long press(30, 15)", True, "lower"),
        ("LONG PRESS(30, 15)", True, "upper"),
        ("Long Press (30, 15)", True, "space"),
        ("long pressing at 30, 15", True, "startswith"),
        ("Long  Press(30, 15)", False, "double-space"),
        ("LongPress(30, 15)", False, "no-space"),
        ("Long-Press(30, 15)", False, "hyphen"),
        ("Long Press(50.1, 15.0)", False, "outside"),
        ("Long Press(10.0, 20.0)", True, "edge"),
        ("Long Press(30.0)", False, "one-number"),
        ("Click(30.0, 15.0)", False, "click-for-long-press"),
        ("Press(30.0, 15.0)", False, "press"),
        ("Plan: hold it. Action: Long Press(30, 15)", True, "cut"),
    ),
    *cases(
        "app",  # Open App gmail, box [10.0, 10.0, 30.0, 20.0]
        ("Open App gmail", True, "exact"),
        ("Open App Gmail", True, "both-lowered"),
        ("OPEN APP GMAIL", True, "upper"),
        ("open app gmail ", True, "strip"),
        ("Open App  gmail", False, "slice-9-double-space"),
        ("Open App gmail.", False, "trailing-dot"),
        ("Open App:gmail", True, "slice-9-colon"),
        ("Open Apps gmail", False, "slice-9-apps"),
        ("Open gmail", False, "not-open-app"),
        ("Open App", False, "bare"),
        ("Open App Gmail Go", False, "longer-name"),
        ("Launch gmail", False, "launch"),
        ("Click(20.0, 15.0)", True, "click-in-app-box"),
        ("Click(30.0, 20.0)", True, "click-app-box-corner"),
        ("Click(10.0, 10.0)", True, "click-app-box-origin"),
        ("Click(30.1, 20.0)", False, "click-outside-app-box"),
        ("Click(20.0)", False, "click-one-number"),
        ("click (20, 15)", True, "click-lower"),
        ("Action: Click(20, 15)", True, "cut-click"),
        ("Long Press(20.0, 15.0)", False, "long-press-not-equivalent"),
        ("Plan: open it. Action: Open App gmail", True, "cut-open-app"),
    ),
    *cases(
        "app_cap",  # Open App Gmail, box ""
        ("Open App Gmail", True, "exact"),
        ("open app gmail", True, "lowered"),
        ("Open App GMAIL", True, "upper"),
        ("Click(20.0, 15.0)", False, "click-no-box"),
        ("Open App Gmai", False, "short"),
    ),
    *cases(
        "app_two",  # Open App Google Maps, box ""
        ("Open App Google Maps", True, "exact"),
        ("Open App google maps", True, "lowered"),
        ("Open App Google  Maps", False, "inner-space"),
        ("Open App Google", False, "first-word"),
        ("Open App Maps", False, "second-word"),
    ),
    *cases(
        "type",  # Type Hello World -> text "hello world"
        ("Type Hello World", True, "exact"),
        ("type hello world", True, "lower"),
        ("TYPE HELLO WORLD", True, "upper"),
        ("Type Hello World  ", True, "strip"),
        ("Type  Hello World", False, "slice-5-double-space"),
        ("Type Hello World.", False, "trailing-dot"),
        ("Type Hello", False, "prefix"),
        ("Type Hello  World", False, "inner-space"),
        ("Typed Hello World", False, "slice-5-typed"),
        ("Type:Hello World", True, "slice-5-colon"),
        ("TypeXHello World", True, "slice-5-any-char"),
        ('Type "Hello World"', False, "quoted"),
        ("Type", False, "bare"),
        ("Enter Hello World", False, "enter"),
        ("Action: Type Hello World", True, "cut"),
        ("Plan: type the greeting. Action: Type Hello World", True, "cut-plan"),
        ("Type Hello World Action: Wait", False, "cut-takes-wait"),
        ("Plan: x Action: Type Hello World Action: Type Bye", True, "cut-first"),
    ),
    *cases(
        "type_empty",  # Type  -> text ""
        ("Type", True, "bare"),
        ("Type ", True, "bare-space"),
        ("types", True, "slice-5-empty"),
        ("typex", True, "slice-5-empty-2"),
        ("Type x", False, "text"),
        ("Action: Type", True, "cut"),
    ),
    *cases(
        "type_action",  # Type Action: done -- the answer's own "Action:" is cut away, so never correct
        ("Type Action: done", False, "cut-eats-text"),
        ("Action: Type Action: done", False, "cut-eats-text-2"),
        ("Type action: done", True, "lower-case-action-not-cut"),
    ),
    *cases(
        "type_trail",  # Type hello  -> strip -> "hello"
        ("Type hello", True, "trailing-space-stripped"),
        ("Type hello ", True, "same"),
        ("Type Hello", True, "case"),
    ),
    *cases(
        "type_lead",  # Type  hello -> text " hello"
        ("Type hello", False, "leading-space-lost"),
        ("Type  hello", True, "two-spaces"),
        ("Action: Type  hello", True, "cut-keeps-inner"),
    ),
    *cases(
        "type_eszett",  # "straße" stays "straße" under lower()
        ("Type STRASSE", False, "lower-not-casefold"),
        ("Type STRAßE", True, "upper-with-eszett"),
    ),
    *cases(
        "down",
        ("Scroll down", True, "exact"),
        ("scroll DOWN", True, "case"),
        ("SCROLL DOWN", True, "upper"),
        ("Scroll  down", True, "split-any-space"),
        ("Scroll\tdown", True, "tab"),
        ("Scroll down the page", True, "second-word"),
        ("Scrolling down", True, "startswith"),
        ("Scroll Down.", False, "dot"),
        ("Scroll down.", False, "dot-2"),
        ("Scroll", False, "bare"),
        ("scroll", False, "bare-lower"),
        ("scrolldown", False, "one-word"),
        ("Scroll(down)", False, "parens"),
        ("Scroll up", False, "other-direction"),
        ("Swipe down", False, "swipe"),
        ("Scroll the page down", False, "second-word-is-the"),
        ("Action: Scroll down", True, "cut"),
        ("Plan: x Action: scroll down", True, "cut-plan"),
    ),
    *cases("up", ("Scroll up", True, "exact"), ("Scroll Up", True, "case"), ("Scroll down", False, "other")),
    *cases(
        "left",
        ("Scroll left", True, "exact"),
        ("Scroll right", False, "other"),
        ("Scroll LEFT", True, "case"),
    ),
    *cases(
        "right",
        ("Scroll right", True, "exact"),
        ("Scroll left", False, "other"),
        ("scroll right.", False, "dot"),
    ),
    *cases(
        "home",
        ("Navigate Home", True, "exact"),
        ("navigate home", True, "lower"),
        ("NAVIGATE HOME", True, "upper"),
        ("  Navigate Home\n", True, "strip"),
        ("navigate  home", False, "double-space"),
        ("Navigate Home.", False, "dot"),
        ("Navigate home now", False, "extra-words"),
        ("Go Home", False, "go-home"),
        ("Navigate Back", False, "back"),
        ("Home", False, "home"),
        ("Action: Navigate Home", True, "cut"),
    ),
    *cases(
        "back",
        ("Navigate Back", True, "exact"),
        ("navigate back", True, "lower"),
        ("Navigate Back.", False, "dot"),
        ("navigate  back", False, "double-space"),
        ("Navigate Home", False, "home"),
        ("Back", False, "back"),
        ("Plan: go back. Action: Navigate Back", True, "cut"),
    ),
    *cases(
        "wait",
        ("Wait", True, "exact"),
        ("wait", True, "lower"),
        ("WAIT", True, "upper"),
        ("wait ", True, "strip"),
        (" Wait\n", True, "strip-2"),
        ("Wait.", False, "dot"),
        ("Wait for it", False, "extra"),
        ("Waiting", False, "waiting"),
        ("Action: Wait", True, "cut"),
        ("Plan: let it load. Action: Wait", True, "cut-plan"),
        ("Plan: let it load. Action: Wait.", False, "cut-dot"),
        ("Navigate Home", False, "home"),
    ),
    *cases(
        "app_zero",  # Open App gmail, box [0.0, 0.0, 0.0, 0.0] from a node with no bounds
        ("Click(0, 0)", True, "origin-only"),
        ("Click(0.1, 0.0)", False, "off-origin"),
        ("Open App gmail", True, "name"),
    ),
    *cases(
        "app_empty",  # Open App  -> name "", box of the first text node [10.0, 10.0, 30.0, 20.0]
        ("Open App", True, "bare-is-empty-name"),
        ("Open App ", True, "bare-space"),
        ("Open App Clock", False, "a-name"),
        ("Click(20.0, 15.0)", True, "click-first-text-node"),
        ("Click(40.0, 15.0)", False, "click-outside"),
    ),
    *cases(
        "click_negzero",
        ("Click(50.0, 0.0)", True, "minus-zero-reads-0.0"),
        ("Click(50.0, 0.8)", True, "bottom"),
        ("Click(50.0, 0.9)", False, "below"),
    ),
    *cases(
        "type_click",  # Type Click(1, 2)
        ("Type Click(1, 2)", True, "exact"),
        ("Click(1, 2)", False, "click"),
        ("type click(1, 2)", True, "lower"),
    ),
    *cases(
        "type_dotted_i",
        ("Type İstanbul", True, "same"),
        ("Type istanbul", False, "lower-of-dotted-I-is-two-chars"),
    ),
    *cases(
        "click",
        ("Click(３０, １５)", True, "unicode-digits-match-d"),
        ("Click(30.0, 15.0)\u00a0", True, "strip-nbsp"),
    ),
    *cases(
        "down",
        ("Scroll\u00a0down", True, "split-nbsp"),
    ),
    *cases(
        "wait",
        ("Wait\u3000", True, "strip-ideographic-space"),
        ("Plan: wait. Action: Wait Action: Click(1, 2)", True, "cut-twice"),
    ),
    *cases(
        "unknown",  # "" parses as type None; equal dicts count as correct
        ("Tap the thing", True, "none-equals-none"),
        ("", True, "empty-equals-empty"),
        ("Wait", False, "wait"),
    ),
]


@pytest.mark.parametrize(("scenario", "answer", "want"), MOLMO_CASES)
def test_score_molmo(scenario, answer, want):
    verdict = score_molmo(answer, scenario_truth(scenario))
    assert verdict.correct is want, verdict.reason
    assert isinstance(verdict.reason, str)


# ----------------------------------------------------------------------------------------------------
# Part 3: OS-Atlas ground truth strings (our documented preprocessing) and the distance14 verdicts.
# ----------------------------------------------------------------------------------------------------

ATLAS_TRUTH_CASES = [
    pytest.param(click(561, 535), R, "CLICK <point>[[519,223]]</point>", id="click-R"),
    pytest.param(long_press(561, 535), R, "LONG_PRESS <point>[[519,223]]</point>", id="long-press-R"),
    pytest.param(click(561.5, 535.0), R, "CLICK <point>[[520,223]]</point>", id="click-floats"),
    pytest.param(click(0, 0), R, "CLICK <point>[[0,0]]</point>", id="click-origin"),
    pytest.param(click(1080, 2400), R, "CLICK <point>[[1000,1000]]</point>", id="click-corner"),
    pytest.param(click(300, 300), E, "CLICK <point>[[300,150]]</point>", id="click-E"),
    pytest.param(type_text("Hello World"), R, "TYPE [Hello World]", id="type"),
    pytest.param(scroll("down"), R, "SCROLL [DOWN]", id="scroll-down"),
    pytest.param(scroll("up"), R, "SCROLL [UP]", id="scroll-up"),
    pytest.param(scroll("left"), R, "SCROLL [LEFT]", id="scroll-left"),
    pytest.param(scroll("right"), R, "SCROLL [RIGHT]", id="scroll-right"),
    pytest.param(open_app("Google Chrome"), R, "OPEN_APP [Google Chrome]", id="open-app"),
    pytest.param(HOME, R, "PRESS_HOME", id="home"),
    pytest.param(BACK, R, "PRESS_BACK", id="back"),
    pytest.param(WAIT, R, "WAIT", id="wait"),
]


@pytest.mark.parametrize(("action", "dims", "want"), ATLAS_TRUTH_CASES)
def test_os_atlas_truth(action, dims, want):
    assert os_atlas_truth(action, dims) == want


G_CLICK = "CLICK <point>[[500,500]]</point>"
G_ORIGIN = "CLICK <point>[[0,0]]</point>"
G_LP = "LONG_PRESS <point>[[500,500]]</point>"
G_TYPE = "TYPE [Hello World]"
G_TYPE1 = "TYPE [Hello]"
G_APP = "OPEN_APP [Google Chrome]"
G_APP1 = "OPEN_APP [Gmail]"
G_DOWN = "SCROLL [DOWN]"
G_HOME = "PRESS_HOME"
G_BACK = "PRESS_BACK"
G_WAIT = "WAIT"


def atlas(action: str) -> str:
    """An OS-Atlas-format model output around ``action``."""
    return f"thoughts:\nI should act.\nactions:\n{action}"


def dcases(truth, *rows, label):
    return [pytest.param(answer, truth, want, id=f"{label}:{note}") for answer, want, note in rows]


D14_CASES = [
    # ---- OS-Atlas-format answers: the script's own reading
    *dcases(
        G_CLICK,
        (atlas("CLICK <point>[[500,500]]</point>"), True, "exact"),
        (atlas("CLICK <point>[[640,500]]</point>"), True, "radius-140-right"),
        (atlas("CLICK <point>[[641,500]]</point>"), False, "radius-141-right"),
        (atlas("CLICK <point>[[360,500]]</point>"), True, "radius-140-left"),
        (atlas("CLICK <point>[[359,500]]</point>"), False, "radius-141-left"),
        (atlas("CLICK <point>[[500,640]]</point>"), True, "radius-140-down"),
        (atlas("CLICK <point>[[500,641]]</point>"), False, "radius-141-down"),
        (atlas("CLICK <point>[[500,360]]</point>"), True, "radius-140-up"),
        (atlas("CLICK <point>[[584,612]]</point>"), True, "pythagorean-140"),
        (atlas("CLICK <point>[[585,612]]</point>"), False, "pythagorean-140.6"),
        (atlas("CLICK <point>[[598,598]]</point>"), True, "diagonal-138.6"),
        (atlas("CLICK <point>[[599,599]]</point>"), False, "diagonal-140.007"),
        (atlas("CLICK <point>[[640.9,500]]</point>"), False, "decimal-splits-into-640-9"),
        (atlas("CLICK <point>[[500.5,500]]</point>"), False, "decimal-splits-into-500-5"),
        (atlas("CLICK <point>[[500, 500]]</point>"), True, "space-after-comma"),
        (atlas("CLICK  <point>[[500,500]]</point>"), True, "double-space-split"),
        (atlas("CLICK [[500,500]]"), True, "no-point-tag"),
        (atlas("CLICK 500 500"), True, "bare-numbers"),
        (atlas("CLICK <point>[[-500,500]]</point>"), True, "minus-lost"),
        (atlas("CLICK <point>[[500,500,900]]</point>"), True, "extra-number"),
        (atlas("CLICK <point>[[1500,500]]</point>"), False, "far"),
        (atlas("CLICK <point>[[500]]</point>"), False, "one-number-minus-100"),
        (atlas("CLICK"), False, "no-number-minus-100"),
        (atlas("CLICK <point>[[500,500]]</point><|im_end|>"), True, "im-end"),
        (atlas("click <point>[[500,500]]</point>"), False, "type-case-sensitive"),
        (atlas("Click <point>[[500,500]]</point>"), False, "type-case-sensitive-2"),
        (atlas("CLICK(500,500)"), False, "type-token-glued"),
        (atlas("LONG_PRESS <point>[[500,500]]</point>"), False, "type-mismatch"),
        (atlas("TAP <point>[[500,500]]</point>"), False, "unknown-type"),
        (
            "thoughts:\nthe 3rd item at 9, 9\nactions:\nCLICK <point>[[500,500]]</point>",
            True,
            "thought-digits",
        ),
        ("actions:\nCLICK <point>[[500,500]]</point>", True, "no-thoughts"),
        ("actions:\n\nCLICK <point>[[500,500]]</point>", True, "leading-newline"),
        ("actions:\n  CLICK <point>[[500,500]]</point>", True, "leading-spaces"),
        ("actions:\nCLICK <point>[[500,500]]</point>\nactions:\nWAIT", True, "first-actions-block"),
        ("actions:\nWAIT\nactions:\nCLICK <point>[[500,500]]</point>", False, "second-block-ignored"),
        ("actions:\n", False, "empty-indexerror"),
        ("actions:\n<|im_end|>", False, "only-im-end-indexerror"),
        ("actions:\n   ", False, "only-spaces-indexerror"),
        ("actions: CLICK <point>[[500,500]]</point>", False, "no-newline-not-atlas"),
        ("Actions:\nCLICK <point>[[500,500]]</point>", False, "capital-actions-not-atlas"),
        (atlas("CLICK <point>[[５００,５００]]</point>"), True, "unicode-digits"),
        ("Plan: go.\nactions:\nAction: Click(50, 50)", False, "actions-block-wins-over-molmo"),
        (atlas("CLICK <point>[[500,500]]</point>\n"), True, "trailing-newline-harmless"),
        label="a14-click",
    ),
    *dcases(
        G_ORIGIN,
        (atlas("CLICK <point>[[0,0]]</point>"), True, "exact"),
        (atlas("CLICK"), False, "minus-100-is-141.4-away"),
        (atlas("CLICK <point>[[98,98]]</point>"), True, "diagonal-138.6"),
        (atlas("CLICK <point>[[99,99]]</point>"), False, "diagonal-140.007"),
        (atlas("CLICK <point>[[140,0]]</point>"), True, "axis-140"),
        label="a14-origin",
    ),
    *dcases(
        G_LP,
        (atlas("LONG_PRESS <point>[[500,500]]</point>"), True, "exact"),
        (atlas("LONG_PRESS [[600,500]]"), True, "near"),
        (atlas("LONG_PRESS <point>[[641,500]]</point>"), False, "radius-141"),
        (atlas("CLICK <point>[[500,500]]</point>"), False, "click-for-long-press"),
        (atlas("LONG PRESS <point>[[500,500]]</point>"), False, "space-in-type"),
        (atlas("long_press <point>[[500,500]]</point>"), False, "lower-type"),
        label="a14-lp",
    ),
    *dcases(
        G_TYPE,
        (atlas("TYPE [Hello World]"), True, "exact"),
        (atlas("TYPE [hello world]"), True, "f1-lowered"),
        (atlas("TYPE [HELLO]"), False, "f1-token-[hello]-vs-[hello"),
        (atlas("TYPE [Hello there]"), True, "f1-first-token-only"),
        (atlas("TYPE [Hello, World]"), False, "f1-comma"),
        (atlas("TYPE Hello World"), False, "no-bracket"),
        (atlas("TYPE  [Hello   World]"), True, "split-any-space"),
        (atlas("TYPE [Hello World]<|im_end|>"), True, "im-end"),
        (atlas("TYPE"), False, "one-token-indexerror"),
        (atlas("type [Hello World]"), False, "type-case-sensitive"),
        (atlas("CLICK <point>[[500,500]]</point>"), False, "click"),
        label="a14-type",
    ),
    *dcases(
        G_TYPE1,
        (atlas("TYPE [hello]"), True, "f1-case"),
        (atlas("TYPE [Hello]end"), True, "strip-set-eats-end"),
        (atlas("TYPE [Hellomine"), False, "strip-set-eats-mine-not-o"),
        (atlas("TYPE [Hello] and more"), True, "second-token-only"),
        (atlas("TYPE [Hello"), False, "unclosed"),
        label="a14-type1",
    ),
    *dcases(
        G_APP,
        (atlas("OPEN_APP [Google Chrome]"), True, "exact"),
        (atlas("OPEN_APP [google maps]"), True, "f1-first-token"),
        (atlas("OPEN_APP [Chrome]"), False, "second-word"),
        (atlas("OPEN_APP Google Chrome"), False, "no-bracket"),
        (atlas("OPEN_APP [Google]"), False, "closed-bracket-token"),
        (atlas("OPEN_APP  [Google Chrome]"), True, "double-space"),
        (atlas("OPEN_APP"), False, "one-token-indexerror"),
        (atlas("open_app [Google Chrome]"), False, "type-case"),
        (atlas("CLICK <point>[[500,500]]</point>"), False, "click-no-equivalence"),
        label="a14-app",
    ),
    *dcases(
        G_APP1,
        (atlas("OPEN_APP [gmail]"), True, "case"),
        (atlas("OPEN_APP [Gmail Go]"), False, "longer"),
        (atlas("OPEN_APP [Gmail] now"), True, "trailing-word"),
        (atlas("OPEN_APP [Gmail]<|im_end|>"), True, "im-end"),
        label="a14-app1",
    ),
    *dcases(
        G_DOWN,
        (atlas("SCROLL [DOWN]"), True, "exact"),
        (atlas("SCROLL [down]"), False, "case"),
        (atlas("SCROLL [UP]"), False, "other"),
        (atlas("SCROLL DOWN"), False, "no-bracket"),
        (atlas("SCROLL [DOWN] "), False, "trailing-space-not-stripped"),
        (atlas("SCROLL  [DOWN]"), False, "double-space-exact-match"),
        (atlas("SCROLL [DOWN]<|im_end|>"), True, "im-end"),
        (atlas("SCROLL [DOWN]end"), True, "strip-set"),
        (atlas("SCROLL [DOWN]\n<|im_end|>"), False, "newline-before-im-end"),
        label="a14-scroll",
    ),
    *dcases(
        G_HOME,
        (atlas("PRESS_HOME"), True, "exact"),
        (atlas("PRESS_HOMEmed"), True, "strip-set"),
        (atlas("PRESS_HOME."), False, "dot"),
        (atlas("press_home"), False, "case"),
        (atlas("PRESS_BACK"), False, "back"),
        label="a14-home",
    ),
    *dcases(
        G_BACK,
        (atlas("PRESS_BACK"), True, "exact"),
        (atlas("PRESS_BACK<|im_end|>"), True, "im-end"),
        (atlas("PRESS_HOME"), False, "home"),
        label="a14-back",
    ),
    *dcases(
        G_WAIT,
        (atlas("WAIT"), True, "exact"),
        (atlas("WAIT<|im_end|>"), True, "im-end"),
        (atlas("WAIT <|im_end|>"), False, "space-before-im-end"),
        (atlas("WAIT."), False, "dot"),
        (atlas("wait"), False, "case"),
        label="a14-wait",
    ),
    # ---- Molmo-format answers, rewritten to OS-Atlas form first
    *dcases(
        G_CLICK,
        ("Click(50.0, 50.0)", True, "exact"),
        ("Click(64.0, 50.0)", True, "640"),
        ("Click(64.1, 50.0)", False, "641"),
        ("Click(36.0, 50.0)", True, "360"),
        ("Click(35.9, 50.0)", False, "359"),
        ("Click(59.8, 59.8)", True, "diagonal-598"),
        ("Click(59.9, 59.9)", False, "diagonal-599"),
        ("Click(64.04, 50.0)", True, "rounds-to-640"),
        ("Click(64.06, 50.0)", False, "rounds-to-641"),
        ("Click(58.4, 61.2)", True, "pythagorean"),
        ("CLICK(50, 50)", True, "upper"),
        ("click (50, 50)", True, "space"),
        ("Clicked at 50, 50", True, "clicked"),
        ("Click(-50.0, 50.0)", True, "minus-lost"),
        ("Click(50.0, 50.0, 10)", True, "extra-number"),
        ("Click(5e1, 50)", False, "exponent"),
        ("Click(50.0)", False, "one-number"),
        ("Click", False, "bare"),
        ("Long Press(50, 50)", False, "long-press"),
        ("Tap(50, 50)", False, "tap"),
        ("Plan: tap. Action: Click(50, 50)", True, "cut"),
        ("action: Click(50, 50)", False, "cut-case"),
        ("Action: Click(50, 50) Action: Wait", True, "cut-first"),
        ("Action: Wait Action: Click(50, 50)", False, "cut-second-ignored"),
        ("Click(50, 50) Action:", False, "cut-empty"),
        ("CLICK <point>[[500,500]]</point>", False, "atlas-text-without-actions-is-molmo-5000"),
        ("Click(500, 500)", False, "pixels-5000"),
        label="m14-click",
    ),
    *dcases(
        G_LP,
        ("Long Press(50.0, 50.0)", True, "exact"),
        ("long press(55, 55)", True, "near"),
        ("long press(60, 60)", False, "141.4"),
        ("long  press(50, 50)", False, "double-space"),
        ("Click(50, 50)", False, "click"),
        label="m14-lp",
    ),
    *dcases(
        G_TYPE,
        ("Type Hello World", True, "exact"),
        ("type HELLO WORLD", True, "f1"),
        ("Type hello there", True, "first-token"),
        ("Type Hello", False, "[hello]-vs-[hello"),
        ("Type  Hello World", False, "slice-5-leading-space-token-["),
        ("Type", False, "empty-brackets"),
        ("Typed Hello World", False, "slice-5"),
        ("Type:Hello World", True, "slice-5-colon"),
        ("Plan: x Action: Type Hello World", True, "cut"),
        ("TYPE [Hello World]", False, "atlas-text-without-actions-double-bracket"),
        ("Enter Hello World", False, "unknown"),
        label="m14-type",
    ),
    *dcases(
        G_TYPE1,
        ("Type hello", True, "exact-lower"),
        ("Type Hello there", False, "[hello-vs-[hello]"),
        label="m14-type1",
    ),
    *dcases(
        G_DOWN,
        ("Scroll down", True, "exact"),
        ("scroll DOWN", True, "upper-cased"),
        ("Scrolling down", True, "startswith"),
        ("scroll  down", True, "split"),
        ("Scroll Down.", False, "dot"),
        ("scroll", False, "bare"),
        ("Scroll up", False, "other"),
        ("SCROLL [DOWN]", False, "atlas-text-without-actions"),
        label="m14-scroll",
    ),
    *dcases(
        G_APP,
        ("Open App Google Chrome", True, "exact"),
        ("open app google maps", True, "first-token"),
        ("Open App Chrome", False, "second-word"),
        ("Open App", False, "empty"),
        ("Open App  Google Chrome", False, "slice-9-leading-space"),
        ("Open App:Google Chrome", True, "slice-9-colon"),
        ("Click(50, 50)", False, "click-not-open-app"),
        ("OPEN_APP [Google Chrome]", False, "atlas-text-without-actions"),
        label="m14-app",
    ),
    *dcases(
        G_HOME,
        ("Navigate Home", True, "exact"),
        ("navigate home", True, "lower"),
        ("navigate  home", False, "double-space"),
        ("Navigate Home.", False, "dot"),
        ("Navigate Back", False, "back"),
        ("PRESS_HOME", False, "atlas-text-without-actions"),
        label="m14-home",
    ),
    *dcases(
        G_BACK,
        ("Navigate Back", True, "exact"),
        ("NAVIGATE BACK", True, "upper"),
        ("Navigate Home", False, "home"),
        label="m14-back",
    ),
    *dcases(
        G_WAIT,
        ("Wait", True, "exact"),
        ("wait ", True, "strip"),
        ("Action: Wait", True, "cut"),
        ("Wait.", False, "dot"),
        ("Waiting", False, "waiting"),
        ("WAIT", True, "atlas-text-is-also-molmo-wait"),
        label="m14-wait",
    ),
]


@pytest.mark.parametrize(("answer", "truth", "want"), D14_CASES)
def test_score_distance14(answer, truth, want):
    verdict = score_distance14(answer, truth)
    assert verdict.correct is want, verdict.reason
    assert isinstance(verdict.reason, str)


@pytest.mark.parametrize(
    ("action", "answer", "want"),
    [
        pytest.param(click(561, 535), "Click(51.9, 22.3)", True, id="molmo-exact"),
        pytest.param(click(561, 535), "Click(65.9, 22.3)", True, id="molmo-140-right"),
        pytest.param(click(561, 535), "Click(66.0, 22.3)", False, id="molmo-141-right"),
        pytest.param(click(561, 535), atlas("CLICK <point>[[519,223]]</point>"), True, id="atlas-exact"),
        pytest.param(long_press(561, 535), "Long Press(51.9, 22.3)", True, id="long-press"),
        pytest.param(type_text("Hello World"), "Type hello world", True, id="type"),
        pytest.param(open_app("Google Chrome"), "Open App Google", False, id="open-app-[google]"),
        pytest.param(scroll("up"), "Scroll up", True, id="scroll"),
        pytest.param(HOME, "Navigate Home", True, id="home"),
        pytest.param(BACK, "Navigate Back", True, id="back"),
        pytest.param(WAIT, "Wait", True, id="wait"),
    ],
)
def test_distance14_end_to_end(action, answer, want):
    assert score_distance14(answer, os_atlas_truth(action, R)).correct is want


# ----------------------------------------------------------------------------------------------------
# Part 4: an unparseable or empty answer is a wrong step under both protocols, for every ground-truth type.
# ----------------------------------------------------------------------------------------------------

GARBAGE = ["", "   ", "\n", "garbage", "Action:", "Plan: think. Action:", "<|endoftext|>", "actions:\n", "42"]
EVERY_TYPE = {
    "click": click(300, 300),
    "long_press": long_press(300, 300),
    "input_text": type_text("Hello World"),
    "scroll": scroll("down"),
    "open_app": open_app("gmail"),
    "navigate_home": HOME,
    "navigate_back": BACK,
    "wait": WAIT,
}


@pytest.mark.parametrize("kind", EVERY_TYPE)
@pytest.mark.parametrize("answer", GARBAGE)
def test_unparseable_is_wrong_molmo(kind, answer):
    truth = molmo_truth(EVERY_TYPE[kind], E, forest([BOX, GMAIL]))
    assert score_molmo(answer, truth).correct is False


@pytest.mark.parametrize("kind", EVERY_TYPE)
@pytest.mark.parametrize("answer", GARBAGE)
def test_unparseable_is_wrong_distance14(kind, answer):
    assert score_distance14(answer, os_atlas_truth(EVERY_TYPE[kind], E)).correct is False


# ----------------------------------------------------------------------------------------------------
# Part 5: forests built with android-env's protos; forest_to_json must show MessageToJson's proto3 view.
# ----------------------------------------------------------------------------------------------------


def _proto_forest(*windows):
    """windows: lists of (l, t, r, b, text, visible, class_name, package) tuples -> serialized forest."""
    pb = pytest.importorskip("android_env.proto.a11y.android_accessibility_forest_pb2")
    msg = pb.AndroidAccessibilityForest()
    for nodes in windows:
        window = msg.windows.add()
        window.tree.SetInParent()
        for x1, y1, x2, y2, text, visible, cls, pkg in nodes:
            node = window.tree.nodes.add()
            node.bounds_in_screen.left = x1
            node.bounds_in_screen.top = y1
            node.bounds_in_screen.right = x2
            node.bounds_in_screen.bottom = y2
            node.text = text
            node.is_visible_to_user = visible
            node.class_name = cls
            node.package_name = pkg
    return msg.SerializeToString()


def test_forest_to_json_omits_proto3_defaults():
    data = _proto_forest(
        [
            (0, 0, 1000, 2000, "", True, "", "com.a"),
            (0, 0, 0, 0, "Gmail", False, "android.widget.Switch", ""),
        ],
        [],
    )
    assert forest_to_json(data) == {
        "windows": [
            {
                "tree": {
                    "nodes": [
                        {
                            "boundsInScreen": {"right": 1000, "bottom": 2000},
                            "packageName": "com.a",
                            "isVisibleToUser": True,
                        },
                        {"boundsInScreen": {}, "className": "android.widget.Switch", "text": "Gmail"},
                    ]
                }
            },
            {"tree": {}},
        ]
    }


def test_forest_to_json_empty_forest():
    pb = pytest.importorskip("android_env.proto.a11y.android_accessibility_forest_pb2")
    assert forest_to_json(pb.AndroidAccessibilityForest().SerializeToString()) == {}


PROTO_TRUTH_CASES = [
    # right set to 0 in the proto: omitted in JSON, bbs substitutes W -> the node contains x = 900
    pytest.param(
        [[(100, 100, 0, 300, "", True, "", "com.a")]],
        click(900, 200),
        "Click(90.0, 10.0)",
        "[10.0, 5.0, 100.0, 15.0]",
        id="proto-right-0-is-W",
    ),
    # a rect of zeros is written as {} and skipped by bbs -> fallback
    pytest.param(
        [[(0, 0, 0, 0, "", True, "", "com.a")]],
        click(5, 5),
        "Click(0.5, 0.2)",
        "[-0.5, -0.2, 1.5, 0.8]",
        id="proto-zero-rect-skipped",
    ),
    # is_visible_to_user False is omitted -> the small node is ignored
    pytest.param(
        [[(0, 0, 1000, 2000, "", True, "", "com.a"), (250, 250, 350, 350, "", False, "", "com.a")]],
        click(300, 300),
        "Click(30.0, 15.0)",
        "[0.0, 0.0, 100.0, 100.0]",
        id="proto-invisible",
    ),
    # two windows: the smaller node of the second wins
    pytest.param(
        [[(0, 0, 1000, 2000, "", True, "", "com.a")], [(100, 200, 500, 400, "", True, "", "com.b")]],
        click(300, 300),
        "Click(30.0, 15.0)",
        E_BOX,
        id="proto-two-windows",
    ),
    # open_app through the proto path (lower-case name)
    pytest.param(
        [[(100, 200, 300, 400, "Gmail", True, "", "com.a")]],
        open_app("gmail"),
        "Open App gmail",
        APP_BOX,
        id="proto-app",
    ),
    # a Switch with no text: Element prints text=Switch
    pytest.param(
        [[(100, 200, 300, 400, "", True, "android.widget.Switch", "com.a")]],
        open_app("switch"),
        "Open App switch",
        APP_BOX,
        id="proto-switch",
    ),
]


@pytest.mark.parametrize(("windows", "action", "want_action", "want_box"), PROTO_TRUTH_CASES)
def test_molmo_truth_from_proto(windows, action, want_action, want_box):
    truth = molmo_truth(action, E, forest_to_json(_proto_forest(*windows)))
    assert (truth.target_action, truth.target_box) == (want_action, want_box)


def test_proto_forest_verdicts():
    """A whole step through the proto path: a zero right bound turns a thin node into a wide one."""
    truth = molmo_truth(
        click(900, 200), E, forest_to_json(_proto_forest([(100, 100, 0, 300, "", True, "", "p")]))
    )
    assert score_molmo("Click(95.0, 10.0)", truth).correct is True
    assert score_molmo("Click(9.9, 10.0)", truth).correct is False
