"""Procedural app screens for ``SyntheticGui-v0``: the layout, the app's own state, and the tasks on it.

A :class:`Scene` is a screen of elements (buttons, icons, text fields, toggles, list items, a menu button
and the hidden menu drawer with its toggles) plus the state an app keeps (which drawer is open, which field
has focus, what was tapped, each toggle and field). Tasks are graded on that state alone, so any sequence of
actions that reaches the goal counts. All randomness comes from the generator the caller passes in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .gui_render import font_scale, text_width
from .palette import COLORS as PALETTE

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in screenshot pixels, edges included."""

COLORS: dict[str, tuple[int, int, int]] = {
    name: PALETTE[name]
    for name in ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "gray", "black")
}
"""Element colours (RGB) by the name instructions use, in the order seeds draw them."""
SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon", "cross")
BUTTON_WORDS = (
    "Settings", "Profile", "Search", "Share", "Save", "Cancel", "Login", "Submit", "Upload", "Download",
    "Photos", "Music", "Camera", "Maps", "Mail", "Calendar", "Notes", "Help", "Home", "Next", "Edit",
    "Send", "Play", "Refresh", "Filter", "Sort", "Export", "Print", "Open", "Account", "Cart", "Checkout",
    "Favorites", "History", "Messages", "Contacts", "Weather", "News", "Store", "Library", "Friends",
    "Events", "Reports", "Tasks", "Archive", "Backup", "Invite", "Details", "Continue", "Apply",
)  # fmt: skip
FIELD_WORDS = (
    "Name",
    "Email",
    "City",
    "Phone",
    "Address",
    "Username",
    "Comment",
    "Title",
    "Company",
    "Country",
)
TOGGLE_WORDS = (
    "Wi-Fi", "Bluetooth", "Airplane mode", "Dark mode", "Notifications", "Location", "Auto-rotate", "Sync",
    "Hotspot", "Do not disturb", "Battery saver", "NFC", "Auto-update", "Sound",
)  # fmt: skip
TYPE_WORDS = ("hello", "world", "Alice", "Paris", "12345", "molmo", "coffee", "tomorrow", "blue sky", "Bob")
TITLES = ("Home", "Dashboard", "My App", "Inbox", "Settings", "Explore", "Shop", "Library", "Profile")
TASK_KINDS = ("click", "icon", "multi", "any")
"""``click``: one tap on any element; ``icon``: one tap on an icon named by colour and shape;
``multi``: two or three actions; ``any``: click or multi."""

_CLICK_VERBS = ("Tap", "Click", "Press", "Select")


@dataclass
class Element:
    """One on-screen element; its mutable fields (``on``, ``text``, ``taps``) are the app's state."""

    id: int
    kind: str  # button | icon | field | toggle | list_item | menu_button | panel
    box: Box
    label: str = ""
    color: str = "gray"
    shape: str = ""
    layer: int = 0  # 0: main screen, 1: the menu drawer
    label_at: tuple[int, int] | None = None  # where a field's or toggle's caption is drawn
    on: bool = False
    text: str = ""
    taps: int = 0

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0

    def contains(self, x: float, y: float) -> bool:
        x0, y0, x1, y1 = self.box
        return x0 <= x <= x1 and y0 <= y <= y1

    @property
    def phrase(self) -> str:
        """The referring expression a pointing prompt uses (unique on its screen by construction)."""
        if self.kind == "button":
            return f"the {self.color} {self.label} button"
        if self.kind == "icon":
            return f"the {self.color} {self.shape} icon"
        if self.kind == "list_item":
            return f"the {self.label} list item"
        if self.kind in ("menu_button", "panel"):
            return f"the menu {self.kind.removeprefix('menu_')}"
        return f"the {self.label} {self.kind}"

    def describe(self) -> dict[str, object]:
        """The element as plain data (what info dicts and evaluation records carry), phrase included."""
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "color": self.color,
            "shape": self.shape,
            "box": list(self.box),
            "phrase": self.phrase,
        }


@dataclass(frozen=True)
class Theme:
    """Colours and font of one app (RGB)."""

    backdrop: tuple[int, int, int]
    background: tuple[int, int, int]
    header: tuple[int, int, int]
    ink: tuple[int, int, int]
    font: int
    unit: int  # base row height in pixels; everything scales with it


