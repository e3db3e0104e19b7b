"""The one module that knows Molmo's text formats: pointing answers, action strings, and their renderers.

Pointing (sizes are ``(width, height)``; every point becomes pixels of *its* image via :mod:`.geometry`):

- Molmo v1, percent 0-100: ``<point x="61.5" y="40.4" alt="red mug">red mug</point>`` and
  ``<points x1="10.0" y1="20.5" x2="30.1" y2="44.0" alt="mugs">mugs</points>``; ``x<n>`` pairs with ``y<n>``
  and ``n`` becomes the object id. Points map onto ``image_sizes[0]``.
- Molmo2, integers 0-1000: ``<points coords="1 1 156 104 2 469 417">dogs</points>``: the image's 1-based
  index (for video: a timestamp in seconds), then ``object-id x y`` triples; images/frames are separated by
  ``;`` (older outputs: a tab). ``<tracks coords="...">`` has the same layout and is always video. A trailing
  ``:`` after the index/timestamp and a self-closing ``<points coords="..."/>`` are tolerated.
- "There are none." means the model found nothing. A tag cut off by the generation limit yields nothing.
  The label is the tag's inner text (v1 falls back to ``alt``), HTML-unescaped.

Actions as Molmo emits them for AndroidControl (coordinates in percent of the screenshot), plus desktop forms:
``Click(45.3, 71.2)``, ``Long Press(45.3, 71.2)``, ``Double Click(x, y)``, ``Right Click(x, y)``,
``Drag(x1, y1, x2, y2)``, ``Scroll down`` (up/down/left/right, optional clicks: ``Scroll down 3``),
``Type some text``, ``Open App Settings``, ``Navigate Home``, ``Navigate Back``, ``Wait``,
``Hotkey ctrl+s`` (keys joined by ``+``), ``Done`` / ``Done <answer>``. Keywords are case-insensitive and
may be joined by spaces or ``_``. With a plan first (``Plan: ... Action: Click(...)``) the text after the
last ``Action:`` counts. ``Type`` always reads as ``input_text`` (the desktop ``type`` action renders the
same way; an executor types both at the current focus). JSON is accepted too, anywhere in the text (code
fences included): AndroidControl's ``{"action_type": "click", "x": 100, "y": 200}`` or our own
``Action.to_dict()`` (key ``type``), both in absolute pixels.

Every parser here takes any ``str`` and never raises: it returns what it could read plus a ``reason`` that
quotes the output and states the expected format, so the message helps both people and models. Scanning is
linear in the text (plain ``str.find`` with memory and simple regexes), so megabytes of junk stay cheap.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from .actions import SCROLL_DIRECTIONS, Action, ActionType
from .errors import ActionValidationError
from .geometry import (
    PER_MILLE,
    PERCENT,
    Size,
    check_size,
    in_unit_square,
    make_point,
    normalized_to_scaled,
    pixels_to_normalized,
)
from .points import Point

logger = logging.getLogger(__name__)

FORMAT_MOLMO1_POINT = "molmo1_point"
FORMAT_MOLMO1_POINTS = "molmo1_points"
FORMAT_MOLMO2_POINTS = "molmo2_points"
FORMAT_MOLMO2_TRACKS = "molmo2_tracks"
NONE_ANSWER = "There are none."
"""What Molmo answers when there is nothing to point at (also what the renderers emit for no points)."""

_QUOTE_CHARS = 80
_MAX_NUMBER_CHARS = 24
_MAX_JSON_ATTEMPTS = 16
_MAX_POINTS = 20_000
"""Far more than any real answer holds (a point costs the model several tokens); bounds the work on junk."""
_TOO_MANY = f"stopped after {_MAX_POINTS} points"
_TAG_OPEN = re.compile(r"<(points|point|tracks)(?=[\s/>])")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_ACTION_LABEL = re.compile(r"action\s*:", re.IGNORECASE)
_EXPECTED_POINTS = (
    'expected Molmo v1 <point x="61.5" y="40.4" alt="label">label</point> '
    'or Molmo2 <points coords="1 1 156 104 2 469 417">label</points>'
)


def _quote(text: str) -> str:
    """A short repr of model output for error messages."""
    return repr(text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "...")


def _is_none_answer(text: str) -> bool:
    return "there are none" in text.lower()


# --------------------------------------------------------------------------------------------- points


@dataclass(frozen=True)
class PointParse:
    """Points read from one answer, the format they were in, and why nothing (or less) was found."""

    points: tuple[Point, ...]
    format: str | None
    reason: str | None


@dataclass(frozen=True)
class _Element:
    """One complete ``<point>``/``<points>``/``<tracks>`` element: its name, attributes and inner text."""

    name: str
    attrs: dict[str, str]
    inner: str


class _Reasons:
    """Reasons in first-seen order, de-duplicated with a count, so junk with many tags stays readable."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def add(self, reason: str) -> None:
        self._counts[reason] = self._counts.get(reason, 0) + 1

    def __bool__(self) -> bool:
        return bool(self._counts)

    def text(self) -> str | None:
        parts = [r if n == 1 else f"{r} (x{n})" for r, n in self._counts.items()]
        return "; ".join(parts) or None


