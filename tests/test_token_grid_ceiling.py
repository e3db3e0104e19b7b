"""benchmarks/token_grid_ceiling.py: how often tapping the centre of the token that holds an icon's centre
lands inside the icon, per token layout."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "token_grid_ceiling.py"


def _module():
    spec = importlib.util.spec_from_file_location("token_grid_ceiling", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_finer_grids_raise_the_ceiling_and_cells_are_placed_right():
    ceiling = _module()
    width, height = ceiling.SCREEN
    # a 54x96 box in the top-left tenth of each axis: the centre of the 10x10 cell holding it is its centre
    corner = [(0.0, 0.0, width / 10, height / 10)]
    assert ceiling.cell_centre_hit_rate(corner, 10, 10) == 1.0
    assert ceiling.cell_centre_hit_rate(corner, 1, 1) == 0.0  # the screen's centre is far from it
    # mirrored (flipped axes would miss it): the bottom-right box is hit from the bottom-right cell
    assert ceiling.cell_centre_hit_rate([(width * 0.9, height * 0.9, width, height)], 10, 10) == 1.0
    boxes, _ = ceiling.icon_boxes(40)
    rates = [ceiling.cell_centre_hit_rate(boxes, n, n) for n in (4, 16, 64)]
    assert rates[0] < rates[1] <= rates[2] and rates[2] > 0.95


def test_the_script_prints_each_presets_views(capsys):
    ceiling = _module()
    assert ceiling.main(["--seeds", "20", "--preset", "pointer-words", "pointer-numbers-fine"]) == 0
    out = capsys.readouterr().out
    assert "pointer-words" in out and "14x8 ->" in out
    assert "pointer-numbers-fine" in out and "20x12 ->" in out
