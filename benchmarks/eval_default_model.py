"""Held-out numbers of the embedded default model (the closing-note table), through the full agent path.

    python benchmarks/eval_default_model.py [--seeds 200] [--model DIR] [--out benchmarks/results/...json]

SyntheticGui: first-tap success on "tap the <colour> <shape> icon" tasks (540x960 phone screen, app filling
it, difficulty 0), plain, with screenshots rescaled 0.5x / 1.5x, given as BGR arrays, and through the gRPC
server and client (the plain view's misses broken down by kind: wrong colour, wrong shape, blank near
or far); plus harder settings (difficulty 1, 2, small app windows) for reference.
TabletopPointing: hits within 2 cm and the median 3-D error of the deprojected point. Seeds 0..N-1 are
evaluation seeds; training draws seeds from 1,000,000 up.

Every row runs through the evaluation harness (``molmo_agent.evaluation``) with the headline suites'
settings (``evaluation.suites``): the plain rows are exactly ``molmo-agent eval`` with the command printed
first, so this script, ``eval``, ``demo`` and the trainer give one number.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import molmo_agent as ma
from molmo_agent.evaluation.suites import SUITES
from molmo_agent.server.app import BackgroundServer
from molmo_agent.server.config import ServerConfig
from molmo_agent.training.evaluate import View, evaluate_synthetic_gui, evaluate_tabletop, miss_kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default="benchmarks/results/default_model_eval.json")
    parser.add_argument("--skip-extra", action="store_true", help="only the headline settings")
    args = parser.parse_args()
    model = ma.load_model(args.model)
    seeds = range(args.seeds)
    rows: dict[str, dict] = {}
    for suite in SUITES.values():
        print(f"same as: {suite.command(args.seeds)}", flush=True)

    def record(name: str, result, started: float) -> None:
        rows[name] = result.summary() | {"seconds": round(time.perf_counter() - started, 1)}
        median = rows[name]["median_error_m"]
        extra = f", median 3-D error {median * 100:.2f} cm" if median is not None else ""
        print(f"{name:38s} {result.success_rate:7.1%} of {result.episodes}{extra}", flush=True)

    for view in (View(), View(scale=0.5), View(scale=1.5), View(bgr=True)):
        started = time.perf_counter()
        result = evaluate_synthetic_gui(model, seeds, view)
        record(f"synthetic_gui icon d0 [{view.name}]", result, started)
        if view == View():
            rows["synthetic_gui icon d0 [plain]"]["misses"] = misses = dict(miss_kinds(result.records))
            print("  misses: " + (", ".join(f"{n} {kind}" for kind, n in misses.items()) or "none"))
    started = time.perf_counter()
    config = ServerConfig(port=0, warmup=False, max_batch_size=8, max_batch_wait_ms=5)
    with BackgroundServer(config, model) as server:
        remote = ma.load_model(f"grpc://{server.target}")
        record("synthetic_gui icon d0 [grpc://]", evaluate_synthetic_gui(remote, seeds), started)
    started = time.perf_counter()
    record("tabletop [plain]", evaluate_tabletop(model, seeds), started)
    if not args.skip_extra:
        for name, kwargs in (
            ("synthetic_gui icon d1", {"difficulty": 1}),
            ("synthetic_gui icon d2", {"difficulty": 2}),
            ("synthetic_gui icon any size/difficulty", {"difficulty": None, "random_size": True}),
        ):
            started = time.perf_counter()
            record(name, evaluate_synthetic_gui(model, seeds, **kwargs), started)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"model": model.info.model_id, "parameters": model.info.num_parameters, "seeds": args.seeds}
    out.write_text(json.dumps(summary | {"results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