class _Finder:
    """``str.find`` that remembers its last answer per needle, so scanning many tags never rereads the text.

    The first occurrence at or after ``start`` is also the first at or after any later start up to it, which
    keeps the tag scan linear even for input made of thousands of unclosed tags.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._memo: dict[str, tuple[int, int]] = {}

    def find(self, needle: str, start: int) -> int:
        memo = self._memo.get(needle)
        if memo is not None and memo[0] <= start and (memo[1] == -1 or memo[1] >= start):
            return memo[1]
        found = self._text.find(needle, start)
        self._memo[needle] = (start, found)
        return found


def _attributes(head: str) -> dict[str, str]:
    """``name="value"`` pairs of an opening tag, read by splitting on quotes (linear, no regex)."""
    parts = head.split('"')
    attrs: dict[str, str] = {}
    for i in range(0, len(parts) - 1, 2):
        outside = parts[i].rstrip()
        if not outside.endswith("="):
            continue
        names = outside[:-1].split()
        if names:
            attrs[names[-1].lower()] = parts[i + 1]
    return attrs


def _scan_elements(text: str, reasons: _Reasons) -> list[_Element]:
    """Every complete pointing element in ``text``; truncated ones only leave a reason."""
    finder = _Finder(text)
    elements: list[_Element] = []
    resume = 0
    for match in _TAG_OPEN.finditer(text):
        if match.start() < resume:
            continue
        name = match.group(1)
        gt = finder.find(">", match.end())
        if gt < 0:
            reasons.add(f"<{name}> tag cut off before its '>' (truncated output?)")
            break
        next_lt = finder.find("<", match.end())
        if 0 <= next_lt < gt:
            reasons.add(f"<{name}> tag cut off before its '>' (truncated output?)")
            continue
        head = text[match.end() : gt]
        if head.endswith("/"):
            elements.append(_Element(name, _attributes(head[:-1]), ""))
            resume = gt + 1
            continue
        closing = f"</{name}>"
        end = finder.find(closing, gt + 1)
        if end < 0:
            reasons.add(f"<{name}> element has no closing {closing} (truncated output?)")
            continue
        elements.append(_Element(name, _attributes(head), text[gt + 1 : end]))
        resume = end + len(closing)
    return elements


def _number(value: str) -> float | None:
    """A plain decimal (no exponent, NaN or infinity), or ``None``."""
    value = value.strip()
    if len(value) > _MAX_NUMBER_CHARS or _NUMBER.fullmatch(value) is None:
        return None
    return float(value)


def _integer(token: str) -> int | None:
    """A plain unsigned integer such as Molmo2's zero-padded ``049`` (the hot path, so no regex)."""
    if len(token) > _MAX_NUMBER_CHARS or not (token.isascii() and token.isdigit()):
        return None
    return int(token)


def _label(element: _Element) -> str:
    inner = html.unescape(element.inner).strip()
    return inner or html.unescape(element.attrs.get("alt", "")).strip()


