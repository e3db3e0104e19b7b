"""benchmarks/diagnose_pointing.py: the image-pathway measurements run on a real (tiny) Molmo2 checkpoint."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "diagnose_pointing.py"


def _module():
    spec = importlib.util.spec_from_file_location("diagnose_pointing", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_diagnosis_of_a_fresh_model_reports_every_layer(tiny_dir, capsys):
    diagnose = _module()
    result = diagnose.diagnose(str(tiny_dir), seeds=10)
    layers = 2  # the tiny preset's text model
    assert result.feature_size > 0 and all(math.isfinite(v) and v <= 1 for v in result.position_r2)
    assert len(result.image_attention) == len(result.target_attention) == layers
    assert all(0 < share <= 1 for share in result.image_attention)
    assert diagnose.main([str(tiny_dir), "--seeds", "10"]) == 0
    assert "position R^2" in capsys.readouterr().out
    on_screens = diagnose.diagnose(str(tiny_dir), seeds=4, data="synthetic_gui:icon,d0,fill")
    assert len(on_screens.target_attention) == layers and on_screens.feature_size > 0
    reading = result.reading  # one token per digit here: no whole coordinate of the model's own
    assert reading is not None and reading.model_error is None and all(0 <= h < 4 for h in reading.heads)
    assert all(0 <= share <= 1 for share in reading.picks)
    assert all(0 <= error <= 1000 for error in reading.attended_error)


def test_reading_compares_the_attended_place_with_the_models_own_coordinate(tmp_path):
    """With one token per coordinate the reading also reports the model's own coordinate's distance."""
    from dataclasses import replace

    from molmo_agent.training.tiny_molmo2 import PRESETS, build_tiny_molmo2

    diagnose = _module()
    folder = build_tiny_molmo2(tmp_path / "numbers", replace(PRESETS["tiny"], tokenizer="numbers"))
    reading = diagnose.diagnose(str(folder), seeds=6).reading
    assert reading.model_error is not None and all(0 <= e <= 1000 for e in reading.model_error)
    assert all(0 <= error <= 1000 for error in reading.attended_error)


def test_the_position_probe_reads_a_linear_code_and_not_noise():
    diagnose = _module()
    rng = np.random.default_rng(0)
    positions = rng.random((400, 2))
    coded = np.hstack([positions, rng.normal(size=(400, 6)) * 0.01, np.ones((400, 1))])
    noise = rng.normal(size=(400, 9))
    assert min(diagnose.linear_r2(coded, positions)) > 0.9
    assert max(diagnose.linear_r2(noise, positions)) < 0.2
