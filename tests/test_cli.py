"""The molmo-agent command line, run in-process and as the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from molmo_agent.cli import main


def test_point_on_the_sample_prints_json_and_writes_an_annotated_png(tmp_path, capsys):
    out = tmp_path / "annotated.png"
    assert main(["point", "sample", "the red mug", "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "molmo-agent/default"
    assert report["image_size"] == [960, 640]
    assert isinstance(report["points"], list)
    assert report["points"] or report["reason"], "no points must come with a reason"
    assert set(report["timings_ms"]) == {"decode", "preprocess", "model", "parse"}
    with Image.open(out) as annotated:
        assert annotated.size == (960, 640)


def test_point_with_a_corrupt_image_is_one_clear_error_line(tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    assert main(["point", str(bad), "the mug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("molmo-agent: error: could not decode image file")
    assert "Traceback" not in err


def test_point_with_a_missing_model_offline_is_one_clear_error_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["point", "sample", "the mug", "--model", "allenai/Molmo2-4B"]) == 2
    err = capsys.readouterr().err
    assert "allenai/Molmo2-4B" in err and "HF_HOME" in err


def test_point_with_an_empty_query_is_a_clear_error(capsys):
    assert main(["point", "sample", "  "]) == 2
    assert "empty" in capsys.readouterr().err


def test_models_lists_the_known_models_with_local_availability(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["models", "--json"]) == 0
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["allenai/Molmo2-8B"]["local"] == "no"
    assert rows["molmo-agent/default"]["local"] == "yes"
    assert rows["allenai/Molmo-72B-0924"]["family"] == "molmo1"


def test_build_tiny_then_point_with_it(tmp_path, capsys):
    folder = tmp_path / "tiny"
    assert main(["build-tiny", str(folder), "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["point", "sample", "the ball", "--model", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == str(folder)


def test_bench_reports_stages_and_tokens_saved(capsys):
    assert main(["bench", "--runs", "2", "--json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    for key in ("decode_ms", "preprocess_ms", "model_ms", "parse_ms", "point_end_to_end_ms"):
        assert numbers[key] > 0
    assert numbers["tokens_fixed_budget"] == 64
    assert 0 < numbers["tokens_with_stop"] < 64
    assert numbers["tokens_saved"] == 64 - numbers["tokens_with_stop"]


def test_console_script_is_installed():
    script = shutil.which("molmo-agent") or str(Path(sys.executable).with_name("molmo-agent"))
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "point" in result.stdout and "models" in result.stdout


def test_build_tiny_offers_every_preset_and_only_those():
    from molmo_agent.cli import _build_parser
    from molmo_agent.training.tiny_molmo2 import PRESETS

    parser = _build_parser()
    for preset in PRESETS:
        assert parser.parse_args(["build-tiny", "out", "--preset", preset]).preset == preset
    (build_tiny,) = [
        a for a in parser._subparsers._group_actions[0].choices["build-tiny"]._actions if a.dest == "preset"
    ]
    assert set(build_tiny.choices) == set(PRESETS)
