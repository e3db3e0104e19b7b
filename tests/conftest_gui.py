"""Fixtures for tests on a real X server: a private Xvfb for the session and the logging Tk app per test.

``tests/conftest.py`` registers the fixtures once for the session (one X server: pyautogui binds to the first
display it opens). The GUI tests are skipped only when Xvfb is not installed; CI installs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from xvfb import SCREEN, XvfbUnavailable, environment_for, start_xvfb

GUI_APP = Path(__file__).with_name("gui_app.py")
APP_START_TIMEOUT_S = 15.0


@pytest.fixture(scope="session")
def xserver():
    """A private Xvfb (1280x800x24) for the whole session; DISPLAY points at it while it runs."""
    try:
        server = start_xvfb(SCREEN)
    except XvfbUnavailable as exc:
        pytest.skip(f"GUI tests need a real X server: {exc}")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment_for(server).items():
            if os.environ.get(name) != value:
                patch.setenv(name, value)
        patch.delenv("WAYLAND_DISPLAY", raising=False)
        try:
            yield server
        finally:
            server.stop()


def _complete_lines(log: Path) -> list[str]:
    """The lines the app has finished writing (a line still being written has no newline yet)."""
    return log.read_text(encoding="utf-8").split("\n")[:-1]


class GuiApp:
    """The running test app: its widgets' screen boxes and the events it logged."""

    def __init__(self, process: subprocess.Popen, log: Path, ready: dict[str, Any]) -> None:
        self.process = process
        self.log = log
        self.widgets: dict[str, dict[str, int]] = ready["widgets"]

    def center(self, name: str) -> tuple[int, int]:
        box = self.widgets[name]
        return box["x"] + box["w"] // 2, box["y"] + box["h"] // 2

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Everything logged after start-up (optionally only one kind of event)."""
        lines = [json.loads(line) for line in _complete_lines(self.log) if line]
        return [e for e in lines if e["event"] != "ready" and (kind is None or e["event"] == kind)]

    def last_text(self) -> str | None:
        texts = self.events("text")
        return texts[-1]["value"] if texts else None

    def wait_for(self, done: Callable[[GuiApp], bool], timeout: float = 5.0) -> bool:
        """Poll until ``done(app)``; X events arrive asynchronously, so assertions wait a little."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self):
                return True
            time.sleep(0.05)
        return done(self)


@pytest.fixture
def gui_app(xserver, tmp_path):
    """A fresh instance of tests/gui_app.py, started and laid out, stopped after the test."""
    log = tmp_path / "events.jsonl"
    log.touch()
    process = subprocess.Popen([sys.executable, str(GUI_APP), str(log)], env=environment_for(xserver))
    try:
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        ready = None
        while ready is None:
            if process.poll() is not None:
                raise RuntimeError(f"the test app exited with {process.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test app did not report its layout within {APP_START_TIMEOUT_S} s")
            lines = _complete_lines(log)
            ready = json.loads(lines[0]) if lines else None
            time.sleep(0.05)
        yield GuiApp(process, log, ready)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