@dataclass
class Scene:
    """A screen and its state; :meth:`tap` and :meth:`type_text` are the only ways the state changes."""

    size: tuple[int, int]
    app_box: Box
    theme: Theme
    title: str
    elements: list[Element]
    menu_open: bool = False
    focused: int | None = None
    version: int = 0  # bumped on every change, so a renderer draws once per state
    submitted: dict[str, str] | None = None

    def visible(self) -> list[Element]:
        """Elements in drawing order (the last one is on top)."""
        if self.menu_open:
            return [e for e in self.elements if e.layer == 0] + [e for e in self.elements if e.layer == 1]
        return [e for e in self.elements if e.layer == 0]

    def hit(self, x: float, y: float) -> Element | None:
        """The topmost element under a point; with the drawer open the rest of the screen is a scrim."""
        for element in reversed(self.visible()):
            if element.contains(x, y) and (not self.menu_open or element.layer == 1 or _is_menu(element)):
                return element
        return None

    def tap(self, x: float, y: float) -> Element | None:
        """Tap a point: returns the element hit. Tapping the scrim closes the drawer."""
        element = self.hit(x, y)
        before = self._looks()
        if element is None:
            if self.menu_open:
                self.menu_open = False
            self.focused = None
        else:
            element.taps += 1
            self.focused = element.id if element.kind == "field" else None
            if element.kind == "menu_button":
                self.menu_open = not self.menu_open
            elif element.kind == "toggle":
                element.on = not element.on
            elif element.kind == "button":
                self.submitted = {e.label: e.text for e in self.elements if e.kind == "field"}
        if self._looks() != before:
            self.version += 1
        return element

    def _looks(self) -> tuple[object, ...]:
        """Everything a tap can change that shows on screen (a tap that changes none needs no redraw)."""
        return self.menu_open, self.focused, tuple((e.on, e.taps > 0) for e in self.elements)

    def type_text(self, text: str) -> bool:
        """Set the focused field's text (``input_text`` replaces, as on Android); False without focus."""
        if self.focused is None:
            return False
        self.elements[self.focused].text = text
        self.version += 1
        return True

    def back(self) -> None:
        """Navigate back: close the drawer, else drop the focus."""
        if self.menu_open:
            self.menu_open = False
        else:
            self.focused = None
        self.version += 1

    def of_kind(self, kind: str, layer: int | None = None) -> list[Element]:
        return [e for e in self.elements if e.kind == kind and (layer is None or e.layer == layer)]

    def state(self) -> dict[str, object]:
        """The app state as plain data (for ``info``)."""
        focused = self.elements[self.focused].label if self.focused is not None else None
        return {
            "menu_open": self.menu_open,
            "focused_field": focused,
            "toggles": {e.label: e.on for e in self.of_kind("toggle")},
            "fields": {e.label: e.text for e in self.of_kind("field")},
            "tapped": [e.phrase for e in self.elements if e.taps],
            "submitted": dict(self.submitted) if self.submitted is not None else None,
        }


def _is_menu(element: Element) -> bool:
    return element.kind == "menu_button"


# ------------------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class Step:
    """The next thing the oracle does: tap ``target`` or type ``text`` (into ``target``)."""

    target: Element
    text: str | None
    instruction: str


@dataclass(frozen=True)
class Task:
    """A goal on the app's state. ``kind``: click | toggle | menu_toggle | type | form."""

    kind: str
    instruction: str
    target_id: int
    want_on: bool = True
    text: str = ""
    submit_id: int | None = None

    @property
    def multi_step(self) -> bool:
        return self.kind in ("menu_toggle", "type", "form")

    def done(self, scene: Scene) -> bool:
        target = scene.elements[self.target_id]
        if self.kind == "click":
            return target.taps > 0
        if self.kind in ("toggle", "menu_toggle"):
            return target.on == self.want_on
        if self.kind == "type":
            return target.text == self.text
        submitted = scene.submitted or {}
        return scene.elements[self.submit_id or 0].taps > 0 and submitted.get(target.label) == self.text

    def next_step(self, scene: Scene) -> Step:
        """What to do now, read from the layout and the state (the scripted solver)."""
        target = scene.elements[self.target_id]
        tap = f"{_CLICK_VERBS[0]} {{}}."
        if self.kind == "menu_toggle" and not scene.menu_open:
            menu = scene.of_kind("menu_button")[0]
            return Step(menu, None, tap.format(menu.phrase))
        if self.kind in ("type", "form"):
            if target.text != self.text:
                if scene.focused != target.id:
                    return Step(target, None, tap.format(target.phrase))
                return Step(target, self.text, f"Type {self.text} into {target.phrase}.")
            if self.kind == "form":
                submit = scene.elements[self.submit_id or 0]
                return Step(submit, None, tap.format(submit.phrase))
        return Step(target, None, tap.format(target.phrase))


