"""The desktop executor on a real X server (Xvfb) driving a real Tk app, through the agent loop.

The model is the real tiny Molmo2 with its answer text scripted from the app's known layout, so the whole
path runs: screenshot -> prompt -> model -> parser -> policy -> executor -> X events -> the app's log.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time

import pytest
from conftest_gui import GuiApp
from xvfb import SCREEN

from molmo_agent.actions import Action, ActionType
from molmo_agent.agent import (
    ActionPolicy,
    AgentConfig,
    ConfirmingExecutor,
    DryRunExecutor,
    ExecutionError,
    PointPolicy,
    run_agent,
)
from molmo_agent.agent.executors.base import StopRun
from molmo_agent.agent.executors.desktop import (
    GUI_EXTRA_HINT,
    NO_DISPLAY_HINT,
    DesktopConfig,
    DesktopExecutor,
    MonitorBox,
    OffScreenError,
    pick_monitor,
    screen_transform,
    to_pointer,
)

FAST = DesktopConfig(settle_s=0.15, long_press_s=0.5, drag_s=0.3, wait_s=0.05, scroll_clicks=2)
QUIET_S = 0.5
"""How long to watch for stray events when a test expects the app to receive nothing."""


# -- fixtures and helpers ----------------------------------------------------------------------------------


@pytest.fixture
def desktop(xserver):
    with DesktopExecutor(FAST) as executor:
        yield executor


def answers(backend, *texts: str) -> None:
    """The model's answers in order; the last one repeats."""
    sequence = itertools.chain(texts, itertools.repeat(texts[-1]))
    backend.script = lambda request: next(sequence)


def percent(x: float, y: float) -> str:
    """Screen pixels as Molmo's action-string percent of the (full-screen) screenshot."""
    return f"{x / SCREEN[0] * 100:.2f}, {y / SCREEN[1] * 100:.2f}"


def per_mille(x: float, y: float) -> str:
    return f"{round(x / SCREEN[0] * 1000):03d} {round(y / SCREEN[1] * 1000):03d}"


def pad_point(app: GuiApp, fx: float, fy: float) -> tuple[int, int]:
    """A point inside the scroll/click pad, as fractions of its box."""
    box = app.widgets["Pad"]
    return round(box["x"] + box["w"] * fx), round(box["y"] + box["h"] * fy)


def near(point, expected, tolerance: int = 1) -> bool:
    return abs(point[0] - expected[0]) <= tolerance and abs(point[1] - expected[1]) <= tolerance


def assert_all_executed(result) -> None:
    for step in result.steps:
        if step.action is not None and step.action.type is not ActionType.DONE:
            assert step.error is None, step.error
            assert step.outcome is not None and step.outcome.executed, step


def pyautogui_failsafe() -> bool:
    import pyautogui

    return pyautogui.FAILSAFE


# -- coordinate mapping (no display needed) ----------------------------------------------------------------


def test_hidpi_screenshot_maps_to_logical_points():
    transform = screen_transform((2560, 1600), MonitorBox(0, 0, 1280, 800))
    assert transform.to_transformed(200, 100) == (100, 50)
    assert to_pointer(2559, 1599, transform, MonitorBox(0, 0, 1280, 800)) == (1280 - 1, 800 - 1)


def test_offset_monitor_adds_its_origin_after_scaling():
    monitor = MonitorBox(1280, 120, 1920, 1080)
    transform = screen_transform((3840, 2160), monitor)
    assert to_pointer(200, 100, transform, monitor) == (1280 + 100, 120 + 50)
    assert to_pointer(3839, 0, transform, monitor) == (1280 + 1920 - 1, 120)
    left_of_primary = MonitorBox(-1920, 0, 1920, 1080)  # macOS/Windows: a monitor left of the primary
    transform = screen_transform((1920, 1080), left_of_primary)
    assert to_pointer(960, 540, transform, left_of_primary) == (-960, 540)


