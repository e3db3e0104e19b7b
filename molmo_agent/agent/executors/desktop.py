"""Carry out actions on the real desktop: screenshots with ``mss``, mouse and keyboard with ``pyautogui``.

Both come with the ``gui`` extra and are imported when a :class:`DesktopExecutor` is built, never at
module import: importing pyautogui on Linux opens the X display, and ``import molmo_agent.agent`` must
work on a headless machine.

Coordinates: actions arrive in pixels of the screenshot the model saw. A monitor is a box in the pointer's
coordinate space (``left``, ``top``, ``width``, ``height``, as ``mss`` reports it: X11 pixels on Linux,
points on macOS, DPI-aware pixels on Windows, the same space pyautogui moves in). The screenshot may have
more pixels than that box (HiDPI: a Retina screenshot is twice the size in points), so a pixel maps to
``left + x * width / screenshot_width``, the same for ``y``; :func:`screen_transform` builds that mapping as
a :class:`~molmo_agent.geometry.ResizeTransform`.

Safety: pyautogui's fail-safe (moving the mouse into a screen corner aborts) is forced on and never turned
off; when it fires, the run stops (:class:`StopRun`, the loop's ``quit``). Targets that land exactly on a
fail-safe corner are moved one pixel inwards, so the agent cannot trip the fail-safe itself. A target
outside the captured area is refused (:class:`OffScreenError`, recorded on the step), never clamped to its
edge: the edges are where taskbars, close buttons and other windows live.

Region: ``DesktopConfig.region`` (a box in pointer coordinates) or ``DesktopConfig.window`` (a window by
title, X11 with xdotool) limits both what the model sees and where it may act: the screenshot is that box
alone, and its pixels map back to the screen through the same transform.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ...actions import Action, ActionType
from ...geometry import ResizeTransform, Size
from ..records import Observation, Outcome
from .base import ExecutionError, Executor, StopRun

logger = logging.getLogger(__name__)

GUI_EXTRA_HINT = "pip install 'molmo-agent[gui]'"
NO_DISPLAY_HINT = "no X display: set DISPLAY, or run under Xvfb (xvfb-run ...)"

PYAUTOGUI_TEXT = frozenset(set(string.ascii_letters + string.digits + string.punctuation + " \n\t") - {"<"})
"""Characters ``pyautogui.write`` types correctly. Anything else it skips silently (non-ASCII), and ``<``
it types as ``>`` on X11 (it presses Shift with the key whose plain symbol is ``<``). It also assumes a US
layout; set ``DesktopConfig.xdotool_for_all_text`` on other X11 layouts."""

KEY_ALIASES = {"control": "ctrl", "cmd": "command", "super": "win", "meta": "win", "windows": "win"}
"""Key names models and people write, mapped to pyautogui's names."""

TEXT_TOOLS = ("xdotool", "clipboard")


class DesktopUnavailableError(ExecutionError):
    """No screen to drive: no display, or the ``gui`` extra (pyautogui, mss) is not installed."""


class OffScreenError(ExecutionError):
    """A target lies outside the captured area (the screen, region or window the model saw)."""


@dataclass(frozen=True)
class MonitorBox:
    """A monitor in the pointer's coordinate space (mss's ``left``/``top``/``width``/``height``)."""

    left: int
    top: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"a monitor must have a positive size, got {self.width}x{self.height}")

    @classmethod
    def from_mss(cls, monitor: dict[str, Any]) -> MonitorBox:
        return cls(int(monitor["left"]), int(monitor["top"]), int(monitor["width"]), int(monitor["height"]))

    @property
    def size(self) -> Size:
        return self.width, self.height


def screen_transform(screenshot_size: Size, monitor: MonitorBox) -> ResizeTransform:
    """Screenshot pixels -> pointer coordinates: scale by monitor size / screenshot size, shift by its origin.

    The transform's "transformed image" is the monitor placed at its offset in the pointer's space.
    """
    scale = ResizeTransform.resize(screenshot_size, monitor.size)
    return ResizeTransform(
        scale.original_size, monitor.size, scale.scale_x, scale.scale_y, monitor.left, monitor.top
    )