def make_task(rng: np.random.Generator, scene: Scene, kind: str, difficulty: int) -> Task:
    """A task the scene supports: ``click`` and ``icon`` are one tap, ``multi`` needs two or three actions."""
    if kind == "any":
        kind = ("click", "multi")[int(rng.integers(2))]
    if kind in ("click", "icon"):
        kinds = ("icon",) if kind == "icon" else ("button", "icon", "list_item", "toggle")
        pool = [e for e in scene.elements if e.layer == 0 and e.kind in kinds]
        target = pool[int(rng.integers(len(pool)))]
        if target.kind == "toggle":
            word = "on" if not target.on else "off"
            return Task("toggle", f"Turn {word} {target.label}.", target.id, want_on=not target.on)
        verb = _CLICK_VERBS[int(rng.integers(len(_CLICK_VERBS)))]
        return Task("click", f"{verb} {target.phrase}.", target.id)
    choices = ["menu_toggle", "type"] + (["form"] if difficulty >= 2 else [])
    multi = choices[int(rng.integers(len(choices)))]
    if multi == "menu_toggle":
        toggles = scene.of_kind("toggle", layer=1)
        target = toggles[int(rng.integers(len(toggles)))]
        word = "on" if not target.on else "off"
        return Task(multi, f"Open the menu and turn {word} {target.label}.", target.id, want_on=not target.on)
    fields = scene.of_kind("field")
    target = fields[int(rng.integers(len(fields)))]
    text = TYPE_WORDS[int(rng.integers(len(TYPE_WORDS)))]
    if multi == "type":
        return Task(multi, f"Type {text} into the {target.label} field.", target.id, text=text)
    buttons = scene.of_kind("button")
    submit = buttons[int(rng.integers(len(buttons)))]
    instruction = f"Enter {text} in the {target.label} field, then press {submit.phrase}."
    return Task(multi, instruction, target.id, text=text, submit_id=submit.id)


# ----------------------------------------------------------------------------------------------- layout

# Section heights in units (a unit is the theme's base row height).
_HEIGHTS = {"icon": 1.5, "button": 1.3, "field": 2.0, "toggle": 1.25, "list_item": 1.3}
_GAP = 0.3


@dataclass
class _Builder:
    """Collects elements with running ids."""

    elements: list[Element] = field(default_factory=list)

    def add(self, kind: str, box: Box, **kwargs: object) -> Element:
        element = Element(len(self.elements), kind, box, **kwargs)  # type: ignore[arg-type]
        self.elements.append(element)
        return element


def _pick(rng: np.random.Generator, pool: tuple[str, ...] | list[str], count: int) -> list[str]:
    """``count`` distinct entries in random order."""
    return [pool[int(i)] for i in rng.permutation(len(pool))[:count]]


def _counts(rng: np.random.Generator, difficulty: int) -> dict[str, int]:
    """How many of each element a screen of this difficulty holds."""
    lo_hi = {
        0: {"icon": (3, 4), "button": (2, 3), "field": (1, 1), "list_item": (0, 2), "toggle": (0, 1)},
        1: {"icon": (4, 6), "button": (3, 5), "field": (1, 2), "list_item": (2, 3), "toggle": (0, 2)},
        2: {"icon": (5, 8), "button": (5, 7), "field": (2, 3), "list_item": (3, 5), "toggle": (1, 3)},
    }[difficulty]
    return {kind: int(rng.integers(lo, hi + 1)) for kind, (lo, hi) in lo_hi.items()}


