"""Protocol ``molmo``: AndroidControl step accuracy exactly as Molmo's released evaluator computes it.

Reference (read, not copied): allenai/molmo ``olmo/hf_datasets/android_control.py`` (``process_action``,
``_generate_examples``, ``map_coordinates_mmolmo``, ``map_bounding_box``) and
``olmo/hf_datasets/android_control_utils.py`` (``extract_bbs_from_a11y``, ``find_gt_box`` with
``strategy='smallest'``, ``extract_app_bb``, ``reduce_a11y_tree``) build the ground truth of a step as two
strings, ``target_action`` and ``target_box``; ``olmo/eval/evaluators.py`` (``AndroidControlEval``,
``compute_stepwise_accuracy``) compares the model's decoded answer with them. The purpose of this module is
a number comparable with Molmo's, so it reproduces what that code does, including where it departs from
the rules it was meant to implement. Each such place:

1. **The answer is cut between the first and second ``Action:``** (``split("Action:")[1]``), not after the
   first: ``Action: Wait Action: Click(...)`` is read as ``Wait``.
2. **Action words by prefix, after strip and lower-case**: ``Clicked the button`` is a click,
   ``typed`` a type; ``wait``, ``navigate home`` and ``navigate back`` must be the whole answer
   (``Wait.`` is no action). ``Scroll`` takes the second whitespace token as is (``Scroll down.`` is
   direction ``down.``); ``Type`` and ``Open App`` keep everything after the first 5 / 9 characters.
3. **Coordinates** are the first two unsigned numbers (``\\d+(?:\\.\\d+)?``) anywhere in the answer:
   minus signs are dropped, ``Click(1e3, 5)`` reads ``(1, 3)``.
4. **Percent against a rounded box**: the target box is mapped to percent with ``round(v / size * 100, 1)``,
   stored as its ``str`` and read back with ``\\d+\\.\\d+``, so **a negative bound loses its minus sign**
   (a node starting 20 px left of the screen becomes a box starting at +1.9%). Edges are inclusive.
5. **Smallest containing node**, compared by ``(width, height)`` as a tuple (width first), earliest node on
   ties; containment uses the ground-truth point truncated to ints; no containing node: the point
   +/- 10 px. Only nodes visible to the user and with at least one bound in the JSON count.
6. **Zero-valued bounds**: the forest is read as ``MessageToJson`` writes it, which omits fields equal to 0;
   a missing ``left``/``top`` becomes 0 (right), a missing ``right``/``bottom`` becomes the screen's width
   / height (wrong: it was 0), so a node whose right or bottom edge is 0 grows to the screen's edge, and a
   node with all four bounds 0 is dropped.
7. **Ground-truth coordinates must be integers**: the pixel action string is ``Click({x}, {y})`` with
   Python's ``str``; a float such as ``540.5`` defeats the percent mapping (the target stays in pixels,
   which only its type matters for) and the box search reads ``540`` and ``5`` as the point.
8. **The app-icon rule** (a click counts for ``open_app``): the reduced accessibility text is lower-cased
   but the searched ``text=<App Name>`` is not, so **any app name with an upper-case letter never has a
   box** and such clicks never count. The name is put into a regular expression unescaped (``.`` matches
   anything, an invalid pattern gives no box here, where the reference would raise), it matches as a
   prefix (``text=note`` finds ``text=notes``), only the first match in the text counts, the box is
   rebuilt from the node's integer centre and size (``centre - size // 2``), and nodes with a negative
   centre or size cannot match. The reduced text keeps, per window, only the first node of each distinct
   ``text`` value (its de-duplication key reads keys the JSON nodes do not have, so it keys on text alone),
   lists nodes grouped by package, and a Switch with no text or resource is written ``text=Switch`` (so
   ``Open App Switch`` finds it).
9. **Text and app names** are compared exactly after lower-casing the whole answer and the target and
   stripping their ends only (inner spaces count).
10. **Types that both fail to parse are equal**: a ground truth the builder could not render (an unknown
    ``action_type`` gives ``""``) scores every unrecognised answer as correct.

Where the reference would crash (a forest with no ``windows`` key, a node without a package name, a box
string without four numbers) this module returns the closest non-crashing reading (no nodes, the package
shown as ``None``, a wrong step) and says so in the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .verdict import StepVerdict

PROTOCOL = "molmo"
MAX_NEW_TOKENS = 16
"""The reference evaluation decoded at most 16 new tokens per answer."""
FALLBACK_HALF_SIZE = 10
NODE_PROPERTIES = (
    "isCheckable",
    "isChecked",
    "isClickable",
    "isClicked",
    "isLongClickable",
    "isScrollable",
    "isSelected",
)
_FILTERED_VALUES = (False, "", None, "None")  # what the reduced tree drops from a node's fields
_COORDINATE = re.compile(r"\d+(?:\.\d+)?")
_BOX_NUMBER = re.compile(r"\d+\.\d+")
_INTEGER = re.compile(r"\d+")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class MolmoTruth:
    """One step's ground truth as the reference's dataset stores it (both fields are strings there).

    ``target_action``: the action in Molmo's answer format, coordinates in percent (``Click(45.3, 71.2)``).
    ``target_box``: ``str`` of the percent box for clicks, long presses and findable app icons, else ``""``.
    ``pixel_box``: the same box in screen pixels before rounding (for drawing), or ``None``.
    """

    target_action: str
    target_box: str
    pixel_box: Box | None = None


# --- the accessibility forest as the reference sees it ----------------------------------------------------


def forest_to_json(data: bytes) -> dict[str, Any]:
    """A serialized ``AndroidAccessibilityForest`` as ``json.loads(MessageToJson(forest))``: camelCase keys,
    fields equal to their default (0, "", false) left out, exactly what the reference reads."""
    from google.protobuf.json_format import MessageToJson

    from .episodes import import_a11y_protos

    forest = import_a11y_protos().AndroidAccessibilityForest.FromString(data)
    return json.loads(MessageToJson(forest))


def _windows(forest: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(forest.get("windows", []))


def visible_boxes(forest: Mapping[str, Any], screen_size: tuple[int, int]) -> list[tuple[int, ...]]:
    """``[left, top, right, bottom]`` of every visible node with a bound, in window then node order
    (``extract_bbs_from_a11y``): a missing left/top is 0, a missing right/bottom the screen's size."""
    width, height = screen_size
    boxes = []
    for window in _windows(forest):
        for node in window.get("tree", {}).get("nodes", []):
            bounds = node.get("boundsInScreen", {})
            if not any(side in bounds for side in ("left", "top", "right", "bottom")):
                continue
            if not node.get("isVisibleToUser", False):
                continue
            boxes.append(
                (
                    bounds.get("left", 0),
                    bounds.get("top", 0),
                    bounds.get("right", int(width)),
                    bounds.get("bottom", int(height)),
                )
            )
    return boxes


