"""fp32 vs int8 (vs int4) weights of the embedded default model on this CPU: success, memory, latency.

    python benchmarks/quantize_cpu.py [--seeds 200] [--model DIR] [--out benchmarks/results/quantize_cpu.json]

Each variant runs in its own process (so its peak RSS is its own) on the SyntheticGui headline suite
(``evaluation.suites``, seeds 0..N-1, the same numbers as ``molmo-agent eval`` with ``--quantize``) and
reports: first-tap success, the bytes its weights occupy (quantized tensors counted as stored: int8 data
plus scales), peak RSS, median model milliseconds per query, and agreement with fp32: the share of
screens where the answer text is identical (same tokens, hence the same points) and where the success
verdict is the same. A variant that cannot run here (int4 on a CPU) is reported with its error.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("fp32", "int8", "int4")


def current_rss_mb() -> float:
    """Resident memory now (Linux ``/proc``), to separate the interpreter and libraries from the model."""
    import os

    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def run_variant(variant: str, seeds: int, model_name: str | None) -> dict:
    """One variant in this process: load, score the suite, report (called in a child process)."""
    import torch

    import molmo_agent as ma
    from molmo_agent.backends.quantize import quantized_linears, weight_bytes
    from molmo_agent.evaluation.suites import score_suite

    quantize = None if variant == "fp32" else variant
    before_mb = current_rss_mb()
    started = time.perf_counter()
    try:
        model = ma.load_model(model_name, quantize=quantize)
    except Exception as exc:  # int4 on a CPU: reported, the other variants still run
        return {"variant": variant, "error": f"{type(exc).__name__}: {exc}"}
    load_s = time.perf_counter() - started
    net = model.backend.model
    summary, records = score_suite(model, "synthetic_gui", range(seeds))
    return {
        "variant": variant,
        "model": model.info.model_id,
        "info_quantize": model.info.quantize,
        "quantized_linears": quantized_linears(net),
        "weight_mb": round(weight_bytes(net) / 1e6, 2),
        "rss_before_load_mb": round(before_mb, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
        "load_s": round(load_s, 2),
        "torch_threads": torch.get_num_threads(),
        "success": summary["step_accuracy"],
        "episodes": summary["episodes"],
        "median_ms_per_query": round(statistics.median(r["model_ms"] for r in records), 2),
        "answers": {str(r["seed"]): [r["raw_text"], bool(r["correct"])] for r in records},
    }


def child(variant: str, seeds: int, model_name: str | None) -> dict:
    """Run one variant in a fresh interpreter and read its JSON (its last stdout line)."""
    command = [sys.executable, __file__, "--child", variant, "--seeds", str(seeds)]
    if model_name:
        command += ["--model", model_name]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"variant": variant, "error": f"exit {done.returncode}: {done.stderr.strip()[-800:]}"}
    return json.loads(lines[-1])


def agreement(row: dict, reference: dict) -> dict:
    """Share of screens with the identical answer text, and with the same success verdict, as fp32."""
    seeds = sorted(set(row["answers"]) & set(reference["answers"]), key=int)
    same_text = sum(row["answers"][s][0] == reference["answers"][s][0] for s in seeds)
    same_verdict = sum(row["answers"][s][1] == reference["answers"][s][1] for s in seeds)
    n = max(len(seeds), 1)
    return {"screens": len(seeds), "same_answer": same_text / n, "same_verdict": same_verdict / n}


def table(rows: list[dict]) -> str:
    header = (
        "weights",
        "success",
        "weight MB",
        "RSS before load MB",
        "peak RSS MB",
        "ms/query",
        "same answer",
        "same verdict",
    )
    lines = [header]
    for row in rows:
        if "error" in row:
            lines.append((row["variant"], "-", "-", "-", "-", "-", "-", row["error"][:100]))
            continue
        agree = row.get("agreement_with_fp32") or {}
        lines.append(
            (
                row["variant"],
                f"{row['success']:.1%}",
                f"{row['weight_mb']:.1f}",
                f"{row['rss_before_load_mb']:.0f}",
                f"{row['peak_rss_mb']:.0f}",
                f"{row['median_ms_per_query']:.1f}",
                f"{agree.get('same_answer', 1.0):.1%}",
                f"{agree.get('same_verdict', 1.0):.1%}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--model", default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default="benchmarks/results/quantize_cpu.json")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.seeds, args.model)))
        return
    rows = [child(v, args.seeds, args.model) for v in args.variants.split(",")]
    reference = next((r for r in rows if r["variant"] == "fp32" and "error" not in r), None)
    for row in rows:
        if reference is not None and "error" not in row and row is not reference:
            row["agreement_with_fp32"] = agreement(row, reference)
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seeds": args.seeds, "suite": "synthetic_gui", "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