def _app_box(rng: np.random.Generator, size: tuple[int, int], random_size: bool) -> Box:
    """The app window inside the canvas: the whole canvas, or a phone/desktop-shaped window in it."""
    width, height = size
    if not random_size or rng.random() < 0.3:
        return (0, 0, width - 1, height - 1)
    aspect = float(rng.choice([rng.uniform(0.5, 0.62), rng.uniform(1.3, 1.8), rng.uniform(0.7, 1.0)]))
    fit_w = min(width, height * aspect)
    scale = rng.uniform(0.65, 1.0)
    app_w = max(int(fit_w * scale), min(width, 240))
    app_h = min(height, max(int(app_w / aspect), 240))
    x0 = int(rng.integers(0, width - app_w + 1))
    y0 = int(rng.integers(0, height - app_h + 1))
    return (x0, y0, x0 + app_w - 1, y0 + app_h - 1)


def _theme(rng: np.random.Generator, app_box: Box, rows: float) -> Theme:
    """Light or dark colours, a font, and a unit that makes ``rows`` units fit the window."""
    app_w, app_h = app_box[2] - app_box[0], app_box[3] - app_box[1]
    unit = min(rng.uniform(0.08, 0.12) * min(app_w, app_h * 0.75), app_h / rows, 80)
    dark = rng.random() < 0.3
    shade = int(rng.integers(20, 45)) if dark else int(rng.integers(235, 256))
    names = list(COLORS)
    header = COLORS[names[int(rng.integers(len(names)))]]
    return Theme(
        backdrop=tuple(int(v) for v in rng.integers(60, 200, 3)),  # type: ignore[arg-type]
        background=(shade, shade, min(255, shade + int(rng.integers(0, 10)))),
        header=header,
        ink=(235, 235, 235) if dark else (30, 30, 30),
        font=(0, 2, 4)[int(rng.integers(3))],  # Hershey simplex, duplex, complex
        unit=max(int(unit), 16),
    )


