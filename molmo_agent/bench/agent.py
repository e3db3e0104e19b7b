"""Per-step latency of the agent loop: capture, preprocess, model, parse, execute (median of a dry run).

With a display (``DISPLAY`` set) the screen is really captured through the desktop executor and actions
are recorded, not performed (dry run); without one, a synthetic 1280x720 screenshot stands in. The model
is the tiny Molmo2 with its pointing answer forced (``backends.scripted``), so decode length is realistic.
"""

from __future__ import annotations

import os
import statistics
import tempfile

from PIL import Image

from ..agent import AgentConfig, DryRunExecutor, PointPolicy, run_agent
from ..backends.registry import resolve
from ..backends.scripted import ScriptedMolmo2Backend
from ..images import load_image
from ..model import MolmoModel
from .point import synthetic_screenshot

STAGES = ("capture_ms", "preprocess_ms", "model_ms", "parse_ms", "execute_ms")
FORCED_ANSWER = '<points coords="1 1 412 655">Save button</points>'


def _screen(use_display: bool):
    if use_display:
        from ..agent.executors.desktop import DesktopConfig, DesktopExecutor

        return DesktopExecutor(DesktopConfig(settle_s=0.0)), "desktop capture (mss)"
    frames = [load_image(synthetic_screenshot()), Image.new("RGB", (1280, 720), (236, 239, 244))]
    counter = iter(range(10**9))
    return (lambda: frames[next(counter) % 2]), "synthetic 1280x720 screenshot (no display)"


def run_agent_bench(
    steps: int = 20,
    preset: str = "tiny",
    model: str | None = None,
    cpu_threads: int | None = None,
    quantize: str | None = None,
) -> dict:
    from ..training.tiny_molmo2 import PRESETS, build_tiny_molmo2

    if cpu_threads is not None:
        from ..backends.torch_setup import set_cpu_threads

        set_cpu_threads(cpu_threads)
    use_display = bool(os.environ.get("DISPLAY"))
    with tempfile.TemporaryDirectory() as tmp:
        location = model or str(build_tiny_molmo2(f"{tmp}/{preset}", PRESETS[preset]))
        backend = ScriptedMolmo2Backend(resolve(location), quantize=quantize)
        backend.script = lambda request: FORCED_ANSWER
        backend.end_after_script = True
        policy = PointPolicy(MolmoModel(backend), steps=["click the Save button"] * steps)
        screen, source = _screen(use_display)
        config = AgentConfig(max_steps=steps, stuck_repeats=steps + 1)
        with DryRunExecutor(screen) as executor:
            result = run_agent("click the Save button", policy, executor, config)
    medians = {
        stage: round(statistics.median(getattr(s, stage) for s in result.steps), 3) for stage in STAGES
    }
    medians["step_total_ms"] = round(sum(medians.values()), 3)
    numbers = {"steps": len(result.steps), "screen": source, "answer": FORCED_ANSWER, "median_ms": medians}
    numbers["table"] = "\n".join(
        [f"agent loop, {len(result.steps)}-step dry run, {source}; tiny Molmo2, forced answer"]
        + [f"  {stage.removesuffix('_ms'):14s} {value:9.3f} ms" for stage, value in medians.items()]
    )
    return numbers