def test_unscaled_screen_is_the_identity_and_off_screen_targets_are_refused_not_clamped():
    monitor = MonitorBox(0, 0, 1280, 800)
    transform = screen_transform((1280, 800), monitor)
    assert to_pointer(640.4, 399.6, transform, monitor) == (640, 400)
    assert to_pointer(1280, 800, transform, monitor) == (1279, 799)  # the far edge itself, rounded in
    for x, y in ((5000, 5000), (1280.5, 10), (-1, 10), (10, -0.5)):
        with pytest.raises(OffScreenError, match=r"outside the captured area.*refused, not clamped"):
            to_pointer(x, y, transform, monitor)


def test_failsafe_corners_are_avoided_by_one_pixel():
    monitor = MonitorBox(0, 0, 1280, 800)
    corners = {(0, 0), (0, 799), (1279, 0), (1279, 799)}
    transform = screen_transform((1280, 800), monitor)
    assert to_pointer(0, 0, transform, monitor, corners) == (1, 1)
    assert to_pointer(1279, 799, transform, monitor, corners) == (1278, 798)
    assert to_pointer(0, 400, transform, monitor, corners) == (0, 400)


def test_monitor_choice_primary_by_default_and_by_index():
    monitors = [
        {"left": 0, "top": 0, "width": 3200, "height": 1080},
        {"left": 0, "top": 0, "width": 1280, "height": 1024},
        {"left": 1280, "top": 0, "width": 1920, "height": 1080, "is_primary": True},
    ]
    assert pick_monitor(monitors, None) == MonitorBox(1280, 0, 1920, 1080)
    assert pick_monitor(monitors[:2], None) == MonitorBox(0, 0, 1280, 1024)
    assert pick_monitor(monitors, 0) == MonitorBox(0, 0, 3200, 1080)
    with pytest.raises(ExecutionError, match="monitor 3 does not exist"):
        pick_monitor(monitors, 3)


@pytest.mark.parametrize(
    "kwargs", [{"settle_s": -1}, {"scroll_clicks": 0}, {"monitor": -1}, {"text_tools": ("keyboard",)}]
)
def test_config_is_validated_up_front(kwargs):
    with pytest.raises(ValueError):
        DesktopConfig(**kwargs)


# -- without a display -------------------------------------------------------------------------------------


