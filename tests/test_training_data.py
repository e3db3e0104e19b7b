"""Supervision records and batches: every source renders answers the agent's own parser reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import molmo_agent as ma
from molmo_agent.training.batches import (
    IGNORE_INDEX,
    BatchStream,
    Mixture,
    SourceSpec,
    TurnCollator,
    pack_pixels,
    unpack_pixels,
)
from molmo_agent.training.examples import (
    GUI_SCREEN_SIZES,
    DataError,
    android_control_examples,
    pixmo_points_examples,
    shapes_example,
    synthetic_gui_example,
    tabletop_example,
)


@pytest.fixture(scope="module")
def processor(tiny_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_dir)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("synthetic_gui", SourceSpec("synthetic_gui", None, 1.0)),
        ("synthetic_gui:icon,d0,fill=0.4", SourceSpec("synthetic_gui", "icon,d0,fill", 0.4)),
        ("tabletop:max2=2", SourceSpec("tabletop", "max2", 2.0)),
        ("shapes:max6=0.25", SourceSpec("shapes", "max6", 0.25)),
        ("pixmo:/data/points.jsonl", SourceSpec("pixmo", "/data/points.jsonl", 1.0)),
    ],
)
def test_source_specs_parse(text, expected):
    assert SourceSpec.parse(text) == expected


def test_source_spec_options_reach_the_generators():
    assert SourceSpec.parse("synthetic_gui:icon,d2,fill").generator_options() == {
        "task": "icon",
        "difficulty": 2,
        "random_size": False,
    }
    assert SourceSpec.parse("synthetic_gui:icon,phone").generator_options() == {
        "task": "icon",
        "phone_only": True,
    }
    assert SourceSpec.parse("tabletop:max1").generator_options() == {"max_objects": 1}
    assert SourceSpec.parse("shapes:max3").generator_options() == {"max_shapes": 3}
    assert SourceSpec.parse("shapes:max1,x3").generator_options() == {"max_shapes": 1, "scale": 3.0}
    assert SourceSpec.parse("shapes:x2.5").generator_options() == {"scale": 2.5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("imagenet", "unknown data source"),
        ("tabletop=-1", "must be > 0"),
        ("tabletop=lots", "not a number"),
        ("pixmo", "needs a path"),
        ("synthetic_gui:swipe", "task must be one of"),
        ("synthetic_gui:icon,d7", "unknown synthetic_gui option"),
        ("tabletop:3", "maxN"),
        ("shapes:six", "shapes takes maxN"),
        ("shapes:max1,x9", "xS"),
        ("tabletop:max2,x2", "tabletop takes maxN"),
    ],
)
def test_bad_source_specs_say_what_is_wrong(text, message):
    with pytest.raises(DataError, match=message):
        SourceSpec.parse(text)


def test_scaled_shapes_are_larger_and_still_pointed_at_their_centre():
    """``scale`` grows the drawn shape; the answer still names the colour found at the point."""
    for seed in range(1_000_200, 1_000_206):
        plain, big = shapes_example(seed, max_shapes=1), shapes_example(seed, max_shapes=1, scale=3)
        background = tuple(big.image[0, 0])
        covered = [int((e.image != np.array(background)).any(axis=2).sum()) for e in (plain, big)]
        assert covered[1] > 4 * covered[0]
        (point,) = ma.parse_points(big.answer, image_sizes=[big.image.shape[1::-1]])
        assert tuple(big.image[int(point.y), int(point.x)]) != background
    with pytest.raises(ValueError, match="must be between"):
        shapes_example(1_000_200, scale=10)


def test_a_gui_example_points_inside_its_target_in_molmo2_and_molmo1_formats():
    from molmo_envs.synthetic_gui import SyntheticGuiEnv

    for family in ("molmo2", "molmo1"):
        example = synthetic_gui_example(1_000_123, family, task="icon", difficulty=0, random_size=False)
        height, width = example.image.shape[:2]
        env = SyntheticGuiEnv(screen_size=(width, height), task="icon", difficulty=0, random_size=False)
        _, info = env.reset(seed=1_000_123)
        (point,) = ma.parse_points(example.answer, image_sizes=[(width, height)])
        x0, y0, x1, y1 = info["target"]["box"]
        assert x0 <= point.x <= x1 and y0 <= point.y <= y1
        assert info["target"]["phrase"].removeprefix("the ") in example.prompt
    assert example.answer.startswith("<point x=")


def test_phone_only_gui_examples_are_portrait_screens():
    shapes = {synthetic_gui_example(1_000_000 + i, phone_only=True).image.shape[:2] for i in range(12)}
    assert shapes == {(h, w) for w, h in GUI_SCREEN_SIZES if h > w}


def test_a_shapes_example_points_at_the_named_colour_in_both_formats():
    from molmo_envs.gui_scenes import COLORS

    for seed in range(1_000_000, 1_000_012):
        for family in ("molmo2", "molmo1"):
            example = shapes_example(seed, family, max_shapes=5)
            height, width = example.image.shape[:2]
            (point,) = ma.parse_points(example.answer, image_sizes=[(width, height)])
            colour = example.prompt.removeprefix("Point to the ").split()[0]
            pixel = example.image[round(point.y), round(point.x)]
            assert np.abs(pixel.astype(int) - COLORS[colour]).max() <= 2, (seed, colour, pixel)
            assert example.prompt.rstrip(".").endswith("icon") and example.source == "shapes"
    again = shapes_example(1_000_003, "molmo2", max_shapes=5)
    assert np.array_equal(again.image, shapes_example(1_000_003, "molmo2", max_shapes=5).image)
    assert example.answer.startswith("<point x=")


def test_a_tabletop_example_points_at_the_oracle_pixel():
    example = tabletop_example(1_000_007, max_objects=1)
    height, width = example.image.shape[:2]
    (point,) = ma.parse_points(example.answer, image_sizes=[(width, height)])
    from molmo_envs.tabletop import TabletopPointingEnv

    env = TabletopPointingEnv(image_size=(width, height), max_objects=1)
    env.reset(seed=1_000_007)
    oracle = env.oracle_point()
    assert abs(point.x - oracle.x) <= width / 1000 + 1e-6 and abs(point.y - oracle.y) <= height / 1000 + 1e-6


def _write_pixmo(folder, lines):
    Image.new("RGB", (200, 100), (10, 200, 30)).save(folder / "a.png")
    path = folder / "points.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_pixmo_points_jsonl_renders_one_many_and_no_points(tmp_path):
    path = _write_pixmo(
        tmp_path,
        [
            {"image": "a.png", "label": "green box", "points": [[50, 25]]},
            {"image": "a.png", "label": "dots", "points": [[20, 10], [180, 90]]},
            {"image": str(tmp_path / "a.png"), "label": "cat", "points": []},
        ],
    )
    one, many, none = pixmo_points_examples(path)
    assert [(p.x, p.y) for p in ma.parse_points(one.answer, image_sizes=[(200, 100)])] == [(50.0, 25.0)]
    assert len(ma.parse_points(many.answer, image_sizes=[(200, 100)])) == 2
    assert none.answer == "There are none."
    assert one.image.shape == (100, 200, 3)
    v1 = pixmo_points_examples(path, "molmo1")[0]
    assert v1.answer.startswith('<point x="25.0" y="25.0"')


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"image": "a.png", "points": []}, r"points.jsonl:1: expected"),
        ({"image": "a.png", "label": " ", "points": []}, "the label is empty"),
        ({"image": "a.png", "label": "x", "points": [[500, 5]]}, "outside the 200x100 image"),
        ({"image": "missing.png", "label": "x", "points": []}, "points.jsonl:1"),
    ],
)
def test_pixmo_errors_name_the_line_and_the_problem(tmp_path, line, message):
    with pytest.raises(DataError, match=message):
        pixmo_points_examples(_write_pixmo(tmp_path, [line]))


def test_pixmo_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no JSONL file"):
        pixmo_points_examples(tmp_path / "nope.jsonl")


def test_android_control_steps_become_molmo_action_strings(android_control_dir):
    from molmo_envs.androidcontrol.episodes import iter_episodes

    examples = list(android_control_examples(android_control_dir, split="test"))
    truths = [
        (episode.action(i), episode.screenshot_sizes[i])
        for episode in iter_episodes(android_control_dir, "test")
        for i in range(episode.num_steps)
    ]
    assert examples and len(examples) == len(truths)
    for example, (truth, size) in zip(examples, truths, strict=True):
        parsed = ma.parse_action(example.answer, image_size=size)
        assert parsed.type == truth.type
        if truth.point is not None:
            assert abs(parsed.x - truth.x) <= size[0] / 1000 + 0.5
            assert abs(parsed.y - truth.y) <= size[1] / 1000 + 0.5
        assert example.prompt.startswith("high_level: ") and " low_level: " in example.prompt


def test_mixture_batches_are_a_function_of_seed_and_index():
    mixture = Mixture([SourceSpec.parse("synthetic_gui:icon"), SourceSpec.parse("tabletop:max1")])
    first = mixture.batch_examples(0, 5, 4)
    again = mixture.batch_examples(0, 5, 4)
    other = mixture.batch_examples(0, 6, 4)
    assert [e.answer for e in first] == [e.answer for e in again]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert [e.answer for e in first] != [e.answer for e in other]


def test_collator_puts_the_loss_on_answer_tokens_only(processor):
    mixture = Mixture([SourceSpec.parse("synthetic_gui:icon"), SourceSpec.parse("tabletop:max1")])
    examples = mixture.batch_examples(0, 0, 3)
    batch = TurnCollator(processor)(examples)
    tokenizer = processor.tokenizer
    for row, example in enumerate(examples):
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX]
        assert tokenizer.decode(labelled) == example.answer + "<|im_end|>"
        prompt_ids = batch["input_ids"][row][batch["labels"][row] == IGNORE_INDEX]
        assert example.prompt in tokenizer.decode(prompt_ids)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_collated_pixels_equal_the_inference_paths(processor):
    """The collator hands the processor tensors (faster); the agent hands it PIL images: same values."""
    examples = [synthetic_gui_example(1_000_000 + i, task="icon") for i in range(2)]
    examples.append(tabletop_example(1_000_005))
    for example in examples:
        batch = TurnCollator(processor)([example])
        reference = processor(
            images=[Image.fromarray(example.image)], text=["<|image|>"], return_tensors="pt"
        )
        assert torch.equal(batch["pixel_values"], reference["pixel_values"])
        assert torch.equal(batch["image_token_pooling"], reference["image_token_pooling"])


def test_packed_pixels_restore_the_processors_values(processor):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8))
    batch = dict(processor(images=[image], text=["<|image|>hello"], return_tensors="pt"))
    original = batch["pixel_values"].clone()
    stats = processor.image_processor.image_mean, processor.image_processor.image_std
    pack_pixels(batch, *stats)
    assert batch["pixel_values_u8"].dtype.is_floating_point is False
    unpack_pixels(batch, *stats)
    assert float((batch["pixel_values"] - original).abs().max()) < 1e-6


def test_batch_stream_splits_indices_across_workers(processor):
    stream = BatchStream(
        Mixture([SourceSpec.parse("tabletop:max1")]), TurnCollator(processor), 2, seed=3, start=7
    )
    first = next(iter(stream))
    assert torch_equal(first["input_ids"], stream.build(7)["input_ids"])


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())
