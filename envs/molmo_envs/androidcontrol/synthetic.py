"""Small synthetic AndroidControl episodes: drawn screens, real accessibility forests, every action type.

Each screen is a phone-like layout (status bar, a list of rows each holding a button and an icon, an app
dock) drawn with PIL; its accessibility forest describes the same boxes, including nested containers (so
the smallest-node rule matters), an invisible node (which scoring must ignore) and an uncovered strip at
the bottom (where a click falls back to the +/-10 px box).
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from typing import Any

from molmo_agent.actions import ANDROID_CONTROL_TYPES, ActionType

from .episodes import Element, Episode
from .writer import build_forest

APPS = ("Clock", "Settings", "Gmail", "Maps", "Calendar")
LABELS = ("Wi-Fi", "Bluetooth", "Alarms", "Inbox", "Search", "Add event", "Display", "Sound")
ACTION_TYPES = tuple(t.value for t in ActionType if t in ANDROID_CONTROL_TYPES)
"""AndroidControl's eight types in the schema's order (every episode cycles through all of them)."""
SIZES: tuple[tuple[int, int], ...] = ((1080, 2400), (720, 1600))


def _layout(size: tuple[int, int], rng: random.Random, app: str) -> tuple[list[Element], list[Element]]:
    """Visible elements (outermost first) and hidden ones of one screen."""
    w, h = size
    pkg = f"com.example.{app.lower()}"
    elements = [
        Element((0, 0, w, round(0.92 * h)), class_name="android.widget.FrameLayout", package_name=pkg),
        Element((0, 0, w, round(0.04 * h)), text="12:00", class_name="android.widget.TextView"),
        Element(
            (0, round(0.1 * h), w, round(0.7 * h)), class_name="android.widget.LinearLayout", package_name=pkg
        ),
    ]
    row_h = round(0.12 * h)
    for row, label in enumerate(rng.sample(LABELS, 4)):
        top = round(0.1 * h) + row * (row_h + round(0.02 * h))
        elements.append(Element((0, top, w, top + row_h), class_name="android.widget.LinearLayout"))
        elements.append(
            Element(
                (round(0.05 * w), top + row_h // 10, round(0.6 * w), top + row_h - row_h // 10),
                text=label,
                class_name="android.widget.Button",
                package_name=pkg,
                clickable=True,
            )
        )
        elements.append(
            Element(
                (round(0.75 * w), top + row_h // 5, round(0.9 * w), top + row_h - row_h // 5),
                content_description=f"{label} icon",
                class_name="android.widget.ImageView",
                package_name=pkg,
                clickable=True,
            )
        )
    dock_top, icon_w = round(0.76 * h), w // len(APPS)
    for i, name in enumerate(APPS):
        label = {"text": name} if i % 2 else {"content_description": name.upper()}
        elements.append(
            Element(
                (
                    i * icon_w + icon_w // 10,
                    dock_top,
                    (i + 1) * icon_w - icon_w // 10,
                    dock_top + icon_w * 4 // 5,
                ),
                class_name="android.widget.TextView",
                package_name="com.android.launcher",
                clickable=True,
                **label,
            )
        )
    hidden = [Element((round(0.1 * w), round(0.12 * h), round(0.2 * w), round(0.15 * h)), text="hidden")]
    return elements, hidden


def _draw(size: tuple[int, int], elements: Sequence[Element], rng: random.Random) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (245, 245, 245))
    draw = ImageDraw.Draw(image)
    for element in elements[1:]:
        colour = tuple(rng.randrange(60, 230) for _ in range(3))
        draw.rectangle(element.bounds, fill=colour, outline=(30, 30, 30), width=2)
        label = element.text or element.content_description
        if label:
            draw.text((element.bounds[0] + 8, element.bounds[1] + 8), label, fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _inside(box: Sequence[float], rng: random.Random) -> tuple[int, int]:
    left, top, right, bottom = box
    return rng.randint(int(left) + 2, int(right) - 2), rng.randint(int(top) + 2, int(bottom) - 2)


def _action(
    kind: str, elements: Sequence[Element], size: tuple[int, int], rng: random.Random, app: str
) -> tuple[dict[str, Any], str]:
    """One AndroidControl action JSON on this screen, and its step instruction."""
    buttons = [e for e in elements if e.class_name == "android.widget.Button"]
    if kind in ("click", "long_press"):
        if rng.random() < 0.25:  # the uncovered strip at the bottom: no node contains the point
            x = rng.randint(size[0] // 20, size[0] - size[0] // 20)
            y = rng.randint(round(0.94 * size[1]), round(0.99 * size[1]))
            return {"action_type": kind, "x": x, "y": y}, f"{kind.replace('_', ' ')} the bottom bar"
        target = rng.choice(buttons)
        x, y = _inside(target.bounds, rng)
        verb = "Click" if kind == "click" else "Long press"
        return {"action_type": kind, "x": x, "y": y}, f"{verb} on {target.text}"
    if kind == "scroll":
        direction = rng.choice(("up", "down", "left", "right"))
        return {"action_type": "scroll", "direction": direction}, f"Scroll {direction}"
    if kind == "input_text":
        text = rng.choice(("Hello world", "7:30 am", "pizza near me", "Meeting with Ana"))
        return {"action_type": "input_text", "text": text}, f"Type {text}"
    if kind == "open_app":
        return {"action_type": "open_app", "app_name": app}, f"Open the {app} app"
    words = {"navigate_home": "Go to the home screen", "navigate_back": "Go back", "wait": "Wait"}
    return {"action_type": kind}, words[kind]


def make_episode(episode_id: int, size: tuple[int, int], seed: int | None = None) -> Episode:
    """One episode holding every AndroidControl action type once, in a random order."""
    rng = random.Random(episode_id if seed is None else seed)
    app = rng.choice(APPS)
    kinds = list(ACTION_TYPES)
    rng.shuffle(kinds)
    screens, trees, actions, steps = [], [], [], []
    for index in range(len(kinds) + 1):
        elements, hidden = _layout(size, rng, app)
        screens.append(_draw(size, elements, rng))
        trees.append(build_forest(elements, hidden=hidden))
        if index < len(kinds):
            action, step = _action(kinds[index], elements, size, rng, app)
            actions.append(action)
            steps.append(step)
    return Episode(
        episode_id=episode_id,
        goal=f"In {app}, do task number {episode_id}: check the settings & report back.",
        screenshots=tuple(screens),
        screenshot_sizes=(size,) * len(screens),
        accessibility_trees=tuple(trees),
        actions=tuple(actions),
        step_instructions=tuple(steps),
    )


def make_episodes(
    count: int = 4, *, first_id: int = 100, sizes: Sequence[tuple[int, int]] = SIZES
) -> list[Episode]:
    """``count`` episodes with ids ``first_id, first_id + 1, ...``, screen sizes cycling through ``sizes``."""
    return [make_episode(first_id + i, tuple(sizes[i % len(sizes)])) for i in range(count)]
