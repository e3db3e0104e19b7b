"""The README's reproduce command for the embedded default, ``benchmarks/train_default_cpu.sh``, really
replays the lineage: its stages chain, every flag is one the recipe's entry accepts (``molmo-agent
finetune``'s own options plus the knobs of ``molmo_agent/training/pointer_recipe.py``), and its last stage is
the recipe recorded in the shipped checkpoint's ``molmo_agent.json``.

The script is run for real by bash, with ``python`` on PATH replaced by a recorder (the stages train for
~20 hours on a CPU); the recorded command lines are then parsed by the real parser of that entry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from molmo_agent.backends.registry import DEFAULT_MODEL_DIR
from molmo_agent.cli_pointer_recipe import build_parser
from molmo_agent.training.pointer_recipe import NAME, PointerRecipe

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "train_default_cpu.sh"

RECORDER = """
import json, os, sys
from pathlib import Path
argv = sys.argv[1:]
with open(os.environ["RECORD"], "a") as log:
    log.write(json.dumps(argv) + "\\n")
if "molmo_agent.cli_pointer_recipe" in argv:
    final = Path(argv[argv.index("--out") + 1]) / "final"
    final.mkdir(parents=True, exist_ok=True)
    (final / "config.json").write_text("{}")
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> list[list[str]]:
    tmp = tmp_path_factory.mktemp("reproduce")
    (tmp / "recorder.py").write_text(RECORDER)
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp / "recorder.py"}" "$@"\n')
    fake.chmod(0o755)
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(tmp / "out")}
    env["RECORD"] = str(tmp / "record.jsonl")
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in (tmp / "record.jsonl").read_text().splitlines()]


ENTRY = ["-m", "molmo_agent.cli_pointer_recipe"]


def _finetune_args(recorded: list[list[str]]):
    parser = build_parser()
    calls = [argv for argv in recorded if argv[:2] == ENTRY]
    assert calls and all(argv[:2] == ENTRY or argv[0].endswith(".py") for argv in recorded)
    stages = [parser.parse_args(argv[2:]) for argv in calls]
    assert all(stage.command == "finetune" for stage in stages)
    return stages


def test_every_stage_parses_and_continues_the_previous_one(recorded):
    stages = _finetune_args(recorded)
    assert stages[0].init_preset == "pointer-numbers-fine" and stages[0].model is None
    for before, after in pairwise(stages):
        assert after.model == str(Path(before.out) / "final")
        assert after.init_preset is None
    assert all(s.time_budget_min is None for s in stages)  # schedules over steps, not wall time
    evaluation = recorded[-1]
    assert evaluation[0] == "benchmarks/eval_default_model.py"
    assert evaluation[evaluation.index("--model") + 1] == str(Path(stages[-1].out) / "final")


def test_the_last_stage_is_the_shipped_checkpoints_recipe(recorded):
    meta = json.loads((DEFAULT_MODEL_DIR / "molmo_agent.json").read_text())
    config, recipe = meta["config"], meta["recipe"]
    stages = _finetune_args(recorded)
    last = stages[-1]
    assert meta["step"] == last.steps
    assert tuple(last.data) == tuple(config["data"])
    assert (last.lr, last.warmup, last.seed) == (config["lr"], config["warmup_steps"], config["seed"])
    assert (last.batch_size, last.decay_fraction) == (config["batch_size"], config["decay_fraction"])
    assert recipe["name"] == NAME and recipe["module"] == "molmo_agent.training.pointer_recipe"
    knobs = {key: value for key, value in recipe.items() if key not in ("name", "module")}
    assert PointerRecipe(**knobs) == PointerRecipe(
        attend_weight=last.attend_weight,
        attend_axis_heads=last.attend_axis_heads,
        place_weight=last.place_weight,
        vision_lr_scale=last.vision_lr_scale,
        reuse=last.reuse,
    )
    lineage = meta[
        "lineage"
    ]  # where the parent and the recipe are, by name: no path of the trainer's machine
    assert lineage["stage"] == Path(last.out).name and lineage["parent"] == Path(stages[-2].out).name
    assert (ROOT / lineage["script"]).is_file() and (ROOT / lineage["recipe"]).is_file()


def test_the_shipped_record_names_no_path_that_does_not_exist():
    meta = json.loads((DEFAULT_MODEL_DIR / "molmo_agent.json").read_text())
    for key in ("model", "out_dir"):
        assert meta["config"][key].startswith("$OUT/"), key  # the script's output folder, not a path here


def test_the_lineage_curve_plots_the_stages_the_script_trains(recorded):
    """``plot_default_lineage.py`` keeps its own list of stages (history file, steps): it must be the
    script's, or the curve would join histories on a wrong step axis."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from plot_default_lineage import LINEAGE
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    stages = [(Path(s.out).name, s.steps) for s in _finetune_args(recorded)]
    assert stages == [(stage.history, stage.steps) for stage in LINEAGE]
