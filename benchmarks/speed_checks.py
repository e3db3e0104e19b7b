"""Speeds the tests used to assert with wall-clock bounds, printed instead (tests must not time things).

    python benchmarks/speed_checks.py

- parsing 1 MB of adversarial junk (each parser must stay linear: well under a second per call),
- SyntheticGui-v0 env steps/s at 540x960 (resets included, half oracle / half random clicks),
- TabletopPointing-v0 reset+step/s at 320x240,
- rejecting a decompression-bomb PNG header (must not decode pixels).
"""

from __future__ import annotations

import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def parsing() -> None:
    from test_parsing import WIDE, _junk

    from molmo_agent.parsing import answer_is_complete, parse_action_detailed, parse_points_detailed

    worst = {}
    for name, text in _junk().items():
        worst[name] = max(
            _seconds(lambda t=text: parse_points_detailed(t, [WIDE])),
            _seconds(lambda t=text: parse_points_detailed(t, [WIDE], video=True)),
            _seconds(lambda t=text: parse_action_detailed(t, WIDE)),
            _seconds(lambda t=text: answer_is_complete(t)),
        )
    name, seconds = max(worst.items(), key=lambda item: item[1])
    print(f"parsing 1 MB junk: slowest parser call {seconds * 1000:.0f} ms ({name!r}); bound 1000 ms")


def synthetic_gui() -> None:
    from molmo_agent.actions import Action, ActionType
    from molmo_envs.synthetic_gui import SyntheticGuiEnv

    env = SyntheticGuiEnv(screen_size=(540, 960))
    rng = np.random.default_rng(0)
    steps, seed, started = 0, 0, time.perf_counter()
    while steps < 600:
        env.reset(seed=seed)
        seed += 1
        for _ in range(3):
            if rng.random() < 0.5:
                action = env.oracle_action()
                if action.type is ActionType.DONE:
                    break
            else:
                action = Action(
                    type=ActionType.CLICK, x=float(rng.uniform(0, 540)), y=float(rng.uniform(0, 960))
                )
            steps += 1
            if env.step(action)[2]:
                break
    rate = steps / (time.perf_counter() - started)
    print(f"SyntheticGui-v0 540x960: {rate:.0f} steps/s (resets included, {seed} episodes)")


def tabletop() -> None:
    from molmo_envs.tabletop import TabletopPointingEnv

    env = TabletopPointingEnv()
    count, started = 50, time.perf_counter()
    for seed in range(count):
        env.reset(seed=seed)
        env.step(env.oracle_point())
    print(f"TabletopPointing-v0 320x240: {count / (time.perf_counter() - started):.0f} reset+step/s")


def bomb() -> None:
    from molmo_agent.errors import ImageInputError
    from molmo_agent.images import load_image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )

    def reject() -> None:
        try:
            load_image(png)
        except ImageInputError:
            return
        raise AssertionError("the bomb was accepted")

    print(f"decompression-bomb PNG (100k x 100k header) rejected in {_seconds(reject) * 1000:.1f} ms")


if __name__ == "__main__":
    parsing()
    synthetic_gui()
    tabletop()
    bomb()
