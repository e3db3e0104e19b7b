"""CPU figures for issue 8's decode work: plain vs optimised Molmo2 path, and tokens saved by early stop.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/decode_cpu.py [--presets tiny medium] [--runs 5]

For each tiny preset (random weights, built offline) it times one 1280x720 point query whose answer is
forced to a realistic Molmo2 pointing answer (every forward pass is real, see ``backends.scripted``):

- plain: ``optimize=False`` (the default path: eager decoding, dynamic cache);
- optimised: ``optimize=True`` (static cache, compiled decode step) with the vision cache off, a new frame
  per query;
- optimised + repeated frame: the same, with the vision-feature cache on and the same frame each time
  (a robot asking about several objects in one frame).

It also checks that the optimised path's greedy outputs equal the plain path's, token for token, on free
(unforced) answers and on the forced ones, and prints the tokens decoded when stopping after the
coordinates, at the closing tag, and for the whole answer up to its end-of-turn token.
Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

from PIL import Image

from molmo_agent.backends.base import GenerationOptions, Request
from molmo_agent.backends.registry import resolve
from molmo_agent.backends.scripted import ScriptedMolmo2Backend
from molmo_agent.bench.point import FORCED_ANSWER, SCREEN_SIZE
from molmo_agent.model import POINT_OPTIONS, MolmoModel
from molmo_agent.training.tiny_molmo2 import PRESETS, build_tiny_molmo2

QUERY = "the Save button"


def _frame(shade: int) -> Image.Image:
    return Image.new("RGB", SCREEN_SIZE, (236, 239 - shade % 200, 244))


def _backend(location: str, optimize: bool, vision_cache: int) -> ScriptedMolmo2Backend:
    backend = ScriptedMolmo2Backend(
        resolve(location), device="cpu", optimize=optimize, vision_cache_size=vision_cache
    )
    backend.script = lambda request: FORCED_ANSWER
    backend.end_after_script = True
    return backend


def _time_points(backend: ScriptedMolmo2Backend, runs: int, same_frame: bool) -> tuple[float, list]:
    model = MolmoModel(backend)
    model.point(_frame(0), QUERY)  # first call: allocator, kernel choice (and compile, if not warmed)
    samples, results = [], []
    for run in range(runs):
        frame = _frame(0 if same_frame else run + 1)
        started = time.perf_counter()
        results.append(model.point_detailed(frame, QUERY))
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), results


def _tokens(backend: ScriptedMolmo2Backend, options: GenerationOptions) -> int:
    request = Request((_frame(0),), f"Point to {QUERY.removeprefix('the ')}.")
    return backend.generate([request], options)[0].num_generated_tokens


def _identical(plain: ScriptedMolmo2Backend, fast: ScriptedMolmo2Backend) -> bool:
    """Free greedy answers (batch 1 and a left-padded batch of 3) and a forced answer, plain vs optimised."""
    requests = [
        Request((Image.new("RGB", (640, 480), (200, 30, 30)),), "Point to the red thing."),
        Request((Image.new("RGB", (300, 500), (30, 200, 30)),), "Point to the green thing in the picture."),
        Request((_frame(3),), "What is on this screen?"),
    ]
    same = True
    for backend in (plain, fast):
        backend.script = lambda request: ""
    options = GenerationOptions(max_new_tokens=32)
    for batch in ([requests[0]], [requests[2]], requests):
        a = [(g.text, g.num_generated_tokens) for g in plain.generate(batch, options)]
        b = [(g.text, g.num_generated_tokens) for g in fast.generate(batch, options)]
        same &= a == b
    for backend in (plain, fast):
        backend.script = lambda request: FORCED_ANSWER
    forced = [b.generate(requests[:1], POINT_OPTIONS)[0].text for b in (plain, fast)]
    return same and forced[0] == forced[1]


def run_preset(preset: str, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        location = str(build_tiny_molmo2(f"{folder}/{preset}", PRESETS[preset]))
        plain = _backend(location, optimize=False, vision_cache=0)
        fast = _backend(location, optimize=True, vision_cache=0)
        cached = _backend(location, optimize=True, vision_cache=8)
        started = time.perf_counter()
        fast.warmup(image_sizes=(SCREEN_SIZE,), options=POINT_OPTIONS)
        warmup_s = time.perf_counter() - started
        cached.warmup(image_sizes=(SCREEN_SIZE,), options=POINT_OPTIONS)
        plain_ms, plain_results = _time_points(plain, runs, same_frame=False)
        fast_ms, fast_results = _time_points(fast, runs, same_frame=False)
        cached_ms, cached_results = _time_points(cached, runs, same_frame=True)
        budget = 64
        numbers = {
            "preset": preset,
            "parameters": plain.info.num_parameters,
            "plain_ms": round(plain_ms, 1),
            "optimized_ms": round(fast_ms, 1),
            "optimized_repeated_frame_ms": round(cached_ms, 1),
            "speedup": round(plain_ms / fast_ms, 2),
            "speedup_repeated_frame": round(plain_ms / cached_ms, 2),
            "warmup_s": round(warmup_s, 1),
            "compiled": fast.fast_decoder.compiles,
            "compile_note": fast.fast_decoder.compile_disabled_reason or "decode step compiled",
            "tokens_stop_after_coords": plain_results[0].num_generated_tokens,
            "tokens_stop_at_closing_tag": _tokens(plain, replace(POINT_OPTIONS, stop_at_coords=False)),
            "tokens_full_answer": _tokens(
                plain,
                replace(POINT_OPTIONS, max_new_tokens=budget, stop_at_answer=False, stop_at_coords=False),
            ),
            "same_points": all(
                a.points == b.points == c.points
                for a, b, c in zip(plain_results, fast_results, cached_results, strict=True)
            ),
            "identical_greedy_tokens": _identical(plain, fast),
        }
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "medium"], choices=sorted(PRESETS))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = [run_preset(preset, args.runs) for preset in args.presets]
    for row in rows:
        print()
        width = max(len(key) for key in row)
        for key, value in row.items():
            print(f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