def _v1_pairs(attrs: dict[str, str], reasons: _Reasons) -> list[tuple[int, str, str]]:
    """``(object_id, x, y)`` from ``x``/``y`` or ``x<n>``/``y<n>`` attributes, ordered by ``n``."""
    pairs = []
    for name, x_value in attrs.items():
        suffix = name[1:]
        if not name.startswith("x") or not (suffix == "" or (suffix.isascii() and suffix.isdigit())):
            continue
        y_value = attrs.get("y" + suffix)
        if y_value is None:
            reasons.add(f"attribute {name} has no matching y{suffix}")
            continue
        pairs.append((int(suffix) if suffix else 1, x_value, y_value))
    return sorted(pairs)


def _v1_points(element: _Element, sizes: list[Size | None], reasons: _Reasons) -> list[Point]:
    """Molmo v1: percent of the first image; values outside 0-100 are dropped as Ai2's reader does."""
    size = sizes[0] if sizes else None
    pairs = _v1_pairs(element.attrs, reasons)
    if not pairs:
        reasons.add(f"<{element.name}> tag has no x/y coordinates")
        return []
    if size is None:
        reasons.add("no valid image size to map Molmo v1 points onto")
        return []
    if len(pairs) > _MAX_POINTS:
        reasons.add(_TOO_MANY)
    label, points, dropped = _label(element), [], 0
    for object_id, x_value, y_value in pairs[:_MAX_POINTS]:
        x, y = _number(x_value), _number(y_value)
        point = None
        if x is not None and y is not None:
            point = make_point(x, y, PERCENT, size, label=label, object_id=object_id)
        if point is None:
            dropped += 1
        else:
            points.append(point)
    if dropped:
        reasons.add(f"dropped {dropped} Molmo v1 point(s) not a number in 0-100")
    return points


def _frame_head(token: str, video: bool) -> float | None:
    """The first number of a coords group: a 1-based image index, or a timestamp in seconds for video."""
    token = token.rstrip(":")
    return _number(token) if video else _integer(token)


def _group_points(
    group: str, position: int, label: str, sizes: list[Size | None], video: bool, reasons: _Reasons
) -> list[Point]:
    """One image's (or frame's) points from ``index id x y id x y ...``."""
    tokens = group.split()
    head = _frame_head(tokens[0], video)
    if head is None:
        reasons.add(f"coords group {_quote(group)} does not start with an image index or timestamp")
        return []
    image_index, timestamp = (position, head) if video else (int(head) - 1, None)
    size = sizes[0] if video and sizes else (sizes[image_index] if 0 <= image_index < len(sizes) else None)
    if size is None:
        reasons.add(f"dropped points of image {image_index + 1}: no such entry in image_sizes ({len(sizes)})")
        return []
    rest = tokens[1:]
    if len(rest) % 3:
        reasons.add("coords ended inside an (object id, x, y) triple")
    if len(rest) > 3 * _MAX_POINTS:
        reasons.add(_TOO_MANY)
    values = [_integer(token) for token in rest[: 3 * _MAX_POINTS]]
    points, dropped = [], 0
    for i in range(0, len(values) - 2, 3):
        oid, x, y = values[i : i + 3]
        point = None
        if oid is not None and x is not None and y is not None:
            point = make_point(
                x,
                y,
                PER_MILLE,
                size,
                label=label,
                image_index=image_index,
                object_id=oid,
                timestamp=timestamp,
            )
        if point is None:
            dropped += 1
        else:
            points.append(point)
    if dropped:
        reasons.add(f"dropped {dropped} Molmo2 point(s) not an integer in 0-1000")
    return points


def _molmo2_points(
    element: _Element, sizes: list[Size | None], video: bool, reasons: _Reasons
) -> list[Point]:
    """Molmo2: groups split by ``;`` or a tab, each mapped onto its own image's size."""
    groups = [g for g in element.attrs["coords"].replace("\t", ";").split(";") if g.strip()]
    if not groups:
        reasons.add(f"<{element.name}> tag has empty coords")
    label = _label(element)
    points: list[Point] = []
    for position, group in enumerate(groups):
        if len(points) >= _MAX_POINTS:
            reasons.add(_TOO_MANY)
            break
        points.extend(_group_points(group, position, label, sizes, video, reasons))
    return points


