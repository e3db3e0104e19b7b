"""Restricting the desktop executor to a region or a window, and refusing targets outside what it captured.

Pure helpers run anywhere; the rest drives the logging Tk app on a real Xvfb (skipped without Xvfb).
"""

from __future__ import annotations

import time

import pytest
from PIL import Image
from xvfb import SCREEN

from molmo_agent.actions import Action
from molmo_agent.agent import AgentConfig, Decision, Policy, run_agent
from molmo_agent.agent.executors.desktop import (
    DesktopConfig,
    DesktopExecutor,
    DesktopUnavailableError,
    MonitorBox,
    OffScreenError,
    clip_box,
    find_window,
    region_box,
)

APP_TITLE = "molmo-agent test app"
QUIET_S = 0.5


class FixedPolicy(Policy):
    """A caller's own policy (no model): always the same action, in pixels of the screenshot it saw."""

    def __init__(self, action: Action) -> None:
        self.action = action

    def decide(self, observation, goal, step_index, history) -> Decision:
        return Decision(self.action, prompt=goal, raw_text="")


def fake_xdotool(windows: dict[str, tuple[str, tuple[int, int, int, int]]]):
    """xdotool answers for ``{window_id: (name, (x, y, w, h))}``: search matches by substring of the name."""

    def run(arguments: list[str]) -> str:
        if arguments[0] == "search":
            wanted = arguments[-1].replace("\\", "")
            return "\n".join(wid for wid, (name, _) in windows.items() if wanted in name)
        if arguments[0] == "getwindowgeometry":
            x, y, w, h = windows[arguments[-1]][1]
            return f"WINDOW={arguments[-1]}\nX={x}\nY={y}\nWIDTH={w}\nHEIGHT={h}\nSCREEN=0\n"
        return windows[arguments[-1]][0] + "\n"

    return run


# -- helpers, no display ------------------------------------------------------------------------------------


def test_a_region_must_lie_on_the_screen():
    screen = MonitorBox(0, 0, 1280, 800)
    assert region_box((100, 50, 400, 300), screen) == MonitorBox(100, 50, 400, 300)
    with pytest.raises(DesktopUnavailableError, match="not inside the screen"):
        region_box((1000, 600, 400, 300), screen)


def test_a_window_hanging_off_the_screen_is_clipped_to_its_visible_part():
    screen = MonitorBox(0, 0, 1280, 800)
    assert clip_box(MonitorBox(-100, 700, 400, 300), screen) == MonitorBox(0, 700, 300, 100)
    assert clip_box(MonitorBox(2000, 0, 100, 100), screen) is None


def test_find_window_by_part_of_its_title():
    run = fake_xdotool({"11": ("Editor - notes.txt", (10, 20, 640, 480)), "12": ("Terminal", (0, 0, 50, 50))})
    assert find_window("notes.txt", run) == MonitorBox(10, 20, 640, 480)
    with pytest.raises(DesktopUnavailableError, match="no visible window"):
        find_window("Browser", run)


def test_several_different_windows_matching_is_an_error_not_a_guess():
    run = fake_xdotool(
        {"1": ("Doc A - Editor", (0, 0, 300, 200)), "2": ("Doc B - Editor", (300, 0, 300, 200))}
    )
    with pytest.raises(DesktopUnavailableError, match=r"2 windows.*'Doc A - Editor'.*give more of the title"):
        find_window("Editor", run)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"region": (0, 0, 0, 10)},
        {"region": (0, 0, 10)},
        {"window": "  "},
        {"region": (0, 0, 9, 9), "window": "x"},
    ],
)
def test_region_and_window_settings_are_validated_up_front(kwargs):
    with pytest.raises(ValueError):
        DesktopConfig(**kwargs)


# -- on a real X server --------------------------------------------------------------------------------------


def test_a_region_is_all_the_model_sees_and_clicks_map_back_to_the_screen(gui_app, xserver):
    save = gui_app.widgets["Save"]
    area = (save["x"] - 20, save["y"] - 10, 300, 120)
    with DesktopExecutor(DesktopConfig(settle_s=0.1, region=area)) as executor:
        observation = executor.observe()
        assert observation.size == (300, 120)
        x, y = gui_app.center("Save")
        outcome = executor.execute(Action(type="click", x=x - area[0], y=y - area[1]))
    assert outcome.executed and outcome.note == f"click at {x},{y}"
    assert gui_app.wait_for(lambda app: [e["widget"] for e in app.events("click")] == ["Save"])


def test_a_target_outside_the_region_is_refused_on_the_step_and_nothing_is_clicked(gui_app, xserver):
    save = gui_app.widgets["Save"]
    area = (save["x"] - 20, save["y"] - 10, 300, 120)
    outside = Action(type="click", x=gui_app.center("Cancel")[0] - area[0], y=10)  # Cancel: right of it
    with DesktopExecutor(DesktopConfig(settle_s=0.1, region=area)) as executor:
        result = run_agent("click Cancel", FixedPolicy(outside), executor, AgentConfig(max_steps=2))
        with pytest.raises(OffScreenError):
            executor.execute(Action(type="drag", x=10, y=10, x2=400, y2=10))
    assert [step.error for step in result.steps] == [result.steps[0].error] * 2
    assert "outside the captured area" in result.steps[0].error and "refused" in result.steps[0].error
    assert result.steps[0].outcome is None
    time.sleep(QUIET_S)
    assert gui_app.events() == []


def test_an_off_screen_target_on_the_whole_monitor_is_refused(gui_app, xserver):
    with DesktopExecutor(DesktopConfig(settle_s=0.1)) as executor:
        executor.observe()
        with pytest.raises(OffScreenError):
            executor.execute(Action(type="click", x=SCREEN[0] + 5, y=SCREEN[1] // 2))
    time.sleep(QUIET_S)
    assert gui_app.events() == []


def test_a_window_by_title_is_the_area(gui_app, xserver):
    from gui_app import WINDOW_POSITION, WINDOW_SIZE

    assert find_window("test app") == MonitorBox(*WINDOW_POSITION, *WINDOW_SIZE)
    with DesktopExecutor(DesktopConfig(settle_s=0.1, window=APP_TITLE)) as executor:
        assert executor.observe().size == WINDOW_SIZE
        x, y = gui_app.center("Open")
        executor.execute(Action(type="click", x=x - WINDOW_POSITION[0], y=y - WINDOW_POSITION[1]))
        with pytest.raises(OffScreenError):
            executor.execute(Action(type="click", x=WINDOW_SIZE[0] + 10, y=5))
    assert gui_app.wait_for(lambda app: [e["widget"] for e in app.events("click")] == ["Open"])


def test_a_window_that_is_not_there_is_a_clear_error(xserver):
    with pytest.raises(DesktopUnavailableError, match="no visible window's title contains 'No such app'"):
        DesktopExecutor(DesktopConfig(window="No such app"))


def test_cli_gui_with_a_region_dry_runs_on_that_box(xserver, gui_app, tmp_path, capsys):
    import json

    from molmo_agent.cli import main

    record = tmp_path / "run"
    argv = ["gui", "click the Save button", "--dry-run", "--max-steps", "1", "--region", "40,60,900,620"]
    assert main([*argv, "--record", str(record)]) == 0
    assert "stopped:" in capsys.readouterr().out
    step = json.loads((record / "steps.jsonl").read_text().splitlines()[0])
    with Image.open(record / step["screenshot"]) as shown:
        assert shown.size == (900, 620)
    time.sleep(QUIET_S)
    assert gui_app.events() == []
