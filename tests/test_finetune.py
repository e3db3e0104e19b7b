"""``molmo-agent finetune`` on the tiny random Molmo2: it learns, saves loadable checkpoints and resumes."""

from __future__ import annotations

import json

import pytest
import torch

import molmo_agent as ma
from molmo_agent.cli import main
from molmo_agent.training import FinetuneConfig, FinetuneError, finetune
from molmo_agent.training.pointer_recipe import PointerObjective, PointerRecipe
from molmo_agent.training.trainer import coordinate_digit_losses, latest_checkpoint, learning_rate


def _history(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def _short_single_shape_run(tiny_dir, out, **overrides) -> FinetuneConfig:
    """40 steps on single shapes, one checkpoint: long enough for an auxiliary loss to fall measurably."""
    return _config(tiny_dir, out, data=("shapes:max1",), steps=40, save_every=40, **overrides)


def _recipe(**knobs) -> PointerObjective:
    """The embedded default's recipe (molmo_agent/training/pointer_recipe.py) with these knobs."""
    return PointerObjective(PointerRecipe(**knobs))


def _config(tiny_dir, out, **overrides) -> FinetuneConfig:
    settings = {
        "model": str(tiny_dir),
        "out_dir": out,
        "data": ("synthetic_gui:icon", "tabletop:max1"),
        "steps": 30,
        "batch_size": 4,
        "lr": 3e-3,
        "warmup_steps": 3,
        "eval_every": 0,
        "save_every": 15,
        "progress": False,
    }
    return FinetuneConfig(**(settings | overrides))


def _weights(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def short_run(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune")
    return _config(tiny_dir, out), finetune(_config(tiny_dir, out))


def test_a_short_run_reduces_the_answer_loss(short_run):
    config, _ = short_run
    losses = [h["loss"] for h in _history(config.out_dir) if "loss" in h]
    assert len(losses) == 3
    assert losses[-1] < 0.7 * losses[0], losses  # 30 steps: the format is being learnt


def test_history_logs_the_size_of_the_image_features(short_run):
    rows = [h for h in _history(short_run[0].out_dir) if "loss" in h]
    assert rows and all(h["image_rms"] > 0 for h in rows)


def test_history_splits_the_coordinate_loss_by_digit_place(short_run):
    config, _ = short_run
    records = [r for r in _history(config.out_dir) if "loss" in r]
    assert all(set(r["digits"]) == {"hundreds", "tens", "units"} for r in records)
    assert all(0 <= value < 20 for r in records for value in r["digits"].values())


def test_digit_losses_are_read_at_the_coordinate_digits_only(tiny_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    answer = '<points coords="1 1 736 188 2 045 900">red</points>'
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    labels = torch.tensor([[-100, -100, *ids], [-100] * (len(ids) + 2)])  # the second row has no answer
    losses = torch.full(labels.shape, 99.0)  # format, indices and label: never counted
    for number in ("736", "188", "045", "900"):
        at = answer.index(f" {number}") + 1
        for offset, value in enumerate((1.0, 2.0, 3.0)):  # hundreds, tens, units
            losses[0, 2 + at + offset] = value + (0.5 if number == "188" else 0.0)
    digits = coordinate_digit_losses(losses, labels, tokenizer)
    assert digits == {"hundreds": 1.125, "tens": 2.125, "units": 3.125}
    assert coordinate_digit_losses(losses, labels[1:], tokenizer) == {}


def test_the_final_checkpoint_reloads_and_answers_in_the_trained_format(short_run, tiny_dir):
    config, final = short_run
    assert (final / "model.safetensors").is_file() and (final / "processor_config.json").is_file()
    before, after = _weights(tiny_dir), _weights(final)
    assert any(not torch.equal(before[name], after[name]) for name in before)
    model = ma.load_model(str(final))
    result = model.point_detailed(ma.load_image(_screen()), "the red star icon")
    assert result.text.startswith("<points")  # the untrained model writes random bytes
    assert json.loads((final / "molmo_agent.json").read_text())["step"] == 30
    assert (config.out_dir / "learning_curve.png").stat().st_size > 1000


def _screen():
    from molmo_envs.synthetic_gui import SyntheticGuiEnv

    obs, _ = SyntheticGuiEnv(task="icon").reset(seed=0)
    return obs["screenshot"]


def test_resume_continues_from_the_saved_step(tiny_dir, tmp_path):
    finetune(_config(tiny_dir, tmp_path, steps=6, save_every=3, lr=1e-3))
    assert latest_checkpoint(tmp_path).name == "checkpoint-6"
    saved = _weights(tmp_path / "checkpoint-6")
    final = finetune(_config(tiny_dir, tmp_path, steps=9, save_every=3, lr=1e-3))
    steps = [h["step"] for h in _history(tmp_path)]
    assert steps == sorted(set(steps)) and steps[-1] == 9 and 6 in steps
    assert json.loads((final / "molmo_agent.json").read_text())["step"] == 9
    resumed = _weights(final)
    assert any(not torch.equal(saved[name], resumed[name]) for name in saved)


def test_resume_refuses_a_different_recipe(tiny_dir, tmp_path):
    finetune(_config(tiny_dir, tmp_path, steps=2, save_every=2))
    with pytest.raises(FinetuneError, match="batch_size"):
        finetune(_config(tiny_dir, tmp_path, steps=4, save_every=2, batch_size=2))


def test_lora_trains_adapters_and_saves_a_merged_checkpoint(tiny_dir, tmp_path):
    pytest.importorskip("peft")
    final = finetune(_config(tiny_dir, tmp_path, steps=3, lora_rank=4, save_every=3))
    assert (tmp_path / "checkpoint-3" / "adapter" / "adapter_model.safetensors").is_file()
    before, merged = _weights(tiny_dir), _weights(final)
    assert set(merged) == set(before)  # merged: the plain Molmo2 layout, no lora_ names
    assert any(not torch.equal(before[name], merged[name]) for name in before)
    ma.load_model(str(final))


def test_vision_lr_scale_slows_only_the_image_pathway(tiny_dir, tmp_path):
    """The ViT and adapter train at ``lr * vision_lr_scale``; the language model at ``lr``."""
    final = finetune(_config(tiny_dir, tmp_path, steps=3, save_every=3), _recipe(vision_lr_scale=1e-6))
    before, after = _weights(tiny_dir), _weights(final)

    def moved(part: str, inside: bool) -> float:
        return max(
            float((after[k].float() - before[k].float()).abs().max()) for k in before if (part in k) == inside
        )

    assert moved("vision_backbone", inside=True) < 1e-6 < 1e-4 < moved("vision_backbone", inside=False)
    # a resumed run uses its own scale, not the one saved with the optimizer state
    final = finetune(_config(tiny_dir, tmp_path, steps=6, save_every=3), _recipe(vision_lr_scale=1.0))
    before, after = after, _weights(final)
    assert moved("vision_backbone", inside=True) > 1e-4
    meta = json.loads((final / "molmo_agent.json").read_text())
    assert meta["recipe"]["name"] == "tiny-pointer" and meta["recipe"]["vision_lr_scale"] == 1.0
    with pytest.raises(FinetuneError, match="vision_lr_scale"):
        PointerRecipe(vision_lr_scale=0)
    with pytest.raises(FinetuneError, match="trained with recipe 'tiny-pointer'"):  # not by plain finetune
        finetune(_config(tiny_dir, tmp_path, steps=9, save_every=3))


def test_periodic_evaluation_runs_the_agent_path_on_held_out_seeds(tiny_dir, tmp_path):
    finetune(_config(tiny_dir, tmp_path, steps=2, eval_every=2, eval_seeds=1, save_every=2))
    evaluated = [h for h in _history(tmp_path) if "eval" in h]
    assert evaluated and set(evaluated[-1]["eval"]) >= {"synthetic_gui", "tabletop"}
    assert 0.0 <= evaluated[-1]["eval"]["synthetic_gui"] <= 1.0


def test_the_learning_curve_adds_a_digit_panel_when_the_history_has_digit_losses(tmp_path):
    from PIL import Image

    from molmo_agent.training.curve import plot_history

    plain = [{"step": s, "loss": 1.0 / s} for s in range(10, 200, 10)]
    with_digits = [h | {"digits": {"hundreds": 2.3 - h["step"] / 100, "tens": 2.3}} for h in plain]
    sizes = {}
    for name, history in (("plain", plain), ("digits", with_digits)):
        sizes[name] = Image.open(plot_history(history, tmp_path / f"{name}.png")).size
    assert sizes["digits"][1] > sizes["plain"][1]
    orange = Image.open(tmp_path / "digits.png").convert("RGB").getcolors(1 << 20)
    assert any(colour == (230, 120, 20) for _, colour in orange)  # the hundreds line is drawn
    teal = (30, 150, 150)
    assert not any(colour == teal for _, colour in orange)  # no attention loss in this history
    with_attend = [h | {"attend": 3.0 - h["step"] / 100} for h in with_digits]
    colours = Image.open(plot_history(with_attend, tmp_path / "attend.png")).convert("RGB").getcolors(1 << 20)
    assert any(colour == teal for _, colour in colours)  # the attention loss line is drawn
    magenta = (200, 40, 120)
    assert not any(colour == magenta for _, colour in colours)
    with_place = [h | {"place": 0.5 - h["step"] / 1000} for h in with_digits]
    colours = Image.open(plot_history(with_place, tmp_path / "place.png")).convert("RGB").getcolors(1 << 20)
    assert any(colour == magenta for _, colour in colours)  # the place loss line is drawn
    brown = (120, 80, 10)
    assert not any(colour == brown for _, colour in colours)
    with_value = [h | {"digits": {"value": 6.9 - h["step"] / 100}} for h in plain]
    colours = Image.open(plot_history(with_value, tmp_path / "value.png")).convert("RGB").getcolors(1 << 20)
    assert any(colour == brown for _, colour in colours)  # a one-token coordinate's loss, per digit
    assert plot_history([], tmp_path / "empty.png") is None


def test_learning_rate_warms_up_holds_and_decays():
    config = FinetuneConfig(model="x", out_dir="/tmp/x", steps=1000, warmup_steps=100, decay_fraction=0.25)
    assert learning_rate(config, 0) == pytest.approx(1e-5)
    assert learning_rate(config, 500) == pytest.approx(1e-3)
    assert learning_rate(config, 999) == pytest.approx(5e-5, rel=0.01)
    budget = FinetuneConfig(model="x", out_dir="/tmp/x", steps=10**6, warmup_steps=1, time_budget_s=100)
    assert learning_rate(budget, 10, elapsed_s=100) == pytest.approx(5e-5)


def test_recipe_knobs_are_refused_up_front():
    with pytest.raises(FinetuneError, match="reuse must be"):
        PointerRecipe(reuse=0)


def test_replay_trains_on_each_batch_reuse_times_from_recent_ones():
    from molmo_agent.training.pointer_recipe import replayed

    pulled: list[int] = []

    def stream():
        for index in range(50):
            pulled.append(index)
            yield index

    steps = replayed(stream(), reuse=3, seed=0, buffer_batches=4)
    drawn = [next(steps) for _ in range(60)]
    assert len(pulled) == 20  # 60 steps from 20 generated batches
    for position, batch in enumerate(drawn):
        newest = position // 3
        assert newest - 3 <= batch <= newest  # only the latest 4 batches are in the buffer
    assert len(set(drawn)) > 10 and drawn != sorted(drawn)  # drawn at random, not repeated in a row
    assert list(replayed(iter(range(5)), reuse=1, seed=0)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "steps must be"),
        ({"decay_fraction": 0}, "decay_fraction"),
        ({"data": ("x",)}, "unknown"),
    ],
)
def test_bad_settings_are_refused_up_front(tiny_dir, tmp_path, overrides, message):
    with pytest.raises(ma.MolmoAgentError, match=message):
        _config(tiny_dir, tmp_path, **overrides)


def test_the_cli_trains_and_reports_where_the_checkpoint_is(tiny_dir, tmp_path, capsys):
    args = ["finetune", "--model", str(tiny_dir), "--out", str(tmp_path), "--steps", "2", "--batch-size", "2"]
    code = main([*args, "--data", "tabletop:max1", "--eval-every", "0", "--no-progress"])
    assert code == 0
    assert str(tmp_path / "final") in capsys.readouterr().out
    assert main(["finetune", "--out", str(tmp_path / "b")]) == 2
    assert "--init-preset" in capsys.readouterr().err


def test_attention_targets_are_the_tokens_holding_the_answer_point(tiny_dir):
    """One image token per view, at the answer point's cell; only coordinate-digit positions supervised."""
    from transformers import AutoProcessor

    from molmo_agent.training.batches import IMAGE_PATCH_TOKEN, TurnCollator, view_cells
    from molmo_agent.training.examples import Example, shapes_example

    processor = AutoProcessor.from_pretrained(tiny_dir)
    shape = shapes_example(3, "molmo2", max_shapes=1)
    action = Example(shape.image, "Tap the button.", '{"action_type": "wait"}', "android_control")
    batch = TurnCollator(processor, attention_targets=True)([shape, action])
    patch_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_PATCH_TOKEN)
    ids = batch["input_ids"][0]
    image_positions = (ids == patch_id).nonzero().flatten().tolist()
    height, width = shape.image.shape[:2]
    (point,) = ma.parse_points(shape.answer, image_sizes=[(width, height)])
    queries = [q for q in batch["attend_query"][0].tolist() if q >= 0]
    assert len(queries) == 6  # x and y, three digits each
    assert batch["attend_axis"][0, :6].tolist() == [0, 0, 0, 1, 1, 1]
    for index, query in enumerate(queries):
        assert processor.tokenizer.decode(ids[query + 1]).strip().isdigit()  # it predicts a digit
        targets = batch["attend_target"][0, index].nonzero().flatten().tolist()
        assert len(targets) == 2 and all(t in image_positions for t in targets)
        offset = 0
        for (rows, cols), target in zip(view_cells(batch["image_grids"][0].tolist()), targets, strict=True):
            cell = image_positions.index(target) - offset
            row, col = divmod(cell, cols)
            assert col / cols <= point.x / width < (col + 1) / cols
            assert row / rows <= point.y / height < (row + 1) / rows
            offset += rows * cols
    assert (batch["attend_query"][1] == -1).all() and not batch["attend_target"][1].any()


def test_attention_loss_is_low_only_when_the_taught_head_looks_at_the_target():
    """Rows are the taught head's attention per layer; the first layer is left out."""
    from molmo_agent.training.pointer_recipe import attention_loss

    length = 10
    query = torch.tensor([[8, -1]])
    target = torch.zeros(1, 2, length, dtype=torch.bool)
    target[0, 0, 3] = True
    uniform = torch.full((1, 2, length), 1.0 / length)
    focused = uniform.clone()
    focused[0, 0] = 0.0
    focused[0, 0, 3] = 1.0  # the position at 8 looks at token 3 alone
    elsewhere = uniform.clone()
    elsewhere[0, 0] = 0.0
    elsewhere[0, 0, 4] = 1.0
    assert float(attention_loss([uniform, focused], query, target)) < 1e-5
    assert float(attention_loss([focused, uniform], query, target)) == pytest.approx(
        torch.log(torch.tensor(10.0))
    )
    assert float(attention_loss([uniform, elsewhere], query, target)) > 10
    assert attention_loss([uniform, focused], torch.full((1, 2), -1), target) is None
    assert attention_loss([], query, target) is None


@pytest.mark.parametrize("axis_heads", [False, True])
def test_taught_rows_are_the_eager_attention_of_the_taught_heads(tiny_dir, axis_heads):
    """The rows recomputed beside SDPA are exactly what the eager kernel weighs (padded batch, grouped
    key heads), the model's output is unchanged, and the rows carry a gradient."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from molmo_agent.training import attention_rows
    from molmo_agent.training.batches import TurnCollator
    from molmo_agent.training.examples import shapes_example

    processor = AutoProcessor.from_pretrained(tiny_dir)
    examples = [shapes_example(seed, "molmo2", max_shapes=3) for seed in (1, 2, 3)]
    batch = TurnCollator(processor, attention_targets=True)(examples)
    query, axis = batch.pop("attend_query"), batch.pop("attend_axis")
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "attend_target")}
    assert bool((inputs["attention_mask"] == 0).any()), "the examples should differ in length (padding)"
    heads = axis if axis_heads else torch.zeros_like(query)

    eager = AutoModelForImageTextToText.from_pretrained(tiny_dir, attn_implementation="eager")
    expected = eager(**inputs, output_attentions=True)
    fast = AutoModelForImageTextToText.from_pretrained(tiny_dir, attn_implementation="sdpa")
    with attention_rows.taught_attention(fast) as taught:
        taught.arm(query, heads)
        output = fast(**inputs)
        rows = taught.disarm()
        fast(**inputs)  # disarmed: nothing recorded
        assert taught.rows == []
    assert fast.config.get_text_config()._attn_implementation == "sdpa"  # back to plain SDPA
    assert attention_rows.TAUGHT_SDPA not in ALL_ATTENTION_FUNCTIONS  # and gone from transformers' table

    assert torch.allclose(output.logits, expected.logits, atol=1e-4)
    assert len(rows) == len(expected.attentions) and taught.query is None
    valid = query >= 0
    batch_rows = torch.arange(query.shape[0])[:, None].expand_as(query)
    for layer_rows, full in zip(rows, expected.attentions, strict=True):
        reference = full[batch_rows, heads, query.clamp(min=0)]
        assert torch.allclose(layer_rows[valid], reference[valid], atol=1e-5)
    rows[-1][valid].sum().backward()
    assert fast.model.language_model.layers[-1].self_attn.q_proj.weight.grad is not None


@pytest.mark.parametrize("axis_heads", [False, True])
def test_attention_supervision_trains_the_routing(tiny_dir, tmp_path, axis_heads):
    """With --attend-weight the history logs the attention loss, and it falls as the taught head (head 0,
    or a head per axis) learns to look."""
    finetune(
        _short_single_shape_run(tiny_dir, tmp_path), _recipe(attend_weight=1.0, attend_axis_heads=axis_heads)
    )
    attend = [h["attend"] for h in _history(tmp_path) if "attend" in h]
    assert len(attend) == 4 and attend[-1] < 0.8 * attend[0], attend
    assert "eager" not in (tmp_path / "final" / "config.json").read_text()  # inference keeps its default
    with pytest.raises(FinetuneError, match="attend_weight"):
        PointerRecipe(attend_weight=-1)
    with pytest.raises(FinetuneError, match="needs attend_weight > 0"):
        PointerRecipe(attend_axis_heads=True)


def test_place_targets_are_the_centres_of_the_whole_image_view_tokens(tiny_dir):
    """Each low-resolution token gets its cell centre; crop tokens and text get none (NaN)."""
    from transformers import AutoProcessor

    from molmo_agent.training.batches import IMAGE_PATCH_TOKEN, TurnCollator, view_cells
    from molmo_agent.training.examples import shapes_example

    processor = AutoProcessor.from_pretrained(tiny_dir)
    batch = TurnCollator(processor, place_targets=True)([shapes_example(5, "molmo2", max_shapes=2)])
    patch_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_PATCH_TOKEN)
    image_positions = (batch["input_ids"][0] == patch_id).nonzero().flatten().tolist()
    (rows, cols), (crop_rows, crop_cols) = view_cells(batch["image_grids"][0].tolist())
    target = batch["place_target"][0]
    placed = (~target[:, 0].isnan()).nonzero().flatten().tolist()
    assert placed == image_positions[: rows * cols] and crop_rows * crop_cols > 0
    first, right, below = target[placed[0]], target[placed[1]], target[placed[cols]]
    assert first.tolist() == pytest.approx([0.5 / cols, 0.5 / rows])
    assert float(right[0] - first[0]) == pytest.approx(1 / cols) and float(right[1]) == float(first[1])
    assert float(below[1] - first[1]) == pytest.approx(1 / rows) and float(below[0]) == float(first[0])
    assert "place_target" not in TurnCollator(processor)([shapes_example(5, "molmo2")])


def test_place_loss_is_low_only_when_the_features_carry_the_code():
    from molmo_agent.training.pointer_recipe import place_code, place_loss, place_readout

    width, placed = 64, 30
    readout = place_readout(width)
    assert torch.allclose(readout @ readout.T, torch.eye(readout.shape[0]), atol=1e-5)
    xy = torch.rand(1, placed, 2)
    target = torch.cat([xy, torch.full((1, 5, 2), float("nan"))], dim=1)  # 5 tokens without a place
    noise = torch.randn(1, placed + 5, width)
    code = place_code(xy[0])  # (placed, 8): four angles, so |code|^2 = 4
    # features = the code along the read-out plus noise off it, scaled so that RMS-normalising leaves the
    # code's length as it is: c^2 * 4 + |n|^2 = width * c^2
    off = noise - (noise @ readout.T) @ readout
    scale = off[0, :placed].norm(dim=-1, keepdim=True) / (width - 4) ** 0.5
    carrying = off.clone()
    carrying[0, :placed] += scale * (code @ readout)
    assert float(place_loss(carrying, target, readout)) < 1e-6
    assert float(place_loss(noise, target, readout)) > 0.3  # random features: about the code's variance
    shifted = place_code(torch.remainder(xy[0] + 0.25, 1.0))  # the code of places a quarter image away
    wrong = off.clone()
    wrong[0, :placed] += scale * (shifted @ readout)
    assert float(place_loss(wrong, target, readout)) > 0.5
    assert place_loss(noise, torch.full((1, placed + 5, 2), float("nan")), readout) is None
    assert place_readout(width).equal(readout)  # seeded: a resumed run scores the same read-out


def test_place_supervision_trains_the_image_features(tiny_dir, tmp_path):
    """With --place-weight the history logs the place loss, and it falls as the features learn it."""
    finetune(_short_single_shape_run(tiny_dir, tmp_path), _recipe(place_weight=1.0))
    place = [h["place"] for h in _history(tmp_path) if "place" in h]
    assert len(place) == 4 and place[-1] < 0.8 * place[0], place
    with pytest.raises(FinetuneError, match="place_weight"):
        PointerRecipe(place_weight=-1)