def _place_icons(
    rng: np.random.Generator, b: _Builder, colors: list[str], n: int, x0: int, y: int, w: int, u: int
):
    size = int(u * rng.uniform(0.9, 1.25))
    gap = max(int(u * 0.35), (w - n * size) // max(n, 1) if rng.random() < 0.5 else int(u * 0.35))
    n = min(n, max(1, (w + gap) // (size + gap)))
    pairs = list(itertools.product(colors, SHAPES))
    for k, i in enumerate(rng.permutation(len(pairs))[:n]):
        color, shape = pairs[int(i)]
        left = x0 + k * (size + gap)
        b.add("icon", (left, y, left + size, y + size), color=color, shape=shape, label=f"{color} {shape}")


def _place_buttons(
    rng: np.random.Generator,
    b: _Builder,
    colors: list[str],
    words: list[str],
    x0: int,
    y: int,
    w: int,
    u: int,
    font: int,
):
    height = int(u * rng.uniform(0.9, 1.1))
    pad, gap = int(u * 0.5), int(u * 0.3)
    widths = [text_width(word, font, font_scale(u)) + 2 * pad for word in words]
    row = []
    for word, width in zip(words, widths, strict=True):
        if sum(wd for _, wd in row) + gap * len(row) + width > w:
            break
        row.append((word, width))
    used = sum(wd for _, wd in row) + gap * (len(row) - 1)
    left = x0 + int(rng.integers(0, max(w - used, 0) + 1)) if rng.random() < 0.5 else x0
    for word, width in row:
        color = colors[int(rng.integers(len(colors)))]
        b.add("button", (left, y, left + width, y + height), label=word, color=color)
        left += width + gap
    return len(row)


def _rows(sections: list[str], button_rows: int) -> float:
    """Height of a screen in units: header, sections and the gaps between them."""
    heights = {**_HEIGHTS, "buttons": _HEIGHTS["button"] * button_rows}
    return 1.5 + _GAP * (len(sections) + 1) + sum(heights[s] for s in sections) + 0.3


def _fit(sections: list[str], app_h: int, button_rows: int) -> list[str]:
    """Drop optional sections (list items, toggles, extra fields) until a 20-pixel unit fits."""
    sections = list(sections)
    for optional in ("list_item", "toggle", "field"):
        while _rows(sections, button_rows) * 20 > app_h and sections.count(optional) > (optional == "field"):
            sections.remove(optional)
    return sections


def generate_scene(
    rng: np.random.Generator, size: tuple[int, int], difficulty: int, random_size: bool
) -> Scene:
    """A random app screen on a canvas of ``size`` (width, height); ``difficulty`` is 0, 1 or 2."""
    app = _app_box(rng, size, random_size)
    counts = _counts(rng, difficulty)
    button_rows = 1 + counts["button"] // 4
    sections = ["icon", "buttons", *["field"] * counts["field"], *["toggle"] * counts["toggle"]]
    sections += ["list_item"] * counts["list_item"]
    sections = _fit(sections, app[3] - app[1], button_rows)
    theme = _theme(rng, app, _rows(sections, button_rows))
    u, font = theme.unit, theme.font
    palette = list(COLORS)
    colors = _pick(rng, palette, 4) if difficulty >= 2 else palette
    words = _pick(rng, BUTTON_WORDS, counts["button"] + counts["list_item"])
    b = _Builder()
    margin = max(int(u * 0.4), 6)
    x0, x1 = app[0] + margin, app[2] - margin
    header_h = int(u * 1.5)
    b.add(
        "menu_button", (app[0] + margin // 2, app[1] + u // 4, app[0] + margin // 2 + u, app[1] + u // 4 + u)
    )
    order = [sections[int(i)] for i in rng.permutation(len(sections))]
    field_words = iter(_pick(rng, FIELD_WORDS, counts["field"]))
    toggle_words = _pick(rng, TOGGLE_WORDS, sections.count("toggle") + int(rng.integers(3, 6)))
    y = app[1] + header_h + int(u * _GAP)
    word_i = 0
    for section in order:
        if section == "icon":
            _place_icons(rng, b, colors, counts["icon"], x0, y, x1 - x0, u)
            y += int(u * _HEIGHTS["icon"])
        elif section == "buttons":
            remaining = words[: counts["button"]]
            for _ in range(button_rows):
                placed = (
                    _place_buttons(rng, b, colors, remaining, x0, y, x1 - x0, u, font) if remaining else 0
                )
                remaining = remaining[placed:]
                y += int(u * _HEIGHTS["button"])
        elif section == "field":
            label_h = int(u * 0.7)
            width = x1 - x0 if rng.random() < 0.6 else int((x1 - x0) * rng.uniform(0.5, 0.9))
            box = (x0, y + label_h, x0 + width, y + label_h + int(u * 1.05))
            b.add("field", box, label=next(field_words), label_at=(x0, y + int(label_h * 0.8)))
            y += int(u * _HEIGHTS["field"])
        elif section == "toggle":
            label = toggle_words.pop()
            tw, th = int(u * 1.4), int(u * 0.8)
            box = (x1 - tw, y + (u - th) // 2, x1, y + (u - th) // 2 + th)
            b.add("toggle", box, label=label, on=bool(rng.random() < 0.5), label_at=(x0, y + int(u * 0.7)))
            y += int(u * _HEIGHTS["toggle"])
        else:
            word = words[counts["button"] + word_i]
            word_i += 1
            b.add("list_item", (x0, y, x1, y + int(u * 1.15)), label=word, color=colors[0])
            y += int(u * _HEIGHTS["list_item"])
        y += int(u * _GAP)
    _add_drawer(rng, b, app, header_h, toggle_words, u)
    title = TITLES[int(rng.integers(len(TITLES)))]
    return Scene(size=size, app_box=app, theme=theme, title=title, elements=b.elements)


def _add_drawer(
    rng: np.random.Generator, b: _Builder, app: Box, header_h: int, words: list[str], u: int
) -> None:
    """The hidden menu drawer (layer 1): a panel under the header holding a toggle per remaining word."""
    width = int((app[2] - app[0]) * rng.uniform(0.6, 0.8))
    top = app[1] + header_h
    rows = min(len(words), max(1, int((app[3] - top - u) // (u * _HEIGHTS["toggle"]))))
    panel_h = min(app[3] - top, int(u * (_HEIGHTS["toggle"] * rows + 0.6)))
    b.add("panel", (app[0], top, app[0] + width, top + panel_h), layer=1)
    tw, th = int(u * 1.4), int(u * 0.8)
    for i, word in enumerate(words[:rows]):
        y = top + int(u * (0.3 + _HEIGHTS["toggle"] * i))
        x1 = app[0] + width - int(u * 0.4)
        box = (x1 - tw, y + (u - th) // 2, x1, y + (u - th) // 2 + th)
        b.add("toggle", box, label=word, layer=1, on=bool(rng.random() < 0.5),
              label_at=(app[0] + int(u * 0.4), y + int(u * 0.7)))  # fmt: skip
