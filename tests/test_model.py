"""End to end on a tiny Molmo2 checkpoint loaded through ``ma.load_model(local_dir)``."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import molmo_agent as ma
from molmo_agent.backends.base import GenerationOptions, Request
from molmo_agent.model import MolmoModel


def png_bytes(size, colour=(90, 140, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_tiny_model_loads_on_cpu_fp32(tiny_model):
    info = tiny_model.info
    assert info.family == "molmo2"
    assert info.device == "cpu"
    assert info.dtype == "float32"
    assert 0 < info.num_parameters < 2_000_000


def test_point_and_generate_are_deterministic_and_points_lie_in_the_image(tiny_model):
    """A random model says anything; what must hold is what the pipeline guarantees: greedy answers repeat,
    every point is inside the original image with consistent pixel and normalised coordinates, and the
    budget bounds the answer."""
    image = Image.new("RGB", (320, 200), (10, 200, 30))
    first = tiny_model.point_detailed(image, "the green screen")
    again = tiny_model.point_detailed(image, "the green screen")
    assert first.text == again.text and first.points == again.points
    for point in first.points:
        assert 0 <= point.x < 320 and 0 <= point.y < 200
        assert point.x_norm == pytest.approx(point.x / 320) and point.y_norm == pytest.approx(point.y / 200)
    options = GenerationOptions(max_new_tokens=8)
    text = tiny_model.generate(image, "Describe this image.", options=options)
    assert text == tiny_model.generate(image, "Describe this image.", options=options)
    assert len(tiny_model.backend.processor.tokenizer(text)["input_ids"]) <= 8 + 2


def test_batched_generation_equals_one_by_one(tiny_model):
    images = [
        Image.new("RGB", (640, 360), (200, 40, 40)),
        Image.new("RGB", (300, 500), (20, 40, 200)),
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (123, 457, 3), dtype=np.uint8)),
    ]
    prompts = ["Point to the red mug.", "What colour is this?", "Describe the noise in detail."]
    options = GenerationOptions(max_new_tokens=12)
    batched = tiny_model.generate(images, prompts, options=options)
    single = [tiny_model.generate(img, p, options=options) for img, p in zip(images, prompts, strict=True)]
    assert batched == single
    assert len(set(batched)) > 1, "different images and prompts should give different random-model answers"


def test_batched_point_equals_one_by_one(tiny_model):
    images = [Image.new("RGB", (800, 450), (250, 250, 0)), Image.new("RGB", (240, 320), (0, 0, 0))]
    queries = ["the sun", "the dark"]
    batched = tiny_model.point_detailed(images, queries)
    single = [tiny_model.point_detailed(img, q) for img, q in zip(images, queries, strict=True)]
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.points for r in batched] == [r.points for r in single]


def test_forced_molmo2_answer_maps_to_original_pixels(scripted):
    scripted.backend.script = lambda request: '<points coords="1 1 500 250">red mug</points>'
    points = scripted.point(png_bytes((1280, 720)), "the red mug")
    assert len(points) == 1
    assert points[0].x == pytest.approx(640.0)
    assert points[0].y == pytest.approx(180.0)
    assert points[0].label == "red mug"


def test_forced_answer_multi_image_request_uses_each_images_size(scripted):
    scripted.backend.script = lambda request: '<points coords="1 1 500 500;2 1 250 750">mug</points>'
    first, second = Image.new("RGB", (1000, 400)), Image.new("RGB", (200, 800))
    points = scripted.point([first, second], "the mug")
    assert [(p.image_index, round(p.x, 3), round(p.y, 3)) for p in points] == [
        (0, 500.0, 200.0),
        (1, 50.0, 600.0),
    ]


def test_bgr_array_and_rgb_image_give_the_same_prompt_pixels(scripted):
    scripted.backend.script = lambda request: '<points coords="1 1 100 900">x</points>'
    rgb = np.zeros((300, 600, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    from_rgb = scripted.point_detailed(rgb, "the red")
    from_bgr = scripted.point_detailed(rgb[..., ::-1].copy(), "the red", bgr=True)
    assert from_rgb.points == from_bgr.points
    assert (from_rgb.points[0].x, from_rgb.points[0].y) == pytest.approx((60.0, 270.0))


def test_large_image_is_downscaled_for_the_model_but_points_use_original_pixels(scripted_backend):
    scripted_backend.script = lambda request: '<points coords="1 1 250 500">dot</points>'
    model = MolmoModel(scripted_backend, model_input_max_pixels=200_000)
    seen_sizes = []
    original_preprocess = scripted_backend.preprocess

    def spy(requests):
        seen_sizes.extend(img.size for r in requests for img in r.images)
        return original_preprocess(requests)

    scripted_backend.preprocess = spy
    try:
        points = model.point(Image.new("RGB", (3000, 2000)), "the dot")
    finally:
        del scripted_backend.preprocess
    assert seen_sizes[0][0] * seen_sizes[0][1] <= 200_000
    assert (points[0].x, points[0].y) == pytest.approx((750.0, 1000.0))


def test_generation_stops_once_the_coordinates_are_written(scripted):
    answer = '<points coords="1 1 412 655">Save button</points>'
    scripted.backend.script = lambda request: answer
    result = scripted.point_detailed(Image.new("RGB", (1280, 720)), "the Save button")
    decoded = '<points coords="1 1 412 655"'  # the echoed label is not decoded: read_points closes the tag
    answer_tokens = len(scripted.backend.tokenizer.encode(decoded, add_special_tokens=False))
    assert result.num_generated_tokens == answer_tokens
    assert result.text == answer


def test_act_maps_percent_click_to_pixels(scripted):
    scripted.backend.script = lambda request: "Plan: open the menu. Action: Click(50.0, 25.0)"
    result = scripted.act_detailed(Image.new("RGB", (1280, 720)), "Open settings", step="Tap the menu")
    assert result.action == ma.Action(type="click", x=640.0, y=180.0)
    prompt = scripted.backend.prompt_text(
        Request((Image.new("RGB", (8, 8)),), "high_level: Open settings low_level: Tap the menu")
    )
    assert "high_level: Open settings low_level: Tap the menu" in prompt


def test_act_returns_none_with_reason_for_garbage(scripted):
    scripted.backend.script = lambda request: "I am not sure what to do here"
    result = scripted.act_detailed(Image.new("RGB", (100, 100)), "Open settings")
    assert result.action is None
    assert result.reason


def test_count_uses_the_points_of_the_answer(scripted):
    scripted.backend.script = lambda request: (
        'Counting the <points coords="1 1 100 100 2 200 200 3 300 300">mugs</points> shows a total of 3.'
    )
    assert scripted.count(Image.new("RGB", (500, 500)), "mugs") == 3
    scripted.backend.script = lambda request: "There are none."
    assert scripted.count(Image.new("RGB", (500, 500)), "mugs") == 0


@pytest.mark.parametrize("query", ["", "   ", "."])
def test_empty_query_is_a_clear_error(tiny_model, query):
    with pytest.raises(ma.QueryError, match="empty"):
        tiny_model.point(Image.new("RGB", (10, 10)), query)


def test_corrupt_image_bytes_are_a_clear_error(tiny_model):
    with pytest.raises(ma.ImageInputError, match="decode"):
        tiny_model.point(b"\x89PNG\r\n\x1a\nnot really a png", "the mug")


def test_batch_needs_one_image_per_query(tiny_model):
    with pytest.raises(ma.QueryError, match="2 images"):
        tiny_model.point(Image.new("RGB", (10, 10)), ["a", "b"])


def test_import_is_light():
    heavy = "('torch', 'transformers', 'cv2', 'grpc', 'pyautogui')"
    code = f"import sys, molmo_agent; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