def to_pointer(
    x: float,
    y: float,
    transform: ResizeTransform,
    monitor: MonitorBox,
    avoid: Collection[tuple[int, int]] = (),
) -> tuple[int, int]:
    """Where pyautogui should act for screenshot pixel ``(x, y)``: whole pixels, inside the monitor.

    A point outside the screenshot (``0 <= x <= width``, the same for ``y``) raises :class:`OffScreenError`;
    inside it, rounding may still reach one past the last pixel, which is brought back. A point in ``avoid``
    (the fail-safe corners) moves one pixel towards the monitor's centre.
    """
    width, height = transform.original_size
    if not (0 <= x <= width and 0 <= y <= height):
        raise OffScreenError(
            f"target ({x:g}, {y:g}) is outside the captured area ({width}x{height} screenshot of "
            f"{monitor.width}x{monitor.height} at {monitor.left},{monitor.top}): refused, not clamped"
        )
    sx, sy = transform.to_transformed(x, y)
    right, bottom = monitor.left + monitor.width - 1, monitor.top + monitor.height - 1
    px = min(max(round(sx), monitor.left), right)
    py = min(max(round(sy), monitor.top), bottom)
    if (px, py) in avoid:
        px += 1 if px < monitor.left + monitor.width / 2 else -1
        py += 1 if py < monitor.top + monitor.height / 2 else -1
    return px, py


def region_box(region: tuple[int, int, int, int], screen: MonitorBox) -> MonitorBox:
    """A user's ``(x, y, width, height)`` as a box, which must lie on the screen (all monitors together)."""
    box = MonitorBox(*(int(v) for v in region))
    inside = (
        box.left >= screen.left
        and box.top >= screen.top
        and box.left + box.width <= screen.left + screen.width
        and box.top + box.height <= screen.top + screen.height
    )
    if not inside:
        raise DesktopUnavailableError(
            f"region {box.left},{box.top},{box.width},{box.height} is not inside the screen "
            f"({screen.width}x{screen.height} at {screen.left},{screen.top})"
        )
    return box


def clip_box(box: MonitorBox, screen: MonitorBox) -> MonitorBox | None:
    """The part of ``box`` on the screen (a window may hang off its edge), or None when nothing is."""
    left, top = max(box.left, screen.left), max(box.top, screen.top)
    right = min(box.left + box.width, screen.left + screen.width)
    bottom = min(box.top + box.height, screen.top + screen.height)
    if right <= left or bottom <= top:
        return None
    return MonitorBox(left, top, right - left, bottom - top)


def find_window(title: str, run: Callable[[list[str]], str] | None = None) -> MonitorBox:
    """The screen box of the one visible window whose title contains ``title`` (X11, through xdotool).

    Several windows with different boxes are an error rather than a guess: acting in the wrong window is
    what restricting the agent is meant to prevent.
    """
    if run is None:
        _check_window_support()
        run = _xdotool
    found = run(["search", "--onlyvisible", "--name", re.escape(title)]).split()
    boxes: dict[MonitorBox, str] = {}
    for window_id in found:
        geometry = dict(
            line.split("=", 1)
            for line in run(["getwindowgeometry", "--shell", window_id]).splitlines()
            if "=" in line
        )
        box = MonitorBox(
            int(geometry["X"]), int(geometry["Y"]), int(geometry["WIDTH"]), int(geometry["HEIGHT"])
        )
        boxes.setdefault(box, run(["getwindowname", window_id]).strip())
    if not boxes:
        raise DesktopUnavailableError(f"no visible window's title contains {title!r}")
    if len(boxes) > 1:
        names = ", ".join(repr(name) for name in boxes.values())
        raise DesktopUnavailableError(
            f"{len(boxes)} windows' titles contain {title!r} ({names}); give more of the title"
        )
    return next(iter(boxes))


