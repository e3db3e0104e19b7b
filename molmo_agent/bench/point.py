"""CPU latency breakdown of ``model.point`` and the decode tokens saved by stopping early.

The point path stops once the coordinates are written (``POINT_OPTIONS.stop_at_coords``); the table shows
its tokens against stopping at the closing tag and against a fixed budget.

Prints numbers and ratios; nothing here asserts a speed. The answer text is forced (see
``backends.scripted``) so that a random-weight checkpoint still produces a complete pointing answer of
realistic length: every forward pass and decode step is real, only the choice of token is scripted.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from dataclasses import replace

from PIL import Image, ImageDraw

from ..backends.base import Request
from ..backends.registry import resolve
from ..backends.scripted import ScriptedMolmo2Backend
from ..model import POINT_OPTIONS, MolmoModel

SCREEN_SIZE = (1280, 720)
FORCED_ANSWER = '<points coords="1 1 412 655">Save button</points>'


def synthetic_screenshot(size: tuple[int, int] = SCREEN_SIZE) -> bytes:
    """A PNG of a plausible desktop window (title bar, buttons, text lines): realistic decode cost."""
    img = Image.new("RGB", size, (236, 239, 244))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.rectangle((0, 0, w, 40), fill=(45, 52, 64))
    for row in range(8):
        y = 80 + row * 50
        draw.rectangle((40, y, w // 2, y + 12), fill=(160, 166, 176))
    draw.rounded_rectangle(
        (int(w * 0.37), int(h * 0.62), int(w * 0.45), int(h * 0.69)), 8, fill=(40, 110, 220)
    )
    draw.text((int(w * 0.385), int(h * 0.645)), "Save", fill=(255, 255, 255))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def run_point_bench(
    model: str | None = None,
    preset: str = "tiny",
    runs: int = 7,
    budget: int = 64,
    device: str | None = None,
    dtype: str | None = None,
    cpu_threads: int | None = None,
    quantize: str | None = None,
) -> dict:
    """Measure one 1280x720 point query end to end; returns numbers and a printable table."""
    if cpu_threads is not None:
        from ..backends.torch_setup import set_cpu_threads

        set_cpu_threads(cpu_threads)
    with tempfile.TemporaryDirectory() as tmp:
        location = model or _build_preset(preset, tmp)
        backend = ScriptedMolmo2Backend(
            resolve(location), device=device or "cpu", dtype=dtype, quantize=quantize
        )
        backend.script = lambda request: FORCED_ANSWER
        molmo = MolmoModel(backend)
        png = synthetic_screenshot()
        molmo.point(png, "the Save button")  # warm-up: first call pays allocator and kernel selection
        e2e, decode, pre, mod, parse, stopped_tokens = [], [], [], [], [], []
        for _ in range(runs):
            started = time.perf_counter()
            result = molmo.point_detailed(png, "the Save button")
            e2e.append((time.perf_counter() - started) * 1000)
            t = result.timings
            decode.append(t.decode_ms)
            pre.append(t.preprocess_ms)
            mod.append(t.model_ms)
            parse.append(t.parse_ms)
            stopped_tokens.append(result.num_generated_tokens)
        fixed = _fixed_budget_run(backend, png, budget)
        closing = _fixed_budget_run(backend, png, budget, stop_at_answer=True)
    info = backend.info
    numbers = {
        "model": info.model_id if model else f"tiny preset {preset!r} ({info.num_parameters:,} parameters)",
        "device": info.device,
        "dtype": info.dtype,
        "image": f"{SCREEN_SIZE[0]}x{SCREEN_SIZE[1]} PNG",
        "runs": runs,
        "decode_ms": _median_ms(decode),
        "preprocess_ms": _median_ms(pre),
        "model_ms": _median_ms(mod),
        "parse_ms": _median_ms(parse),
        "point_end_to_end_ms": _median_ms(e2e),
        "tokens_with_stop": statistics.median(stopped_tokens),
        "tokens_closing_tag": closing["tokens"],
        "tokens_fixed_budget": fixed["tokens"],
        "model_ms_fixed_budget": fixed["model_ms"],
        "answer": FORCED_ANSWER,
    }
    numbers["tokens_saved"] = numbers["tokens_fixed_budget"] - numbers["tokens_with_stop"]
    numbers["tokens_saved_vs_closing_tag"] = numbers["tokens_closing_tag"] - numbers["tokens_with_stop"]
    numbers["model_time_ratio_fixed_over_stop"] = round(fixed["model_ms"] / max(numbers["model_ms"], 1e-9), 2)
    numbers["table"] = _table(numbers)
    return numbers


def _build_preset(preset: str, folder: str) -> str:
    from ..training.tiny_molmo2 import PRESETS, build_tiny_molmo2

    return str(build_tiny_molmo2(f"{folder}/{preset}", PRESETS[preset]))


def _fixed_budget_run(
    backend: ScriptedMolmo2Backend, png: bytes, budget: int, stop_at_answer: bool = False
) -> dict:
    """The same request decoded to a fixed budget with no early stop (what a 64-token cap costs), or
    with ``stop_at_answer`` to the closing tag (what stopping before the echoed label saves)."""
    from ..images import load_image

    options = replace(
        POINT_OPTIONS, max_new_tokens=budget, stop_at_answer=stop_at_answer, stop_at_coords=False
    )
    request = Request((load_image(png),), "Point to the Save button.")
    generations = [backend.generate([request], options)[0] for _ in range(3)]
    return {
        "tokens": generations[0].num_generated_tokens,
        "model_ms": _median_ms([g.model_ms for g in generations]),
    }


def _table(n: dict) -> str:
    rows = [
        ("model", str(n["model"])),
        ("device / dtype", f"{n['device']} / {n['dtype']}"),
        ("image", n["image"]),
        ("decode (image bytes -> RGB)", f"{n['decode_ms']:.2f} ms"),
        ("preprocess (crops + tokens)", f"{n['preprocess_ms']:.2f} ms"),
        ("model (prefill + decode)", f"{n['model_ms']:.2f} ms"),
        ("parse", f"{n['parse_ms']:.3f} ms"),
        ("model.point end to end (median)", f"{n['point_end_to_end_ms']:.2f} ms over {n['runs']} runs"),
        ("generated tokens, stop after coordinates", f"{n['tokens_with_stop']}"),
        ("generated tokens, stop at closing tag", f"{n['tokens_closing_tag']}"),
        ("generated tokens, fixed budget", f"{n['tokens_fixed_budget']}"),
        ("tokens saved", f"{n['tokens_saved']} ({n['tokens_saved'] / max(n['tokens_fixed_budget'], 1):.0%})"),
        ("saved by stopping after coordinates", f"{n['tokens_saved_vs_closing_tag']} tokens vs closing tag"),
        (
            "model time fixed budget / stop",
            f"{n['model_ms_fixed_budget']:.2f} ms / {n['model_ms']:.2f} ms "
            f"= {n['model_time_ratio_fixed_over_stop']}x",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