def _element_points(
    element: _Element, sizes: list[Size | None], video: bool, reasons: _Reasons
) -> tuple[str | None, list[Point]]:
    """Dispatch one element to its format's reader."""
    if "coords" in element.attrs:
        is_track = element.name == "tracks"
        fmt = FORMAT_MOLMO2_TRACKS if is_track else FORMAT_MOLMO2_POINTS
        return fmt, _molmo2_points(element, sizes, video or is_track, reasons)
    if element.name == "tracks":
        reasons.add("<tracks> tag without coords")
        return None, []
    fmt = FORMAT_MOLMO1_POINT if element.name == "point" else FORMAT_MOLMO1_POINTS
    return fmt, _v1_points(element, sizes, reasons)


def _valid_sizes(image_sizes: Any, reasons: _Reasons) -> list[Size | None]:
    """Checked sizes (``None`` for a bad entry); a bare ``(w, h)`` pair is taken as one image."""
    if (
        isinstance(image_sizes, tuple)
        and len(image_sizes) == 2
        and all(isinstance(v, int) for v in image_sizes)
    ):
        image_sizes = [image_sizes]
    sizes: list[Size | None] = []
    for size in image_sizes:
        try:
            sizes.append(check_size(size))
        except (TypeError, ValueError):
            reasons.add(f"invalid image size {size!r} (expected positive (width, height))")
            sizes.append(None)
    return sizes


def _parse_points(text: str, image_sizes: Sequence[Size], video: bool) -> PointParse:
    reasons = _Reasons()
    if not text.strip():
        return PointParse((), None, "empty text: " + _EXPECTED_POINTS)
    sizes = _valid_sizes(image_sizes, reasons)
    fmt, points = None, []
    elements = _scan_elements(text, reasons)
    for element in elements:
        if len(points) >= _MAX_POINTS:
            reasons.add(_TOO_MANY)
            break
        element_format, element_points = _element_points(element, sizes, video, reasons)
        fmt = fmt or element_format
        points.extend(element_points)
    del points[_MAX_POINTS:]
    if not points and _is_none_answer(text):
        reasons.add(f"the model found none ({NONE_ANSWER!r})")
    elif not elements and not reasons:
        reasons.add(f"no <point>, <points> or <tracks> tag in {_quote(text)}; {_EXPECTED_POINTS}")
    return PointParse(tuple(points), fmt, reasons.text())


def parse_points_detailed(text: str, image_sizes: Sequence[Size], *, video: bool = False) -> PointParse:
    """Read every point in a Molmo answer, with the format found and why points are missing or dropped.

    ``image_sizes`` are the ``(width, height)`` of the images in prompt order (for video, the frame size
    first); ``video=True`` reads Molmo2's first coords number as a timestamp. Never raises.
    """
    if not isinstance(text, str):
        return PointParse((), None, f"expected text, got {type(text).__name__}")
    try:
        return _parse_points(text, image_sizes, video)
    except Exception as exc:  # never raise on model output; keep the bug visible in the log
        logger.warning("point parsing failed unexpectedly", exc_info=True)
        return PointParse((), None, f"could not parse points ({exc!r}) from {_quote(text)}")


def parse_points(text: str, image_sizes: Sequence[Size], *, video: bool = False) -> list[Point]:
    """The points of :func:`parse_points_detailed` alone: ``[]`` when there are none. Never raises."""
    return list(parse_points_detailed(text, image_sizes, video=video).points)


_COMPLETE_PAIRS = (("<points", "</points>"), ("<tracks", "</tracks>"), ("<point", "</point>"))
_SELF_CLOSED = re.compile(r"<(?:points|tracks)\s[^<>]*/>")


def answer_is_complete(text: str) -> bool:
    """True once a pointing answer holds a closed tag (or "There are none."), so generation can stop.

    Meant for a per-token stopping criterion: callers must pass only the decoded *answer*, never the prompt
    (which may contain example tags), so the string stays short and each call is a few ``find``s.
    """
    if not isinstance(text, str):
        return False
    for opening, closing in _COMPLETE_PAIRS:
        end = text.find(closing)
        if end > 0 and text.find(opening, 0, end) >= 0:
            return True
    return _SELF_CLOSED.search(text) is not None or _is_none_answer(text)


