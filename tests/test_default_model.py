"""The shipped default model really points, through every path from pixels to clicks.

A fast version (30 held-out seeds) of the numbers in ``benchmarks/eval_default_model.py``. Each threshold is
checked to be one that wrong coordinates would fail: the same predictions, flipped, scaled or offset, are
scored with the same rule and must fall below it.
"""

from __future__ import annotations

import numpy as np
import pytest

import molmo_agent as ma
from molmo_agent.server.app import BackgroundServer
from molmo_agent.server.config import ServerConfig
from molmo_agent.training.evaluate import View, evaluate_synthetic_gui, evaluate_tabletop

SEEDS = range(30)
GUI_THRESHOLD = 0.75
TABLETOP_MEDIAN_M = 0.03
SCREEN = (540, 960)


def _default_is_trained() -> bool:
    import json

    from molmo_agent.backends.registry import DEFAULT_MODEL_DIR

    meta = json.loads((DEFAULT_MODEL_DIR / "molmo_agent.json").read_text())
    return "trained_by" in meta


trained = pytest.mark.skipif(
    not _default_is_trained(),
    reason="the embedded default is still the random tiny checkpoint: no trained model has met the bar yet",
)


@pytest.fixture(scope="module")
def default_model():
    return ma.load_model()


@pytest.fixture(scope="module")
def plain(default_model):
    return evaluate_synthetic_gui(default_model, SEEDS)


def _inside(point, box) -> bool:
    x0, y0, x1, y1 = box
    return x0 <= point[0] <= x1 and y0 <= point[1] <= y1


def _rate_with(records, change) -> float:
    """Success of the same predictions after ``change`` maps each point (a stand-in for a coordinate bug)."""
    hits = [
        r["point"] is not None and _inside(change(*r["point"]), r["target_element"]["box"]) for r in records
    ]
    return sum(hits) / len(records)


def test_the_default_is_a_small_molmo2_in_safetensors_with_easy_coordinates(default_model):
    """Every coordinate Molmo2 writes (per mille, three digits: ``007``, ``999``) spells the same way: one
    token for the whole value or one per digit, never a BPE merge that splits some values and not others."""
    from molmo_agent.backends.registry import DEFAULT_MODEL_DIR

    size_mb = sum(f.stat().st_size for f in DEFAULT_MODEL_DIR.iterdir()) / 2**20
    assert size_mb < 20
    assert (DEFAULT_MODEL_DIR / "model.safetensors").is_file()
    assert default_model.info.family == "molmo2"
    tokenizer = default_model.backend.tokenizer
    lengths = {len(tokenizer(f"{v:03d}", add_special_tokens=False)["input_ids"]) for v in range(1000)}
    assert lengths in ({1}, {3}), lengths


@trained
def test_default_model_taps_the_named_icon(plain):
    assert plain.success_rate >= GUI_THRESHOLD, plain.records
    assert plain.unparsed <= 2


@trained
def test_the_gui_threshold_would_catch_wrong_coordinates(plain):
    width, height = SCREEN
    bugs = {
        "x and y swapped": lambda x, y: (y * width / height, x * height / width),
        "y flipped": lambda x, y: (x, height - y),
        "x flipped": lambda x, y: (width - x, y),
        "half scale": lambda x, y: (x / 2, y / 2),
        "offset by 40 px": lambda x, y: (x + 40, y + 40),
    }
    assert _rate_with(plain.records, lambda x, y: (x, y)) == plain.success_rate
    for name, bug in bugs.items():
        assert _rate_with(plain.records, bug) < GUI_THRESHOLD, name


@trained
@pytest.mark.parametrize("view", [View(scale=0.5), View(scale=1.5), View(bgr=True)], ids=lambda v: v.name)
def test_rescaled_and_bgr_screenshots_give_the_same_success(default_model, plain, view):
    other = evaluate_synthetic_gui(default_model, SEEDS, view)
    assert abs(other.success_rate - plain.success_rate) <= 3 / len(SEEDS), (view.name, other.records)
    if view.bgr:  # the same pixels after the library's BGR conversion: the very same answers
        assert [r["answer"] for r in other.records] == [r["answer"] for r in plain.records]


@trained
def test_the_grpc_path_gives_the_same_answers(default_model, plain):
    config = ServerConfig(port=0, warmup=False, max_batch_size=4, max_batch_wait_ms=5)
    with BackgroundServer(config, default_model) as server:
        remote = ma.load_model(f"grpc://{server.target}")
        served = evaluate_synthetic_gui(remote, SEEDS)
    assert [r["point"] for r in served.records] == [r["point"] for r in plain.records]
    assert served.success_rate == plain.success_rate


@trained
def test_default_model_points_at_tabletop_objects_in_3d(default_model):
    from molmo_envs.tabletop import TabletopPointingEnv

    result = evaluate_tabletop(default_model, SEEDS)
    assert result.median_error_m is not None and result.median_error_m < TABLETOP_MEDIAN_M, result.records
    env = TabletopPointingEnv()
    width, height = env.image_size
    for bug in (lambda x, y: (width - x, y), lambda x, y: (x, height - y), lambda x, y: (x / 2, y / 2)):
        errors = []
        for record in result.records:
            env.reset(seed=record["seed"])
            point = bug(*record["point"]) if record["point"] is not None else (-1.0, -1.0)
            errors.append(env.step(np.array(point, dtype=np.float64))[4]["error_m"])
        assert np.median(errors) > TABLETOP_MEDIAN_M
