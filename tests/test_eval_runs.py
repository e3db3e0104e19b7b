"""Eval folders that cannot lie: run.json pins the configuration, Ctrl-C resumes cleanly, and the reports of
SyntheticGui and TabletopPointing say what they were scored against."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from molmo_agent.cli import main
from molmo_agent.evaluation import EvalConfig, RunMismatchError, run_eval
from molmo_agent.evaluation.suites import SUITES
from molmo_agent.model import MolmoModel

CENTRE = '<points coords="1 1 500 500">it</points>'


def _gui_args(tiny_dir, out, *extra: str) -> list[str]:
    command = SUITES["synthetic_gui"].command(2, 0).split()[2:]
    return ["eval", *command, "--model", str(tiny_dir), "--out", str(out), "--no-progress", *extra]


def test_run_json_names_the_model_weights_env_arguments_and_settings(backend, tmp_path):
    backend.script = lambda request: CENTRE
    config = SUITES["tabletop"].config(tmp_path, 1)
    run_eval(config, MolmoModel(backend), progress=False)
    run = json.loads((tmp_path / "run.json").read_text())["config"]
    source = backend.info.source
    expected = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(Path(source).glob("*.safetensors"))
    }
    assert run["model"]["weights_sha256"] == expected and expected
    assert run["env_id"] == "molmo_agent/TabletopPointing-v0"
    assert run["env_args"]["image_size"] == [320, 240] and run["env_args"]["hit_margin_m"] == 0.02
    assert run["max_episode_steps"] == 1 and run["policy"] == "point" and run["seed"] == 0
    assert run["package_version"] and "max_new_tokens" in run and "protocol" in run


def test_a_rerun_with_another_configuration_is_refused_force_starts_over_same_config_resumes(
    tiny_dir, tmp_path, capsys
):
    out = tmp_path / "eval"
    assert main(_gui_args(tiny_dir, out)) == 0
    first = (out / "steps.jsonl").read_text()
    assert main(_gui_args(tiny_dir, out, "--seed", "5")) == 2
    error = capsys.readouterr().err
    assert "seed: 0 in the folder, 5 now" in error and "--force" in error and "--out" in error
    assert (out / "steps.jsonl").read_text() == first  # nothing touched
    assert main(_gui_args(tiny_dir, out)) == 0  # same configuration: resumes, nothing to redo
    assert (out / "steps.jsonl").read_text() == first
    assert main(_gui_args(tiny_dir, out, "--seed", "5", "--force")) == 0
    seeds = {json.loads(line)["seed"] for line in (out / "steps.jsonl").read_text().splitlines()}
    assert seeds == {5, 6}
    assert "seeds 5..6" in capsys.readouterr().out


def test_a_changed_env_argument_is_refused(backend, tmp_path):
    backend.script = lambda request: CENTRE
    run_eval(SUITES["tabletop"].config(tmp_path, 1), MolmoModel(backend), progress=False)
    other = EvalConfig(
        "molmo_agent/TabletopPointing-v0", tmp_path, episodes=1, env_kwargs={"hit_margin_m": 0.05}
    )
    with pytest.raises(RunMismatchError, match=r"env_args\.hit_margin_m: 0\.02 in the folder, 0\.05 now"):
        run_eval(other, MolmoModel(backend), progress=False)


def test_ctrl_c_ends_with_a_message_and_exit_130(tiny_dir, tmp_path):
    out = tmp_path / "eval"
    command = [sys.executable, "-m", "molmo_agent.cli", "eval", "molmo_agent/TabletopPointing-v0"]
    command += ["--model", str(tiny_dir), "--episodes", "100", "--out", str(out), "--no-progress"]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    steps = out / "steps.jsonl"
    try:
        for _ in range(3000):  # up to ~5 minutes on a slow machine; usually seconds
            if (steps.is_file() and steps.read_text().strip()) or process.poll() is not None:
                break
            time.sleep(0.1)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted; rerun the same command to resume" in stderr
    assert "Traceback" not in stderr + stdout
    assert steps.read_text().strip()  # finished episodes are on disk


def test_synthetic_gui_report_names_its_truth_and_what_each_tap_hit(backend, tmp_path):
    backend.script = lambda request: CENTRE
    summary = run_eval(SUITES["synthetic_gui"].config(tmp_path, 3), MolmoModel(backend), progress=False)
    lines = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    for line in lines:
        assert line["target"] and line["target_element"]["box"] == line["target_box"]
        hit_id = (line["hit_element"] or {}).get("id")
        assert line["correct"] == (hit_id == line["target_element"]["id"])
        assert line["predicted"]["x"] == pytest.approx(270, abs=1) and line["predicted"][
            "y"
        ] == pytest.approx(480, abs=1)
    assert summary["protocol"] == "env reward" and "SyntheticGui" in summary["truth"]
    assert summary["synthetic_gui"]["target_hit_rate"] == summary["step_accuracy"]
    assert "task=icon" in summary["settings"] and "max_episode_steps=1" in summary["settings"]
    page = (tmp_path / "report.html").read_text()
    assert "scored by: env reward" in page and "truth: the element the instruction names" in page
    assert "None" not in page.split("<h2>")[0] and "null" not in page.split("<h2>")[0]
    misses = [line for line in lines if not line["correct"]]
    for line in misses:
        assert line["target"] in page and f"hit: {line['hit'] or 'nothing'}" in page


def test_tabletop_report_gives_the_median_3d_error_and_the_hit_rate(backend, tmp_path):
    answers = iter(
        [
            '<points coords="1 1 500 500">it</points>',
            "nothing here",
            '<points coords="1 1 100 900">it</points>',
        ]
    )
    backend.script = lambda request: next(answers)
    summary = run_eval(SUITES["tabletop"].config(tmp_path, 3), MolmoModel(backend), progress=False)
    lines = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert sum(line["parse_error"] is not None for line in lines) == 1
    errors = [math.inf if line["error_m"] is None else line["error_m"] for line in lines]
    median = statistics.median(errors)
    expected = round(median * 100, 2) if math.isfinite(median) else None
    assert summary["tabletop"]["median_error_cm"] == expected
    assert (
        summary["tabletop"]["hit_rate"] == summary["step_accuracy"] == sum(line["hit"] for line in lines) / 3
    )
    assert all(line["correct"] == line["hit"] for line in lines)
    assert "median 3-D error" in summary["headline"]
    assert "3-D error" in (tmp_path / "report.html").read_text()