# Early stop: the label after a tag's coordinates is the query echoed, so decoding can end once the
# coordinates are complete. These three functions are the whole contract between the stopping criterion
# (``coords_are_complete``) and the reader (``complete_cut_answer`` then ``parse_points``).


@dataclass(frozen=True)
class _CutTag:
    """The last pointing tag of an answer whose coordinates are complete but whose element is not closed."""

    name: str
    keep: int
    """How much of the text to keep: up to the tag's ``>`` if written, else up to its last closed value."""
    has_gt: bool
    molmo1: bool
    """Molmo v1 tags carry the label in ``alt`` too; Molmo2's only between the tags."""


def _coords_closed(name: str, head: str) -> bool:
    """Are the coordinate attributes of an opening tag (without ``<name`` and ``>``) all written?

    Molmo2: the closing quote of ``coords="..."`` (several points live inside that one value). Molmo v1
    ``<point>``: both ``x`` and ``y``. Molmo v1 ``<points>``: every ``x<n>`` has its ``y<n>`` and a
    non-coordinate attribute (``alt``) has begun, since only then is it certain that no ``x<n+1>`` follows.
    """
    if head.count('"') % 2:  # inside a value
        return False
    attrs = _attributes(head)
    if "coords" in attrs or name == "tracks":
        return "coords" in attrs
    xs = [key for key in attrs if key.startswith("x") and (key[1:] == "" or key[1:].isdigit())]
    if not xs or any("y" + key[1:] not in attrs for key in xs):
        return False
    if name == "point":
        return True
    after_values = head.rsplit('"', 1)[-1].strip()
    return bool(after_values) and after_values[0].lower() not in "xy/>"


def _cut_tag(text: str) -> _CutTag | None:
    last = None
    for last in _TAG_OPEN.finditer(text):  # noqa: B007 (only the last opening tag can still be open)
        pass
    if last is None or f"</{last.group(1)}>" in text[last.end() :]:
        return None
    name, rest = last.group(1), text[last.end() :]
    gt = rest.find(">")
    head = rest if gt < 0 else rest[:gt]
    if "<" in head or head.endswith("/") or not _coords_closed(name, head):
        return None
    keep = last.end() + (gt + 1 if gt >= 0 else rest.rfind('"') + 1)
    return _CutTag(name, keep, gt >= 0, "coords" not in _attributes(head))


def coords_are_complete(text: str) -> bool:
    """True once an answer's coordinates are all written: a complete answer, or an open pointing tag
    whose coordinate attributes are closed (Molmo2: after ``coords="..."``; v1: after the last ``y``).

    The stopping criterion of the point path; :func:`complete_cut_answer` turns such a cut answer back
    into one the parser reads, with the same points as the full answer. Pass only the answer text.
    """
    if not isinstance(text, str):
        return False
    return answer_is_complete(text) or _cut_tag(text) is not None


def complete_cut_answer(text: str, label: str = "") -> str:
    """Close a pointing tag that decoding left open after its coordinates, with ``label`` as its text.

    The model would echo the query as the label, so callers pass the query; anything the model already
    wrote after the tag's ``>`` is replaced by it. Complete answers and text without such a tag come back
    unchanged, so this is safe to apply to every answer before :func:`parse_points`.
    """
    if not isinstance(text, str) or answer_is_complete(text):
        return text
    cut = _cut_tag(text)
    if cut is None:
        return text
    head = text[: cut.keep]
    if not cut.has_gt:
        alt = f' alt="{html.escape(label)}"' if cut.molmo1 else ""
        head = f"{head}{alt}>"
    return f"{head}{html.escape(label, quote=False)}</{cut.name}>"


def _per_mille(value: float) -> str:
    return f"{min(max(round(value), 0), 1000):03d}"


def _percent(value: float) -> str:
    return f"{min(max(value, 0.0), 100.0):.1f}"


