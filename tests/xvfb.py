"""Start a private Xvfb X server for GUI tests, on the first free display number from 90 up."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

FIRST_DISPLAY = 90
LAST_DISPLAY = 189
SCREEN = (1280, 800)
START_TIMEOUT_S = 10.0


class XvfbUnavailable(RuntimeError):
    """Xvfb is not installed (Debian: ``apt-get install xvfb``)."""


@dataclass
class Xvfb:
    """A running Xvfb; ``display`` is the value for ``DISPLAY`` (e.g. ``":90"``)."""

    number: int
    process: subprocess.Popen
    xauthority: Path
    """An empty authority file: python-xlib (under pyautogui) refuses to connect when none exists."""

    @property
    def display(self) -> str:
        return f":{self.number}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.xauthority.parent, ignore_errors=True)


def _socket_path(number: int) -> Path:
    return Path(f"/tmp/.X11-unix/X{number}")


def _accepts_connections(number: int) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(_socket_path(number)))
        except OSError:
            return False
    return True


def _free_numbers():
    for number in range(FIRST_DISPLAY, LAST_DISPLAY + 1):
        if not Path(f"/tmp/.X{number}-lock").exists() and not _socket_path(number).exists():
            yield number


def start_xvfb(size: tuple[int, int] = SCREEN) -> Xvfb:
    """Start ``Xvfb :N -screen 0 WxHx24 -nolisten tcp`` and wait until it accepts connections.

    Raises:
        XvfbUnavailable: the ``Xvfb`` binary is not installed.
        RuntimeError: no display number could be started.
    """
    binary = shutil.which("Xvfb")
    if binary is None:
        raise XvfbUnavailable("Xvfb is not installed (Debian/Ubuntu: apt-get install xvfb)")
    errors = []
    for number in _free_numbers():
        command = [binary, f":{number}", "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"]
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and process.poll() is None:
                if _accepts_connections(number):
                    xauthority = Path(tempfile.mkdtemp(prefix=f"xvfb{number}-")) / "Xauthority"
                    xauthority.touch()
                    return Xvfb(number, process, xauthority)
                time.sleep(0.05)
            if process.poll() is None:
                process.kill()
            process.wait(5)
            log.seek(0)
            errors.append(f":{number}: {log.read().decode(errors='replace')[-300:]}")
        if len(errors) >= 3:
            break
    raise RuntimeError("could not start Xvfb:\n" + "\n".join(errors))


def environment_for(server: Xvfb) -> dict[str, str]:
    """The variables a process needs to talk to ``server`` (and nothing else: no Wayland, no session)."""
    env = dict(os.environ, DISPLAY=server.display, XDG_SESSION_TYPE="x11", XAUTHORITY=str(server.xauthority))
    env.pop("WAYLAND_DISPLAY", None)
    return env