def smallest_box(point: tuple[int, int], boxes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """``find_gt_box(strategy='smallest')``: the smallest box containing the point, else the point +/- 10."""
    x, y = int(point[0]), int(point[1])
    enclosing = [b for b in boxes if b[0] <= x <= b[2] and b[1] <= y <= b[3]]
    if enclosing:
        return min(enclosing, key=lambda b: (b[2] - b[0], b[3] - b[1]))  # min keeps the first of equals
    px, py = point
    return (
        px - FALLBACK_HALF_SIZE,
        py - FALLBACK_HALF_SIZE,
        px + FALLBACK_HALF_SIZE,
        py + FALLBACK_HALF_SIZE,
    )


def _reduced_node(node: Mapping[str, Any]) -> dict[str, Any]:
    resource = re.sub(r"com.*?id/", "", node.get("viewIdResourceName", ""))
    class_name = node.get("className")
    fields: dict[str, Any] = {
        "package": node.get("packageName"),
        "resource": resource,
        "bbox": node.get("boundsInScreen", {}),
        "class_": class_name.replace("android.widget.", "") if class_name is not None else "",
        "properties": [name for name in NODE_PROPERTIES if node.get(name, False) is not False],
    }
    if node.get("text") not in ("", None):
        fields["text"] = node.get("text")
    return {key: value for key, value in fields.items() if value not in _FILTERED_VALUES}


def _node_line(fields: Mapping[str, Any]) -> str:
    bbox = fields.get("bbox") or {}
    left, top = bbox.get("left", 0), bbox.get("top", 0)
    right, bottom = bbox.get("right", 0), bbox.get("bottom", 0)
    width, height = int(right) - int(left), bottom - top
    line = f"center=[{int(left + width / 2)},{int(top + height / 2)}], size=[{width},{height}]"
    if fields.get("text") not in ("", None):
        line += f", text={fields['text']}"
    elif fields.get("resource") not in ("", None):
        line += f", resource={fields['resource']}"
    class_name = fields.get("class_")
    if class_name is not None:
        if "Switch" in class_name:
            line += ", text=Switch"
        elif "Edit" in class_name:
            line += ", EditableText"
    properties = fields.get("properties") or []
    if properties:
        line += ", " + str(properties)
    return line


def _first_of_each_text(nodes: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """The reference's de-duplication: its key names fields the JSON nodes never have, so only ``text``
    varies and each window keeps the first node per distinct text (one text-less node included)."""
    seen = set()
    for node in nodes:
        key = (node.get("bbox"), node.get("class"), node.get("resource"), node.get("text"))
        if key not in seen:
            seen.add(key)
            yield node


def reduce_a11y_tree(forest: Mapping[str, Any]) -> str:
    """The reference's reduced accessibility text (``reduce_a11y_tree``): per package, one line per node."""
    reduced = []
    for window in forest.get("windows", []):
        if "tree" not in window:
            continue
        for node in _first_of_each_text(window["tree"].get("nodes", [])):
            if not node.get("isVisibleToUser"):
                continue
            if (
                node.get("isClickable")
                or node.get("isCheckable")
                or node.get("text") != ""
                or node.get("viewIdResourceName") != ""
            ):
                reduced.append(_reduced_node(node))
    by_package: dict[Any, list[dict[str, Any]]] = {}
    for fields in reduced:
        by_package.setdefault(fields.get("package"), []).append(fields)
    lines = []
    for package, nodes in by_package.items():
        lines.append(str(package))  # the reference raises on a node without a package; we write None
        lines.extend("\t" + _node_line(fields) for fields in nodes)
        lines.append("")
    return "\n".join(lines)


def app_box(reduced_tree: str, app_name: str) -> tuple[int, int, int, int] | None:
    """``extract_app_bb(reduced, 'text=' + app_name)``: the first node written ``text=<app_name>...``.

    The tree is lower-cased, the searched text is not, and the name goes into the pattern unescaped.
    """
    search = "text=" + app_name
    tree = reduced_tree.lower()
    if search not in tree:
        return None
    try:
        pattern = re.compile(rf"center=\[(\d+),(\d+)\],\s*size=\[(\d+),(\d+)\],\s*{search}")
    except re.error:
        return None
    match = pattern.search(tree)
    if match is None:
        return None
    cx, cy, width, height = (int(g) for g in match.groups())
    return (cx - width // 2, cy - height // 2, cx + width // 2, cy + height // 2)


# --- ground truth -------------------------------------------------------------------------------------------


def action_string(action: Mapping[str, Any]) -> str:
    """``process_action``: the dataset's action JSON as the reference's pixel action string."""
    kind = action.get("action_type")
    if kind == "open_app":
        return "Open App " + str(action.get("app_name"))
    if kind in ("click", "long_press"):
        name = "Click" if kind == "click" else "Long Press"
        return f"{name}({action.get('x')}, {action.get('y')})"
    if kind == "scroll":
        return "Scroll " + str(action.get("direction"))
    if kind == "input_text":
        return "Type " + str(action.get("text"))
    return {"navigate_home": "Navigate Home", "navigate_back": "Navigate Back", "wait": "Wait"}.get(
        str(kind), ""
    )


def _percent(value: float, size: float) -> float:
    return round((value / size) * 100, 1)


def percent_action(pixel_action: str, screen_size: tuple[int, int]) -> str:
    """``map_coordinates_mmolmo``: integer pixel clicks and long presses to percent with one decimal."""
    width, height = screen_size
    for name in ("Click", "Long Press"):
        match = re.match(rf"{name}\((\d+), (\d+)\)", pixel_action)
        if match:
            x, y = int(match.group(1)), int(match.group(2))
            return f"{name}({_percent(x, width)}, {_percent(y, height)})"
    return pixel_action


def _box_string(box: Sequence[float], screen_size: tuple[int, int]) -> str:
    width, height = screen_size
    left, top, right, bottom = box
    return str(
        [_percent(left, width), _percent(top, height), _percent(right, width), _percent(bottom, height)]
    )


def molmo_truth(
    action: Mapping[str, Any], screen_size: tuple[int, int], forest: Mapping[str, Any]
) -> MolmoTruth:
    """One step's ground truth as the reference builds it (``_generate_examples``).

    Args:
        action: The dataset's action JSON, ``json.loads``-ed (ints stay ints, floats floats).
        screen_size: ``(width, height)`` of the screenshot PNG (the reference's ``dims``).
        forest: The step's forest as :func:`forest_to_json` gives it.
    """
    size = (int(screen_size[0]), int(screen_size[1]))
    pixel_action = action_string(action)
    target_action = percent_action(pixel_action, size)
    box: tuple[float, ...] | None = None
    if pixel_action.startswith(("Click", "Long Press")):
        numbers = _INTEGER.findall(pixel_action)
        if len(numbers) >= 2:
            box = smallest_box((int(numbers[0]), int(numbers[1])), visible_boxes(forest, size))
    elif pixel_action.startswith("Open App"):
        box = app_box(reduce_a11y_tree(forest), pixel_action[9:])
    if box is None:
        return MolmoTruth(target_action, "")
    return MolmoTruth(target_action, _box_string(box, size), tuple(float(v) for v in box))


# --- reading and scoring an answer --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadAction:
    """An answer (or target) as ``compute_stepwise_accuracy``'s ``parse_action`` reads it."""

    type: str | None
    coords: tuple[float, float] | None = None
    text: str | None = None


def cut_answer(answer: str) -> str:
    """``AndroidControlEval``: the text between the first and the second ``Action:``, stripped."""
    if "Action:" in answer:
        return answer.split("Action:")[1].strip()
    return answer


def read_action(text: str) -> ReadAction:
    """``parse_action``: strip, lower-case, recognise the action word by prefix (or whole text)."""
    s = text.strip().lower()
    if s.startswith("click") or s.startswith("long press"):
        numbers = _COORDINATE.findall(s)
        coords = (float(numbers[0]), float(numbers[1])) if len(numbers) >= 2 else None
        return ReadAction("click" if s.startswith("click") else "long press", coords=coords)
    if s.startswith("type"):
        return ReadAction("type", text=s[5:])
    if s.startswith("scroll"):
        words = s.split()
        return ReadAction("scroll", text=words[1] if len(words) >= 2 else "")
    if s == "wait":
        return ReadAction("wait")
    if s.startswith("open app"):
        return ReadAction("open_app", text=s[9:])
    if s in ("navigate home", "navigate back"):
        return ReadAction(s)
    return ReadAction(None)


def _read_box(box: str) -> tuple[float, float, float, float] | None:
    numbers = [float(v) for v in _BOX_NUMBER.findall(box)]
    return (numbers[0], numbers[1], numbers[2], numbers[3]) if len(numbers) == 4 else None


def _inside(coords: tuple[float, float], box: str) -> bool | None:
    read = _read_box(box)
    if read is None:
        return None
    x1, y1, x2, y2 = read
    return x1 <= coords[0] <= x2 and y1 <= coords[1] <= y2


def _verdict(correct: bool, reason: str, predicted: ReadAction, truth: MolmoTruth) -> StepVerdict:
    return StepVerdict(
        correct=correct,
        reason=reason,
        target_box=truth.pixel_box,
        protocol=PROTOCOL,
        predicted_type=predicted.type or "unparsed",
        truth=truth.target_action,
    )


def _score_point(pred: ReadAction, truth: MolmoTruth, what: str) -> StepVerdict:
    if pred.coords is None:
        return _verdict(False, f"{what} without two coordinates", pred, truth)
    inside = _inside(pred.coords, truth.target_box)
    if inside is None:
        return _verdict(False, f"target box {truth.target_box!r} does not read as four numbers", pred, truth)
    where = f"({pred.coords[0]:g}, {pred.coords[1]:g})% {'inside' if inside else 'outside'}"
    return _verdict(inside, f"{what} {where} target box {truth.target_box}", pred, truth)


def score_molmo(answer: str, truth: MolmoTruth) -> StepVerdict:
    """The verdict of Molmo's evaluator for the model's raw decoded ``answer`` on one step."""
    pred = read_action(cut_answer(answer))
    gt = read_action(truth.target_action)
    if gt.type != pred.type:
        if pred.type == "click" and gt.type == "open_app":
            if truth.target_box == "":
                return _verdict(False, "click for open_app, but the reference finds no app box", pred, truth)
            return _score_point(pred, truth, "click for open_app")
        if pred.type is None:
            return _verdict(False, f"no action the reference recognises in {answer[:80]!r}", pred, truth)
        return _verdict(False, f"type {pred.type} != {gt.type}", pred, truth)
    if gt.type in ("click", "long press"):
        if gt.coords is None:
            return _verdict(False, f"the target {truth.target_action!r} has no coordinates", pred, truth)
        return _score_point(pred, truth, gt.type)
    if gt.type in ("type", "scroll", "open_app"):
        same = pred.text == gt.text
        what = {"type": "typed text", "scroll": "scroll direction", "open_app": "app name"}[gt.type]
        return _verdict(same, f"{what} {pred.text!r} {'==' if same else '!='} {gt.text!r}", pred, truth)
    if gt.type is None:
        return _verdict(
            True, "neither the answer nor the target is an action the reference reads", pred, truth
        )
    return _verdict(True, f"{gt.type} matches", pred, truth)