def format_points_molmo2(points_by_image: Sequence[Sequence[tuple[float, float]]], label: str) -> str:
    """Render normalised points as a Molmo2 answer (training targets); object ids run on across images.

    Images without points are left out of ``coords``; no points at all gives "There are none.".
    """
    groups, object_id = [], 0
    for image_number, points in enumerate(points_by_image, start=1):
        triples = []
        for x_norm, y_norm in points:
            object_id += 1
            x, y = normalized_to_scaled(x_norm, y_norm, PER_MILLE)
            triples.append(f"{object_id} {_per_mille(x)} {_per_mille(y)}")
        if triples:
            groups.append(" ".join([str(image_number), *triples]))
    if not groups:
        return NONE_ANSWER
    return f'<points coords="{";".join(groups)}">{html.escape(label, quote=False)}</points>'


def format_point_molmo1(points: Sequence[tuple[float, float]], label: str) -> str:
    """Render normalised points of one image as a Molmo v1 answer (one decimal percent)."""
    scaled = [normalized_to_scaled(x, y, PERCENT) for x, y in points]
    alt, inner = html.escape(label, quote=True), html.escape(label, quote=False)
    if not scaled:
        return NONE_ANSWER
    if len(scaled) == 1:
        ((x, y),) = scaled
        return f'<point x="{_percent(x)}" y="{_percent(y)}" alt="{alt}">{inner}</point>'
    coords = " ".join(
        f'x{i}="{_percent(x)}" y{i}="{_percent(y)}"' for i, (x, y) in enumerate(scaled, start=1)
    )
    return f'<points {coords} alt="{alt}">{inner}</points>'


# --------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class ActionParse:
    """The action read from one answer, or ``None`` with the reason (quoting the output)."""

    action: Action | None
    reason: str | None


class _BadAction(Exception):
    """Why an action text could not be read; becomes :attr:`ActionParse.reason`."""


def _numbers(rest: str, count: int) -> list[float]:
    """``count`` numbers from ``(a, b, ...)`` (or the rest of the line); ``x=`` style prefixes tolerated."""
    rest = rest.strip()
    if rest.startswith("("):
        close = rest.find(")")
        if close < 0:
            raise _BadAction("missing ')'")
        rest = rest[1:close]
    else:
        rest = rest.split("\n", 1)[0]
    values = [_number(token.rpartition("=")[2]) for token in rest.replace(",", " ").split()]
    if len(values) != count or any(v is None for v in values):
        raise _BadAction(f"expected {count} numbers (percent of the screenshot)")
    return [v for v in values if v is not None]


def _pixels(values: list[float], size: Size) -> list[float]:
    """Percent pairs -> pixels of the screenshot through :func:`make_point` (outside 0-100 is an error)."""
    out: list[float] = []
    for i in range(0, len(values), 2):
        point = make_point(values[i], values[i + 1], PERCENT, size)
        if point is None:
            raise _BadAction(
                f"point ({values[i]:g}, {values[i + 1]:g}) is outside 0-100 percent of the screen"
            )
        out += [point.x, point.y]
    return out


def _read_point(rest: str, size: Size) -> dict[str, Any]:
    x, y = _pixels(_numbers(rest, 2), size)
    return {"x": x, "y": y}


def _read_two_points(rest: str, size: Size) -> dict[str, Any]:
    x, y, x2, y2 = _pixels(_numbers(rest, 4), size)
    return {"x": x, "y": y, "x2": x2, "y2": y2}


def _read_direction(rest: str, size: Size) -> dict[str, Any]:
    tokens = rest.replace(",", " ").split()
    direction = tokens[0].strip("().,;:!\"'").lower() if tokens else ""
    if direction not in SCROLL_DIRECTIONS:
        raise _BadAction("the direction must be up, down, left or right")
    amount = tokens[1].strip(".") if len(tokens) > 1 else ""
    return {"direction": direction, "amount": int(amount) if amount.isascii() and amount.isdigit() else None}


def _read_text(rest: str, size: Size) -> dict[str, Any]:
    if not rest.strip():
        raise _BadAction("nothing to type")
    return {"text": rest.strip()}


def _read_app(rest: str, size: Size) -> dict[str, Any]:
    name = rest.strip().split("\n", 1)[0].strip()
    if not name:
        raise _BadAction("no app name")
    return {"app_name": name}


