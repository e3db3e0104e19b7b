"""Headless Chromium for tests that check a generated page really renders (CI installs Debian's chromium)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MISSING = f"{CHROMIUM} is not installed (CI installs chromium): the page's rendering is not checked"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    """Run headless Chromium with a throw-away profile and no network side traffic."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}",
        "--window-size=1280,900",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
