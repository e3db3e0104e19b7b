"""No path from pixels to clicks distorts coordinates: plain, rescaled, BGR and gRPC views score the same.

The model is the tiny Molmo2 with its answer forced to the target's true position in per mille (a real
forward pass and decode per query, the text known): an oracle at the model's output edge. Everything after
it is the production path (early stop, parser, PointPolicy, geometry back to env pixels, env reward), so
any coordinate bug in it shows up as a missed tap. The trained model's own accuracy is measured by
``tests/test_default_model.py`` and ``benchmarks/eval_default_model.py``.
"""

from __future__ import annotations

import pytest

import molmo_agent as ma
from molmo_agent.backends.registry import resolve
from molmo_agent.backends.scripted import ScriptedMolmo2Backend
from molmo_agent.model import MolmoModel
from molmo_agent.parsing import format_points_molmo2
from molmo_agent.server.app import BackgroundServer
from molmo_agent.server.config import ServerConfig
from molmo_agent.training.evaluate import View, evaluate_synthetic_gui, evaluate_tabletop, miss_kinds


def _gui_targets(seeds) -> dict[str, tuple[float, float]]:
    """Phrase -> normalised centre of the target, for seeds whose phrase is unique among them."""
    from molmo_envs.synthetic_gui import SyntheticGuiEnv

    env = SyntheticGuiEnv(screen_size=(540, 960), task="icon", difficulty=0, random_size=False)
    found: dict[str, list] = {}
    for seed in seeds:
        _, info = env.reset(seed=seed)
        x0, y0, x1, y1 = info["target"]["box"]
        found.setdefault(info["target"]["phrase"], []).append((seed, ((x0 + x1) / 1080, (y0 + y1) / 1920)))
    return {phrase: hits[0] for phrase, hits in found.items() if len(hits) == 1}


@pytest.fixture(scope="module")
def oracle(tiny_dir):
    targets = _gui_targets(range(40))
    backend = ScriptedMolmo2Backend(resolve(str(tiny_dir)))
    backend.end_after_script = True

    def answer(request) -> str:
        for phrase, (_, point) in targets.items():
            if phrase.removeprefix("the ") in request.prompt:
                return format_points_molmo2([[point]], phrase)
        return "There are none."

    backend.script = answer
    seeds = sorted(seed for seed, _ in targets.values())[:12]
    return MolmoModel(backend), seeds


@pytest.fixture(scope="module")
def plain(oracle):
    model, seeds = oracle
    return evaluate_synthetic_gui(model, seeds)


def test_the_oracle_answers_tap_every_target(plain):
    assert plain.success_rate == 1.0, plain.records


@pytest.mark.parametrize("view", [View(scale=0.5), View(scale=1.5), View(bgr=True)], ids=lambda v: v.name)
def test_rescaled_and_bgr_views_keep_every_tap_on_target(oracle, plain, view):
    model, seeds = oracle
    result = evaluate_synthetic_gui(model, seeds, view)
    assert result.success_rate == 1.0, result.records
    for ours, theirs in zip(result.records, plain.records, strict=True):  # same place, within a pixel
        assert abs(ours["point"][0] - theirs["point"][0]) <= 1.0
        assert abs(ours["point"][1] - theirs["point"][1]) <= 1.0


def test_the_grpc_server_and_client_keep_every_tap_on_target(oracle, plain):
    model, seeds = oracle
    config = ServerConfig(port=0, warmup=False, max_batch_size=4, max_batch_wait_ms=5)
    with BackgroundServer(config, model) as server:
        result = evaluate_synthetic_gui(ma.load_model(f"grpc://{server.target}"), seeds)
    assert [r["point"] for r in result.records] == [r["point"] for r in plain.records]


def test_tabletop_oracle_points_lift_to_the_object(tiny_dir):
    from molmo_envs.tabletop import TabletopPointingEnv

    env = TabletopPointingEnv()
    answers, seeds = {}, []
    for seed in range(12):
        env.reset(seed=seed)
        point = env.oracle_point()
        if env.instruction not in answers:
            answers[env.instruction] = (point.x_norm, point.y_norm)
            seeds.append(seed)
    backend = ScriptedMolmo2Backend(resolve(str(tiny_dir)))
    backend.end_after_script = True
    backend.script = lambda request: format_points_molmo2([[answers[request.prompt]]], "object")
    result = evaluate_tabletop(MolmoModel(backend), seeds)
    assert result.success_rate == 1.0, result.records
    # per-mille rounding moves the point by < 0.4 px: still on the object, whose error is then 0
    assert result.median_error_m is not None and result.median_error_m < 0.005, result.records


def test_records_name_the_element_each_tap_hit(plain):
    assert all(r["hit"] == r["target"] and r["hit_element"] == r["target_element"] for r in plain.records)
    assert miss_kinds(plain.records) == {}


def test_miss_kinds_say_which_attribute_a_missed_tap_got_wrong():
    def icon(color: str, shape: str) -> dict:
        return {"kind": "icon", "color": color, "shape": shape, "box": [40, 40, 80, 80]}

    def miss(hit, point=(50.0, 50.0)):
        return {
            "success": False,
            "point": list(point),
            "hit_element": hit,
            "target_element": icon("teal", "hexagon"),
        }

    list_item = {"kind": "list_item", "color": "gray", "shape": "", "box": [0, 100, 540, 160]}
    records = [
        miss(icon("teal", "square")),
        miss(icon("teal", "cross")),
        miss(icon("red", "hexagon")),
        miss(icon("red", "star")),
        miss(list_item),
        miss(None, point=(100.0, 60.0)),  # 20 px right of a 40 px box: near
        miss(None, point=(300.0, 60.0)),
        {**miss(None), "point": None},
        {**miss(icon("teal", "hexagon")), "success": True},
    ]
    assert miss_kinds(records) == {
        "icon of the same colour, other shape": 2,
        "icon of the same shape, other colour": 1,
        "icon of other colour and shape": 1,
        "other element (list item)": 1,
        "blank, near the target": 1,
        "blank, far from the target": 1,
        "no action": 1,
    }