def _read_keys(rest: str, size: Size) -> dict[str, Any]:
    keys = [key.strip().lower() for key in rest.split("+") if key.strip()]
    if not keys:
        raise _BadAction("no keys")
    return {"keys": keys}


def _read_answer(rest: str, size: Size) -> dict[str, Any]:
    answer = rest.strip().lstrip(":").strip()
    return {"text": answer if answer.strip(".!") else None}


def _read_nothing(rest: str, size: Size) -> dict[str, Any]:
    return {}


def _percent_pair(x: float | None, y: float | None, size: Size) -> str:
    x_pct, y_pct = normalized_to_scaled(*pixels_to_normalized(x or 0.0, y or 0.0, size), PERCENT)
    return f"{x_pct:.1f}, {y_pct:.1f}"


_Reader = Callable[[str, Size], dict[str, Any]]
_Writer = Callable[[Action, Size], str]
_ARG_KINDS: dict[str, tuple[_Reader, _Writer]] = {
    "point": (_read_point, lambda a, s: f"({_percent_pair(a.x, a.y, s)})"),
    "two_points": (
        _read_two_points,
        lambda a, s: f"({_percent_pair(a.x, a.y, s)}, {_percent_pair(a.x2, a.y2, s)})",
    ),
    "direction": (
        _read_direction,
        lambda a, s: f" {a.direction}" + ("" if a.amount is None else f" {a.amount}"),
    ),
    "text": (_read_text, lambda a, s: f" {a.text}"),
    "app": (_read_app, lambda a, s: f" {a.app_name}"),
    "keys": (_read_keys, lambda a, s: " " + "+".join(a.keys or ())),
    "answer": (_read_answer, lambda a, s: f" {a.text}" if a.text else ""),
    "none": (_read_nothing, lambda a, s: ""),
}
"""How each kind of argument is read from, and written to, an action string."""


@dataclass(frozen=True)
class _ActionForm:
    """One action string form: the keyword as Molmo writes it, its action type and argument kind."""

    name: str
    type: ActionType
    args: str
    example: str

    @cached_property
    def keyword(self) -> re.Pattern[str]:
        """The name, case-insensitive, its words joined by any spaces or ``_``, not followed by a letter."""
        return re.compile(r"[\s_]*".join(self.name.split()) + r"(?![A-Za-z])", re.IGNORECASE)


_ACTION_FORMS: tuple[_ActionForm, ...] = (
    # Longer keywords first: "Long Press" and "Double Click" must win over "Click".
    _ActionForm("Long Press", ActionType.LONG_PRESS, "point", "Long Press(45.3, 71.2)"),
    _ActionForm("Double Click", ActionType.DOUBLE_CLICK, "point", "Double Click(45.3, 71.2)"),
    _ActionForm("Right Click", ActionType.RIGHT_CLICK, "point", "Right Click(45.3, 71.2)"),
    _ActionForm("Click", ActionType.CLICK, "point", "Click(45.3, 71.2)"),
    _ActionForm("Drag", ActionType.DRAG, "two_points", "Drag(10.0, 20.0, 60.0, 20.0)"),
    _ActionForm("Scroll", ActionType.SCROLL, "direction", "Scroll down"),
    _ActionForm("Type", ActionType.INPUT_TEXT, "text", "Type some text"),
    _ActionForm("Open App", ActionType.OPEN_APP, "app", "Open App Settings"),
    _ActionForm("Navigate Home", ActionType.NAVIGATE_HOME, "none", "Navigate Home"),
    _ActionForm("Navigate Back", ActionType.NAVIGATE_BACK, "none", "Navigate Back"),
    _ActionForm("Wait", ActionType.WAIT, "none", "Wait"),
    _ActionForm("Hotkey", ActionType.HOTKEY, "keys", "Hotkey ctrl+s"),
    _ActionForm("Done", ActionType.DONE, "answer", "Done <answer>"),
)
"""The one table of action strings (percent coordinates)."""