def _check_window_support() -> None:
    if not sys.platform.startswith("linux"):
        raise DesktopUnavailableError(
            f"choosing a window by title is supported on X11 only (this is {sys.platform}); use a region "
            "instead (--region X,Y,W,H / DesktopConfig.region)"
        )
    if shutil.which("xdotool") is None:
        raise DesktopUnavailableError(
            "choosing a window by title needs xdotool (apt-get install xdotool), or use a region instead "
            "(--region X,Y,W,H)"
        )


def _xdotool(arguments: list[str]) -> str:
    """xdotool's output; ``search`` finding nothing (exit 1, no output) is an empty answer, not an error."""
    try:
        result = subprocess.run(
            ["xdotool", *arguments], capture_output=True, text=True, timeout=10, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DesktopUnavailableError(f"xdotool {arguments[0]} did not answer within 10 s") from exc
    if result.returncode != 0 and (arguments[0] != "search" or result.stderr.strip()):
        raise DesktopUnavailableError(f"xdotool {arguments[0]} failed: {result.stderr.strip()[-300:]}")
    return result.stdout


def pick_monitor(monitors: list[dict[str, Any]], index: int | None) -> MonitorBox:
    """``monitors`` as mss lists them (0: all together, 1..: each); ``None`` picks the primary one."""
    if index is None:
        marked = [m for m in monitors[1:] if m.get("is_primary")]
        chosen = marked[0] if marked else monitors[1 if len(monitors) > 1 else 0]
        return MonitorBox.from_mss(chosen)
    if not 0 <= index < len(monitors):
        raise DesktopUnavailableError(
            f"monitor {index} does not exist: this desktop has monitors 1..{len(monitors) - 1} "
            "(0 is all of them together)"
        )
    return MonitorBox.from_mss(monitors[index])


@dataclass(frozen=True)
class DesktopConfig:
    """How the desktop executor acts; validated up front.

    Attributes:
        monitor: mss monitor index (0: all monitors as one image; None: the primary monitor).
        settle_s: Pause after each action, so the screen has changed before the next screenshot.
        long_press_s: How long ``long_press`` holds the left button.
        drag_s: How long a drag's movement takes (instant drags are missed by some toolkits).
        scroll_clicks: Wheel clicks per ``scroll`` when the action carries no ``amount``.
        wait_s: How long ``wait`` waits.
        type_interval_s: Pause between characters typed by pyautogui.
        back_keys: The ``navigate_back`` hotkey (browser and file-manager "back").
        home_keys: The ``navigate_home`` hotkey: the Super/Windows key, which opens the launcher or Start
            menu on GNOME, KDE and Windows (pyautogui sends Command for it on macOS).
        text_tools: Tried in order for text pyautogui cannot type: ``xdotool`` (``xdotool type``) and
            ``clipboard`` (``xclip`` then Ctrl+V; it replaces the clipboard's content). Both need X11.
        xdotool_for_all_text: Type all text with xdotool, which follows the keyboard layout (pyautogui
            assumes a US layout).
        region: ``(x, y, width, height)`` in pointer coordinates: the model sees only this box and may act
            only inside it (instead of the monitor).
        window: A window title (or part of one): like ``region``, with the window's box, looked up again
            before each screenshot so the area follows the window. X11 with xdotool only.
    """

    monitor: int | None = None
    settle_s: float = 0.3
    long_press_s: float = 0.8
    drag_s: float = 0.5
    scroll_clicks: int = 3
    wait_s: float = 1.0
    type_interval_s: float = 0.0
    back_keys: tuple[str, ...] = ("alt", "left")
    home_keys: tuple[str, ...] = ("win",)
    text_tools: tuple[str, ...] = TEXT_TOOLS
    xdotool_for_all_text: bool = False
    region: tuple[int, int, int, int] | None = None
    window: str | None = None

    def __post_init__(self) -> None:
        if self.region is not None and self.window is not None:
            raise ValueError("give a region or a window, not both")
        if self.region is not None and (len(self.region) != 4 or min(self.region[2:]) < 1):
            raise ValueError(
                f"region must be (x, y, width, height) with a positive size, got {self.region!r}"
            )
        if self.window is not None and not self.window.strip():
            raise ValueError("window must name (part of) a window title")
        for name in ("settle_s", "long_press_s", "drag_s", "wait_s", "type_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)!r}")
        if self.scroll_clicks < 1:
            raise ValueError(f"scroll_clicks must be at least 1, got {self.scroll_clicks!r}")
        if self.monitor is not None and self.monitor < 0:
            raise ValueError(f"monitor must be an mss monitor index >= 0 (or None), got {self.monitor!r}")
        unknown = set(self.text_tools) - set(TEXT_TOOLS)
        if unknown:
            raise ValueError(f"unknown text_tools {sorted(unknown)}; known: {', '.join(TEXT_TOOLS)}")
        if not self.back_keys or not self.home_keys:
            raise ValueError("back_keys and home_keys must name at least one key")


def _import_gui() -> tuple[Any, Any]:
    """pyautogui and mss, or an error that says what to install or which display is missing."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise DesktopUnavailableError(NO_DISPLAY_HINT)
    try:
        import mss
        import pyautogui
    except ImportError as exc:
        raise DesktopUnavailableError(
            f"the desktop executor needs pyautogui and mss ({exc}): {GUI_EXTRA_HINT}"
        ) from exc
    except Exception as exc:  # python-xlib connects at import: a wrong DISPLAY or authority ends here
        display = os.environ.get("DISPLAY")
        hint = " (python-xlib needs one: touch ~/.Xauthority)" if "authority" in str(exc) else ""
        raise DesktopUnavailableError(
            f"cannot connect to X display {display!r}: {exc}{hint}; {NO_DISPLAY_HINT}"
        ) from exc
    return pyautogui, mss


def _force_failsafe(pyautogui: Any) -> None:
    if not pyautogui.FAILSAFE:
        logger.warning("pyautogui.FAILSAFE was off; the desktop executor turns it back on")
        pyautogui.FAILSAFE = True


class DesktopExecutor(Executor):
    """Drives this machine's mouse and keyboard; every action type of the schema except ``open_app``.

    Example (needs a display; ``model`` from ``ma.load_model()``)::

        from molmo_agent.agent import ConfirmingExecutor, PointPolicy, run_agent
        from molmo_agent.agent.executors.desktop import DesktopExecutor
        with ConfirmingExecutor(DesktopExecutor()) as executor:
            run_agent("click the Save button", PointPolicy(model), executor)

    Raises:
        DesktopUnavailableError: no display, or the ``gui`` extra is missing (on construction).
    """

    def __init__(self, config: DesktopConfig | None = None) -> None:
        self.config = config or DesktopConfig()
        self._gui, mss = _import_gui()
        _force_failsafe(self._gui)
        grabber_class = getattr(mss, "MSS", None) or mss.mss  # mss >= 10.2 renamed the class
        self._grabber = grabber_class()
        try:
            self.monitor = pick_monitor(self._grabber.monitors, self.config.monitor)
            self.screen = MonitorBox.from_mss(self._grabber.monitors[0])
            self.area = self._capture_area()
        except DesktopUnavailableError:
            self._grabber.close()
            raise
        self._transform: ResizeTransform | None = None
        self._handlers: dict[ActionType, Callable[[Action], str]] = {
            ActionType.CLICK: lambda a: self._click(a, "click", clicks=1),
            ActionType.DOUBLE_CLICK: lambda a: self._click(a, "double click", clicks=2),
            ActionType.RIGHT_CLICK: lambda a: self._click(a, "right click", clicks=1, button="right"),
            ActionType.LONG_PRESS: self._long_press,
            ActionType.DRAG: self._drag,
            ActionType.SCROLL: self._scroll,
            ActionType.INPUT_TEXT: self._type,
            ActionType.TYPE: self._type,
            ActionType.HOTKEY: lambda a: self._hotkey(a.keys or ()),
            ActionType.NAVIGATE_BACK: lambda a: self._hotkey(self.config.back_keys),
            ActionType.NAVIGATE_HOME: lambda a: self._hotkey(self.config.home_keys),
            ActionType.WAIT: self._wait,
            ActionType.OPEN_APP: self._open_app,
            ActionType.DONE: lambda a: "done: nothing to do",
        }
        logger.debug("desktop executor on monitor %s, pyautogui size %s", self.monitor, self._gui.size())

    # -- Executor ----------------------------------------------------------------------------------------

    def observe(self) -> Observation:
        started = time.perf_counter()
        if self.config.window is not None:  # the window may have moved since the last look
            self.area = self._capture_area()
        box = self.area
        region = {"left": box.left, "top": box.top, "width": box.width, "height": box.height}
        shot = self._grabber.grab(region)
        image = Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")
        self._transform = screen_transform(image.size, box)
        capture_ms = (time.perf_counter() - started) * 1000
        return Observation(image, capture_ms=capture_ms, extra={"monitor": region})

    def _capture_area(self) -> MonitorBox:
        """The monitor, the configured region, or the window's box as it is now (its on-screen part)."""
        if self.config.region is not None:
            return region_box(self.config.region, self.screen)
        if self.config.window is not None:
            box = find_window(self.config.window)
            visible = clip_box(box, self.screen)
            if visible is None:
                raise DesktopUnavailableError(f"the window {self.config.window!r} is off the screen")
            return visible
        return self.monitor

    def execute(self, action: Action) -> Outcome:
        _force_failsafe(self._gui)
        try:
            note = self._handlers[action.type](action)
        except self._gui.FailSafeException as exc:
            raise StopRun("pyautogui fail-safe: the mouse was moved into a screen corner") from exc
        except self._gui.PyAutoGUIException as exc:
            raise ExecutionError(f"pyautogui could not {action.type.value}: {exc}") from exc
        if action.type is not ActionType.DONE:
            time.sleep(self.config.settle_s)
        return Outcome(executed=True, note=note)

    def close(self) -> None:
        self._grabber.close()

    # -- coordinates --------------------------------------------------------------------------------------

    def to_screen(self, x: float, y: float) -> tuple[int, int]:
        """Screenshot pixel -> pointer position (the last screenshot's size; one is taken if none yet)."""
        if self._transform is None:
            self.observe()
        assert self._transform is not None
        return to_pointer(x, y, self._transform, self.area, self._failsafe_points())

    def _failsafe_points(self) -> set[tuple[int, int]]:
        return {(int(px), int(py)) for px, py in self._gui.FAILSAFE_POINTS}

    def _target(self, x: float | None, y: float | None) -> tuple[int, int]:
        if x is None or y is None:
            raise ExecutionError("this action needs a point (x, y)")
        return self.to_screen(x, y)

    # -- actions (each returns the outcome's note) --------------------------------------------------------

    def _click(self, action: Action, what: str, *, clicks: int, button: str = "left") -> str:
        px, py = self._target(action.x, action.y)
        self._gui.click(px, py, clicks=clicks, interval=0.05, button=button)
        return f"{what} at {px},{py}"

    def _long_press(self, action: Action) -> str:
        px, py = self._target(action.x, action.y)
        self._gui.mouseDown(px, py, button="left")
        try:
            time.sleep(self.config.long_press_s)
        finally:
            self._gui.mouseUp(px, py, button="left")
        return f"long press at {px},{py} for {self.config.long_press_s:g} s"

    def _drag(self, action: Action) -> str:
        start = self._target(action.x, action.y)
        end = self._target(action.x2, action.y2)
        self._gui.moveTo(*start)
        self._gui.dragTo(*end, duration=self.config.drag_s, button="left")
        return f"drag from {start[0]},{start[1]} to {end[0]},{end[1]}"

    def _scroll(self, action: Action) -> str:
        """Wheel clicks where the pointer is (or at the action's point); up and right are positive.

        ``scroll down`` shows what is further down, as a mouse wheel turned towards the user does.
        """
        clicks = action.amount or self.config.scroll_clicks
        at = self._target(action.x, action.y) if action.point is not None else (None, None)
        direction = action.direction
        if direction in ("up", "down"):
            self._gui.scroll(clicks if direction == "up" else -clicks, *at)
        else:
            self._gui.hscroll(clicks if direction == "right" else -clicks, *at)
        where = "" if action.point is None else f" at {at[0]},{at[1]}"
        return f"scroll {direction} {clicks} clicks{where}"

    def _type(self, action: Action) -> str:
        text = action.text or ""
        prefix = ""
        if action.point is not None:  # ``type`` with a point: focus the field first
            prefix = self._click(action, "click", clicks=1) + ", then "
        if self.config.xdotool_for_all_text or not set(text) <= PYAUTOGUI_TEXT:
            return prefix + self._type_with_tools(text)
        self._gui.write(text, interval=self.config.type_interval_s)
        return prefix + f"typed {len(text)} characters"

    def _type_with_tools(self, text: str) -> str:
        """Text pyautogui cannot type, through xdotool or the clipboard; an error rather than a lost char."""
        for tool in self.config.text_tools:
            if tool == "xdotool" and shutil.which("xdotool"):
                _run_tool(["xdotool", "type", "--delay", "12", "--", text], timeout=10 + len(text) * 0.05)
                return f"typed {len(text)} characters with xdotool"
            if tool == "clipboard" and shutil.which("xclip"):
                _run_tool(["xclip", "-selection", "clipboard", "-in"], stdin=text, timeout=10)
                self._gui.hotkey("ctrl", "v")
                return f"pasted {len(text)} characters from the clipboard (xclip)"
        odd = "".join(sorted(set(text) - PYAUTOGUI_TEXT))
        raise ExecutionError(
            f"cannot type {text!r}: pyautogui cannot type {odd!r}, and none of the tools for it is available "
            f"(tried: {', '.join(self.config.text_tools) or 'none'}); on X11 install xdotool or xclip "
            "(apt-get install xdotool xclip)"
        )

    def _hotkey(self, keys: tuple[str, ...]) -> str:
        names = [KEY_ALIASES.get(k.strip().lower(), k.strip().lower()) for k in keys]
        unknown = [k for k in names if not self._gui.isValidKey(k)]
        if unknown:
            raise ExecutionError(
                f"unknown key(s) {unknown} in hotkey {'+'.join(keys)}; use pyautogui key names such as "
                "ctrl, alt, shift, win, command, enter, esc, tab, left, f5, a"
            )
        self._gui.hotkey(*names)
        return "pressed " + "+".join(names)

    def _wait(self, action: Action) -> str:
        time.sleep(self.config.wait_s)
        return f"waited {self.config.wait_s:g} s"

    def _open_app(self, action: Action) -> str:
        raise ExecutionError(
            f"open_app ({action.app_name!r}) is not supported on the desktop: there is no portable way to "
            "launch an app by name; click its icon or use a hotkey instead"
        )


def _run_tool(command: list[str], *, timeout: float, stdin: str | None = None) -> None:
    """Run a helper; its stderr goes to a file because xclip stays in the background holding the pipes."""
    with tempfile.TemporaryFile() as errors:
        try:
            result = subprocess.run(
                command,
                input=None if stdin is None else stdin.encode(),
                stdout=subprocess.DEVNULL,
                stderr=errors,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ExecutionError(f"{command[0]} did not finish within {timeout:g} s") from exc
        if result.returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()[-300:]
            raise ExecutionError(f"{command[0]} failed (exit {result.returncode}): {message}")
