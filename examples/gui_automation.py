"""Drive a GUI from instructions: Molmo points at each named element, the loop acts, every step is recorded.

    python examples/gui_automation.py ["click File then click Save"] [--screenshot IMAGE] [--model M]
        [--record-dir DIR] [--max-steps N] [--live [--yes]]

By default nothing is touched: a dry-run executor shows the model one screenshot (the bundled sample image
unless ``--screenshot`` is given) and records what it would do, with the embedded default model, offline.
``--live`` drives this machine's mouse and keyboard (needs a display and the ``gui`` extra) and asks before
each action unless ``--yes`` is given; moving the mouse into a screen corner aborts (pyautogui's fail-safe).

Open ``DIR/index.html`` afterwards to step through the run: each screenshot with the action drawn on it,
the prompt, the model's answer, the parsed action, errors and timings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import molmo_agent as ma
from molmo_agent.agent import (
    AgentConfig,
    ConfirmingExecutor,
    DryRunExecutor,
    Executor,
    PointPolicy,
    run_agent,
)
from molmo_agent.agent.record import TrajectoryRecorder
from molmo_agent.cli import SAMPLE_IMAGE


def make_executor(args: argparse.Namespace) -> Executor:
    """A dry run by default; the desktop (with confirmation unless --yes) only when asked for."""
    if not args.live:
        return DryRunExecutor(ma.load_image(args.screenshot))
    from molmo_agent.agent.executors.desktop import DesktopExecutor  # needs a display and pyautogui

    desktop = DesktopExecutor()
    return desktop if args.yes else ConfirmingExecutor(desktop)


def print_step(step) -> None:
    """A one-line progress report per step (a callback, like the recorder)."""
    what = step.action.to_json() if step.action else f"no action: {step.error}"
    print(f"step {step.index}: {what}" + (f"  [{step.error}]" if step.action and step.error else ""))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("goal", nargs="?", default="click the red mug then click the blue book")
    parser.add_argument("--screenshot", default=str(SAMPLE_IMAGE), help="the screen of a dry run")
    parser.add_argument("--model", default=None, help="Hub id or folder (default: the embedded tiny model)")
    parser.add_argument("--record-dir", type=Path, default=Path("trajectory"))
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--live", action="store_true", help="act on this machine's desktop")
    parser.add_argument("--yes", action="store_true", help="with --live: do not ask before each action")
    args = parser.parse_args()
    if args.yes and not args.live:
        parser.error("--yes only makes sense with --live")

    try:
        executor = make_executor(args)
    except ma.MolmoAgentError as error:  # no display, missing extra, unreadable screenshot
        sys.exit(str(error))
    model = ma.load_model(args.model)
    config = AgentConfig(max_steps=args.max_steps)
    with executor, TrajectoryRecorder(args.record_dir, args.goal) as recorder:
        result = run_agent(args.goal, PointPolicy(model), executor, config, callbacks=[recorder, print_step])
        recorder.close(result)
    print(f"stopped: {result.stop_reason} after {len(result.steps)} step(s)")
    print(f"trajectory: {(args.record_dir / 'index.html').resolve().as_uri()}")


if __name__ == "__main__":
    main()