def _python(code: str, **env_changes: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_the_agent_package_imports_without_a_display():
    code = (
        "import sys, molmo_agent.agent, molmo_agent.agent.executors.desktop\n"
        "assert 'pyautogui' not in sys.modules and 'mss' not in sys.modules\n"
    )
    result = _python(code, DISPLAY=None, WAYLAND_DISPLAY=None)
    assert result.returncode == 0, result.stderr


def test_no_display_is_a_clear_error():
    code = (
        "from molmo_agent.agent.executors.desktop import DesktopExecutor, DesktopUnavailableError\n"
        "try:\n    DesktopExecutor()\nexcept DesktopUnavailableError as exc:\n    print(exc)\n"
    )
    result = _python(code, DISPLAY=None)
    assert result.returncode == 0, result.stderr
    assert NO_DISPLAY_HINT in result.stdout


def test_unreachable_display_is_a_clear_error():
    code = (
        "from molmo_agent.agent.executors.desktop import DesktopExecutor, DesktopUnavailableError\n"
        "try:\n    DesktopExecutor()\nexcept DesktopUnavailableError as exc:\n    print(exc)\n"
    )
    result = _python(code, DISPLAY=":59999")
    assert result.returncode == 0, result.stderr
    assert "cannot connect to X display ':59999'" in result.stdout and "Xvfb" in result.stdout


def test_missing_gui_extra_names_the_extra():
    code = (
        "import sys\nsys.modules['pyautogui'] = None\n"
        "from molmo_agent.agent.executors.desktop import DesktopExecutor, DesktopUnavailableError\n"
        "try:\n    DesktopExecutor()\nexcept DesktopUnavailableError as exc:\n    print(exc)\n"
    )
    result = _python(code, DISPLAY=":0")
    assert result.returncode == 0, result.stderr
    assert GUI_EXTRA_HINT in result.stdout


# -- the agent loop on the real desktop --------------------------------------------------------------------


def test_action_policy_clicks_the_button_and_types(gui_app, desktop, model, backend):
    answers(
        backend,
        f"Click({percent(*gui_app.center('Save'))})",
        f"Click({percent(*gui_app.center('Entry'))})",
        "Type hello",
        "Done",
    )
    result = run_agent("save, then type hello", ActionPolicy(model), desktop, AgentConfig(max_steps=6))
    assert result.stop_reason == "done"
    assert result.steps[0].screenshot.size == SCREEN
    assert_all_executed(result)
    assert gui_app.wait_for(lambda app: app.last_text() == "hello")
    assert [e["widget"] for e in gui_app.events("click")] == ["Save"]
    assert pyautogui_failsafe()


def test_point_policy_clicks_save_and_types_into_the_entry(gui_app, desktop, model, backend):
    def point_at(request) -> str:
        name = "Save" if "Save" in request.prompt else "Entry"
        return f'<points coords="1 1 {per_mille(*gui_app.center(name))}">{name}</points>'

    backend.script = point_at
    goal = "click the Save button; type hello into the entry"
    result = run_agent(goal, PointPolicy(model), desktop, AgentConfig(max_steps=5))
    assert result.stop_reason == "done"
    assert [s.action.type for s in result.steps] == [ActionType.CLICK, ActionType.TYPE, ActionType.DONE]
    assert_all_executed(result)
    assert gui_app.wait_for(lambda app: app.last_text() == "hello")
    assert [e["widget"] for e in gui_app.events("click")] == ["Save"]


def test_non_ascii_text_arrives_exactly(gui_app, desktop, model, backend):
    entry = gui_app.center("Entry")
    backend.script = lambda request: f'<points coords="1 1 {per_mille(*entry)}">entry</points>'
    result = run_agent("type héllo wörld into the entry", PointPolicy(model), desktop)
    assert result.stop_reason == "done"
    assert_all_executed(result)
    assert "xdotool" in result.steps[0].outcome.note
    assert gui_app.wait_for(lambda app: app.last_text() == "héllo wörld")
    values = [e["value"] for e in gui_app.events("text")]
    assert all("héllo wörld".startswith(v) for v in values), values  # nothing dropped on the way


def test_text_pyautogui_would_garble_goes_through_xdotool(gui_app, desktop):
    x, y = gui_app.center("Entry")
    outcome = desktop.execute(Action(type="type", text="a<b> & ✓", x=x, y=y))
    assert "xdotool" in outcome.note
    assert gui_app.wait_for(lambda app: app.last_text() == "a<b> & ✓")


def test_non_ascii_text_through_the_clipboard(gui_app, xserver):
    config = DesktopConfig(settle_s=0.15, text_tools=("clipboard",))
    with DesktopExecutor(config) as executor:
        executor.execute(Action(type="click", x=gui_app.center("Entry")[0], y=gui_app.center("Entry")[1]))
        outcome = executor.execute(Action(type="input_text", text="naïve café ✓"))
    assert "clipboard" in outcome.note
    assert gui_app.wait_for(lambda app: app.last_text() == "naïve café ✓")


def test_non_ascii_text_without_a_tool_is_an_error_not_a_loss(gui_app, xserver):
    config = DesktopConfig(settle_s=0.0, text_tools=())
    with DesktopExecutor(config) as executor:
        executor.execute(Action(type="click", x=gui_app.center("Entry")[0], y=gui_app.center("Entry")[1]))
        with pytest.raises(ExecutionError, match=r"cannot type 'héllo'.*xdotool"):
            executor.execute(Action(type="input_text", text="héllo"))
    time.sleep(QUIET_S)
    assert gui_app.events("text") == []


def test_scroll_directions_reach_the_app(gui_app, desktop, model, backend):
    answers(
        backend,
        f"Click({percent(*pad_point(gui_app, 0.5, 0.5))})",
        "Scroll up",
        "Scroll down",
        "Scroll left",
        "Scroll right",
        "Done",
    )
    result = run_agent("scroll around", ActionPolicy(model), desktop, AgentConfig(max_steps=8))
    assert result.stop_reason == "done"
    assert_all_executed(result)
    expected = ["up", "up", "down", "down", "left", "left", "right", "right"]  # FAST: 2 clicks each
    assert gui_app.wait_for(lambda app: len(app.events("scroll")) >= len(expected))
    assert [e["direction"] for e in gui_app.events("scroll")] == expected


def test_scroll_at_a_point_and_with_an_amount(gui_app, desktop):
    x, y = pad_point(gui_app, 0.3, 0.3)
    desktop.execute(Action(type="scroll", direction="down", amount=1, x=x, y=y))
    assert gui_app.wait_for(lambda app: len(app.events("scroll")) >= 1)
    time.sleep(0.2)
    assert [e["direction"] for e in gui_app.events("scroll")] == ["down"]


def test_double_right_click_drag_and_long_press(gui_app, desktop, model, backend):
    a, b, c, d = (pad_point(gui_app, *f) for f in ((0.2, 0.3), (0.8, 0.3), (0.2, 0.7), (0.7, 0.8)))
    answers(
        backend,
        f"Double Click({percent(*a)})",
        f"Right Click({percent(*b)})",
        f"Drag({percent(*c)}, {percent(*d)})",
        f"Long Press({percent(*b)})",
        "Done",
    )
    result = run_agent("exercise the pad", ActionPolicy(model), desktop, AgentConfig(max_steps=6))
    assert result.stop_reason == "done"
    assert_all_executed(result)
    assert gui_app.wait_for(lambda app: len(app.events("release")) >= 4)
    assert [near(e["at"], a) for e in gui_app.events("double")] == [True]
    assert [near(e["at"], b) for e in gui_app.events("right")] == [True]
    (drag,) = gui_app.events("drag")
    assert near(drag["from"], c) and near(drag["to"], d)
    press, release = gui_app.events("press")[-1], gui_app.events("release")[-1]
    assert near(press["at"], b) and near(release["at"], b)
    assert release["t"] - press["t"] >= FAST.long_press_s * 0.9


def test_hotkeys_wait_and_navigation(gui_app, desktop):
    x, y = gui_app.center("Entry")
    desktop.execute(Action(type="type", text="abc", x=x, y=y))
    outcome = desktop.execute(Action(type="hotkey", keys=["Control", "h"]))  # Tk's emacs-style backspace
    assert outcome.executed and outcome.note == "pressed ctrl+h"
    assert gui_app.wait_for(lambda app: app.last_text() == "ab")
    assert desktop.execute(Action(type="navigate_back")).note == "pressed alt+left"
    assert desktop.execute(Action(type="navigate_home")).note == "pressed win"
    assert desktop.execute(Action(type="wait")).note == "waited 0.05 s"
    with pytest.raises(ExecutionError, match="unknown key"):
        desktop.execute(Action(type="hotkey", keys=["ctrl", "nosuchkey"]))


def test_open_app_is_refused_and_the_loop_goes_on(gui_app, desktop, model, backend):
    answers(backend, "Open App Settings", "Done")
    result = run_agent("open settings", ActionPolicy(model), desktop)
    assert result.stop_reason == "done"
    assert "open_app" in result.steps[0].error and "not supported on the desktop" in result.steps[0].error


def test_observation_is_the_screen(gui_app, desktop):
    observation = desktop.observe()
    assert observation.size == SCREEN and observation.screenshot.mode == "RGB"
    assert observation.capture_ms > 0
    x, y = pad_point(gui_app, 0.5, 0.5)
    assert observation.screenshot.getpixel((x, y)) == (0xDD, 0xDD, 0xEE)  # the pad's background


# -- safety: dry run, confirm mode, limits, fail-safe ------------------------------------------------------


def test_dry_run_touches_nothing_and_the_step_limit_stops(gui_app, desktop, model, backend):
    answers(
        backend,
        f"Click({percent(*gui_app.center('Save'))})",
        f"Click({percent(*gui_app.center('Open'))})",
        "Type hello",
    )
    dry = DryRunExecutor(desktop)
    result = run_agent("save", ActionPolicy(model), dry, AgentConfig(max_steps=3))
    assert result.stop_reason == "step_limit"
    assert len(dry.actions) == 3 and not any(s.outcome.executed for s in result.steps)
    time.sleep(QUIET_S)
    assert gui_app.events() == []
    assert pyautogui_failsafe()


def test_stuck_detector_stops_a_repeating_dry_run(gui_app, desktop, model, backend):
    answers(backend, f"Click({percent(*gui_app.center('Save'))})")
    result = run_agent("save", ActionPolicy(model), DryRunExecutor(desktop), AgentConfig(max_steps=10))
    assert result.stop_reason == "stuck"
    assert len(result.steps) == 3
    time.sleep(QUIET_S)
    assert gui_app.events() == []


def test_confirm_mode_no_executes_nothing(gui_app, desktop, model, backend):
    answers(backend, f"Click({percent(*gui_app.center('Save'))})", "Type hello", "Done")
    asked = []
    confirming = ConfirmingExecutor(desktop, ask=lambda action: asked.append(action) or "n")
    result = run_agent("save", ActionPolicy(model), confirming)
    assert result.stop_reason == "done"
    assert [a.type for a in asked] == [ActionType.CLICK, ActionType.INPUT_TEXT]
    assert not any(s.outcome.executed for s in result.steps if s.outcome)
    time.sleep(QUIET_S)
    assert gui_app.events() == []


def test_confirm_mode_quit_stops_the_run(gui_app, desktop, model, backend):
    answers(backend, f"Click({percent(*gui_app.center('Save'))})")
    result = run_agent("save", ActionPolicy(model), ConfirmingExecutor(desktop, ask=lambda action: "q"))
    assert result.stop_reason == "quit"
    assert len(result.steps) == 1
    time.sleep(QUIET_S)
    assert gui_app.events() == []
    assert pyautogui_failsafe()


def test_failsafe_is_forced_on_and_a_corner_stops_the_run(gui_app, xserver, model, backend):
    import pyautogui

    pyautogui.FAILSAFE = False
    with DesktopExecutor(FAST) as executor:
        assert pyautogui.FAILSAFE is True
        pyautogui.moveTo(0, 0)  # the person's emergency stop: the mouse into a corner
        try:
            answers(backend, f"Click({percent(*gui_app.center('Save'))})")
            result = run_agent("save", ActionPolicy(model), executor)
            with pytest.raises(StopRun):
                executor.execute(Action(type="click", x=100, y=100))
        finally:  # out of the corner for the next tests, without turning the fail-safe off
            subprocess.run(["xdotool", "mousemove", "640", "400"], check=True, timeout=10)
    assert result.stop_reason == "quit" and "fail-safe" in result.steps[0].error
    assert gui_app.events("click") == []


def test_a_click_into_a_corner_does_not_trip_the_failsafe(xserver, desktop):
    outcome = desktop.execute(Action(type="click", x=0, y=0))
    assert outcome.note == "click at 1,1"
    desktop.execute(Action(type="wait"))  # the next call still works: the fail-safe did not fire
    assert pyautogui_failsafe()


def test_cli_gui_dry_run_on_the_real_screen_records_and_touches_nothing(xserver, gui_app, tmp_path, capsys):
    """`molmo-agent gui --dry-run` with the embedded model: real capture, nothing reaches the app."""
    from molmo_agent.cli import main

    record = tmp_path / "run"
    code = main(["gui", "click the Save button", "--dry-run", "--max-steps", "2", "--record", str(record)])
    assert code == 0
    assert "stopped:" in capsys.readouterr().out
    assert (record / "index.html").is_file()
    time.sleep(QUIET_S)
    assert gui_app.events() == []
    assert pyautogui_failsafe()