_FORM_BY_TYPE = {form.type: form for form in _ACTION_FORMS} | {
    ActionType.TYPE: next(f for f in _ACTION_FORMS if f.type is ActionType.INPUT_TEXT)
}
_EXPECTED_ACTIONS = (
    "expected one of "
    + ", ".join(form.example for form in _ACTION_FORMS)
    + ' (percent of the screenshot), or JSON such as {"action_type": "click", "x": 120, "y": 340} (pixels)'
)


def _action_segment(text: str) -> str:
    """The part to read: after the last ``Action:`` (plans come first), without code-fence backticks."""
    last = None
    for last in _ACTION_LABEL.finditer(text):  # noqa: B007 (the last match is wanted)
        pass
    segment = (text[last.end() :] if last else text).strip()
    return segment.strip("`").strip() if segment.startswith("`") else segment


def _read_string_action(segment: str, size: Size) -> Action | None:
    """An action from the string forms, or ``None`` when no keyword starts the segment."""
    for form in _ACTION_FORMS:
        match = form.keyword.match(segment)
        if match is None:
            continue
        reader = _ARG_KINDS[form.args][0]
        try:
            fields = reader(segment[match.end() :], size)
        except _BadAction as exc:
            raise _BadAction(f"{form.name}: {exc}; expected e.g. {form.example}") from None
        return Action(type=form.type, **fields)
    return None


def _find_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` that names an action type (a bounded number of tries)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(_MAX_JSON_ATTEMPTS):
        if start < 0:
            break
        try:
            value, _end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict) and ("action_type" in value or "type" in value):
            return value
        start = text.find("{", start + 1)
    return None


def _check_on_screen(action: Action, size: Size) -> None:
    """Pixel actions from JSON must land on the screenshot, as percent ones must."""
    for x, y in ((action.x, action.y), (action.x2, action.y2)):
        if x is not None and y is not None and not in_unit_square(*pixels_to_normalized(x, y, size)):
            raise _BadAction(f"pixel point ({x:g}, {y:g}) is outside the {size[0]}x{size[1]} screenshot")


def _read_json_action(segment: str, size: Size) -> Action | None:
    data = _find_json_object(segment)
    if data is None:
        return None
    action = Action.from_android_control(data) if "action_type" in data else Action.from_dict(data)
    _check_on_screen(action, size)
    return action


def _parse_action(text: str, image_size: Size) -> ActionParse:
    try:
        size = check_size(image_size)
    except (TypeError, ValueError) as exc:
        return ActionParse(None, f"invalid image size {image_size!r}: {exc}")
    segment = _action_segment(text)
    if not segment:
        return ActionParse(None, f"no action in {_quote(text)}; {_EXPECTED_ACTIONS}")
    try:
        action = _read_string_action(segment, size) or _read_json_action(segment, size)
    except (_BadAction, ActionValidationError) as exc:
        return ActionParse(None, f"could not read an action from {_quote(segment)}: {exc}")
    if action is None:
        return ActionParse(None, f"no action in {_quote(segment)}; {_EXPECTED_ACTIONS}")
    return ActionParse(replace(action, raw=text), None)


def parse_action_detailed(text: str, image_size: Size) -> ActionParse:
    """Read the action in a Molmo answer as pixels of a screenshot of ``image_size``. Never raises."""
    if not isinstance(text, str):
        return ActionParse(None, f"expected text, got {type(text).__name__}")
    try:
        return _parse_action(text, image_size)
    except Exception as exc:  # never raise on model output; keep the bug visible in the log
        logger.warning("action parsing failed unexpectedly", exc_info=True)
        return ActionParse(None, f"could not parse an action ({exc!r}) from {_quote(text)}")


def parse_action(text: str, image_size: Size) -> Action | None:
    """The action of :func:`parse_action_detailed`, or ``None``. Never raises."""
    return parse_action_detailed(text, image_size).action


def format_action_molmo(action: Action, image_size: Size) -> str:
    """Render an action as the string Molmo emits (percent, one decimal): the inverse of :func:`parse_action`.

    The desktop ``type`` action renders as ``Type ...`` and therefore reads back as ``input_text``.
    """
    form = _FORM_BY_TYPE[action.type]
    writer = _ARG_KINDS[form.args][1]
    return form.name + writer(action, check_size(image_size))
