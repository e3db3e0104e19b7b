"""The embedded default model's whole learning curve: every training stage of its lineage end to end.

    python benchmarks/plot_default_lineage.py [--out docs/training/default_model_curve.png]

The model was trained in stages, one per session (``benchmarks/train_default_cpu.sh`` replays them), and
each stage's ``history.jsonl`` counts its steps from 1. This joins the kept histories (in the archive
``docs/training/runs.tar.gz``, as ``runs/NAME_history.jsonl``) on one step axis and marks, at each
stage's end, the held-out success measured with ``benchmarks/eval_default_model.py`` (64 or 200 seeds;
the in-run 24-seed checks are left out, being too noisy to read at 80-90%). Drawn by the same
``plot_history`` as every run's own curve.
"""

from __future__ import annotations

import argparse
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from molmo_agent.training.curve import plot_history

DOCS = Path(__file__).resolve().parent.parent / "docs" / "training"
ARCHIVE = DOCS / "runs.tar.gz"
"""Every training run's history, log and curve, and the run-by-run journal (``runs/journal.md``)."""


@dataclass(frozen=True)
class Stage:
    """One stage of the lineage: its history file, the steps of it that fed the next stage, and the
    held-out result of its final checkpoint (GUI icon taps, tabletop hits), where one was measured."""

    history: str
    steps: int
    gui_taps: float | None = None
    tabletop_hits: float | None = None


LINEAGE = (
    Stage("numbers_fine_cpu_pilot", 903, 0.078, 0.062),
    Stage("place_sincos_ab", 400),  # checkpoint-400 of this arm fed the next stage
    Stage("axis_heads_ab", 305, 0.203, 0.094),
    Stage("place_layer_ctl", 581, 0.188, 0.25),
    Stage("place_layer_ctl_cont", 142),
    Stage("sdpa_rows_cpu", 1281, 0.405, 0.49),
    Stage("sdpa_rows_cpu_cont", 235, 0.45, 0.465),
    Stage("ninth_cpu", 1701, 0.605, 0.62),
    Stage("tenth_cpu", 1506, 0.72, 0.675),
    Stage("eleventh_cpu", 2364, 0.765, 0.79),
    Stage("twelfth_cpu", 2500, 0.83, 0.83),
    Stage("thirteenth_cpu", 2690, 0.88, 0.855),
    Stage("thirteenth_cpu_cont", 638, 0.89, 0.865),
    Stage("fourteenth_cpu", 2473, 0.91, 0.86),  # the shipped default
)


def read_history(name: str, archive: Path = ARCHIVE) -> list[dict]:
    """The records of run ``name`` from the archive."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile(f"runs/{name}_history.jsonl")
        if member is None:
            raise FileNotFoundError(f"runs/{name}_history.jsonl is not a file in {archive}")
        lines = member.read().decode().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def lineage_history(stages: tuple[Stage, ...] = LINEAGE) -> list[dict]:
    """The stages' records on one step axis, each stage's own eval replaced by its held-out result."""
    joined: list[dict] = []
    offset = 0
    for stage in stages:
        records = read_history(stage.history)
        for record in records:
            if "step" not in record or record["step"] > stage.steps:
                continue
            record = {k: v for k, v in record.items() if k != "eval"} | {"step": offset + record["step"]}
            joined.append(record)
        offset += stage.steps
        if stage.gui_taps is not None:
            held_out = {"GUI icon (held-out)": stage.gui_taps, "tabletop (held-out)": stage.tabletop_hits}
            joined.append({"step": offset, "eval": held_out})
    return joined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS / "default_model_curve.png")
    args = parser.parse_args()
    history = lineage_history()
    plot_history(history, args.out, size=(1100, 420))
    steps = max(r["step"] for r in history)
    print(f"{len(LINEAGE)} stages, {steps} steps of 32 -> {args.out}")


if __name__ == "__main__":
    main()
