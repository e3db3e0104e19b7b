"""One-shot check of the CUDA path on a lent GPU: default device/dtype, batching, mapping, latency.

    python benchmarks/gpu_smoke.py OUT.json

Builds tiny and medium random Molmo2 checkpoints, loads them with no device/dtype given (so the defaults
are what is checked: CUDA + bf16), verifies batched == one-by-one answers and pixel mapping of a forced
answer, then runs the point benchmark on CUDA. Prints and writes JSON; asserts nothing about speed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict

import numpy as np
import torch
from PIL import Image

import molmo_agent as ma
from molmo_agent.backends.base import GenerationOptions
from molmo_agent.backends.registry import resolve
from molmo_agent.backends.scripted import ScriptedMolmo2Backend
from molmo_agent.bench.point import run_point_bench
from molmo_agent.model import MolmoModel
from molmo_agent.training.tiny_molmo2 import PRESETS, build_tiny_molmo2


def batch_matches_single(model: ma.MolmoModel) -> dict:
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        for w, h in [(640, 360), (300, 500), (1280, 720), (123, 457)]
    ]
    prompts = ["Point to the red mug.", "What colour is this?", "Describe it.", "Count the dots."]
    options = GenerationOptions(max_new_tokens=16)
    batched = model.generate(images, prompts, options=options)
    single = [model.generate(i, p, options=options) for i, p in zip(images, prompts, strict=True)]
    return {"equal": batched == single, "rows_equal": [b == s for b, s in zip(batched, single, strict=True)]}


def forced_mapping(folder: str) -> dict:
    backend = ScriptedMolmo2Backend(resolve(folder))
    backend.script = lambda request: '<points coords="1 1 500 250">mug</points>'
    points = MolmoModel(backend).point(Image.new("RGB", (1280, 720)), "the mug")
    return {
        "device": backend.info.device,
        "points": [(p.x, p.y) for p in points],
        "correct": [(round(p.x, 3), round(p.y, 3)) for p in points] == [(640.0, 180.0)],
    }


def main(out_path: str) -> None:
    report: dict = {
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("tiny", "medium"):
            folder = str(build_tiny_molmo2(f"{tmp}/{preset}", PRESETS[preset]))
            started = time.perf_counter()
            model = ma.load_model(folder)
            entry = {"info": asdict(model.info), "load_s": round(time.perf_counter() - started, 2)}
            entry["batch_vs_single_bf16"] = batch_matches_single(model)
            entry["batch_vs_single_fp32"] = batch_matches_single(ma.load_model(folder, dtype="float32"))
            entry["forced_mapping"] = forced_mapping(folder)
            bench = run_point_bench(model=folder, runs=10, device=model.info.device)
            bench.pop("table")
            entry["bench_default_device_dtype"] = bench
            report[preset] = entry
            print(json.dumps({preset: entry}, indent=1), flush=True)
    with open(out_path, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu_smoke.json")
