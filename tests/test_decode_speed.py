"""Decode less (stop after the coordinates), decode faster (static cache + compiled step), prefill less
(vision features of a repeated frame): each must give the plain path's outputs."""

from __future__ import annotations

import pytest
from PIL import Image

from molmo_agent.backends.base import GenerationOptions, Request
from molmo_agent.backends.fast_decode import FastDecodeConfig, bucketed_length, compile_unavailable_reason
from molmo_agent.parsing import answer_is_complete, complete_cut_answer, coords_are_complete, parse_points

SIZES = [(640, 480), (320, 240)]


def _where(points):
    return [(p.x, p.y, p.image_index, p.object_id, p.timestamp) for p in points]


def _first_stop(answer: str) -> int:
    return next(i for i in range(len(answer) + 1) if coords_are_complete(answer[:i]))


# ---------------------------------------------------------------------------------------- the parser side


@pytest.mark.parametrize(
    ("answer", "stop_after"),
    [
        ('<points coords="1 1 412 655">Save button</points>', '<points coords="1 1 412 655"'),
        ('<points coords="1 1 100 200 2 300 400">mugs</points>', '<points coords="1 1 100 200 2 300 400"'),
        (
            '<points coords="1 1 100 200;2 3 300 400">dogs</points>',
            '<points coords="1 1 100 200;2 3 300 400"',
        ),
        ('Counting the <points coords="1 1 073 160 2 173 600">boats</points> gives 2.', '600"'),
        ('<tracks coords="0.5 1 100 200">car</tracks>', '<tracks coords="0.5 1 100 200"'),
        ('<point x="61.5" y="40.4" alt="red mug">red mug</point>', '<point x="61.5" y="40.4"'),
        ('<points x1="10.0" y1="20.5" x2="30.1" y2="44.0" alt="mugs">mugs</points>', 'y2="44.0" a'),
        ("There are none.", "There are none"),
    ],
)
def test_decoding_can_stop_once_the_coordinates_are_written(answer, stop_after):
    stop = _first_stop(answer)
    assert answer[:stop].endswith(stop_after)
    cut = complete_cut_answer(answer[:stop], "red mug")
    assert _where(parse_points(cut, SIZES)) == _where(parse_points(answer, SIZES))
    if "none" not in answer:
        assert answer_is_complete(cut) and all(p.label == "red mug" for p in parse_points(cut, SIZES))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<points coords=",
        '<points coords="1 1 41',
        '<points x1="1" y1="2" x2="3" y2="4"',
        "There are",
        None,
    ],
)
def test_coordinates_not_yet_complete(text):
    assert not coords_are_complete(text)
    assert complete_cut_answer(text, "x") == text


def test_complete_answers_and_prose_are_left_alone():
    for text in ('<points coords="1 1 1 1">a &amp; b</points> then more', "no tags here", "There are none."):
        assert complete_cut_answer(text, "label") == text


def test_label_is_escaped_when_closing_a_cut_answer():
    cut = complete_cut_answer('<points coords="1 1 500 500"', 'a <b> & "c"')
    assert parse_points(cut, [(100, 100)])[0].label == 'a <b> & "c"'


# ------------------------------------------------------------------------------------- early stop, model


@pytest.fixture(scope="module")
def plain(tiny_dir):
    from molmo_agent.backends.registry import resolve
    from molmo_agent.backends.scripted import ScriptedMolmo2Backend

    return ScriptedMolmo2Backend(resolve(str(tiny_dir)))


@pytest.fixture(scope="module")
def fast(tiny_dir):
    """The optimised path without compiling (fast to build); the compiled path has its own test."""
    from molmo_agent.backends.registry import resolve
    from molmo_agent.backends.scripted import ScriptedMolmo2Backend

    return ScriptedMolmo2Backend(
        resolve(str(tiny_dir)), optimize=True, fast_decode=FastDecodeConfig(compile=False)
    )


@pytest.fixture
def scripts(plain, fast):
    yield
    for backend in (plain, fast):
        backend.script = lambda request: ""
        if backend.vision_cache is not None:
            backend.vision_cache.clear()


@pytest.mark.parametrize(
    ("answer", "query"),
    [
        ('<points coords="1 1 412 655">Save button</points>', "the Save button"),
        ('<points coords="1 1 100 200 2 300 400 3 900 050">mugs</points>', "mugs"),
        ("There are none.", "the unicorn"),
    ],
)
def test_point_query_stops_after_the_coordinates_with_the_same_points(plain, scripts, answer, query):
    from molmo_agent.model import MolmoModel

    plain.script = lambda request: answer
    result = MolmoModel(plain).point_detailed(Image.new("RGB", (1280, 720)), query)
    full = plain.generate(
        [Request((Image.new("RGB", (1280, 720)),), f"Point to {query}.")],
        GenerationOptions(max_new_tokens=64, stop_at_answer=True),
    )[0]
    assert _where(result.points) == _where(parse_points(full.text, [(1280, 720)]))
    assert result.text == answer.rstrip(".")  # closed with the query as the model echoes it
    cut = answer[: _first_stop(answer)]
    assert result.num_generated_tokens == len(plain.tokenizer.encode(cut, add_special_tokens=False))
    assert result.num_generated_tokens < full.num_generated_tokens or "none" in answer


# --------------------------------------------------------------------------------- optimised == plain


def _requests() -> list[Request]:
    return [
        Request((Image.new("RGB", (640, 480), (200, 30, 30)),), "Point to the red thing."),
        Request(
            (Image.new("RGB", (300, 500), (30, 200, 30)),), "Point to the green thing in the picture, please."
        ),
        Request((Image.new("RGB", (900, 300), (20, 20, 220)),), "What is this?"),
    ]


def _same(plain, fast, requests, options):
    expected = plain.generate(requests, options)
    got = fast.generate(requests, options)
    assert [(g.text, g.num_generated_tokens) for g in got] == [
        (g.text, g.num_generated_tokens) for g in expected
    ]
    return got


def test_optimised_greedy_decoding_matches_plain_free_answers(plain, fast, scripts):
    options = GenerationOptions(max_new_tokens=24)
    for request in _requests():  # batch 1, several images and prompts
        _same(plain, fast, [request], options)
    _same(plain, fast, _requests(), options)  # batch 3, different prompt lengths (left padding)


def test_optimised_greedy_decoding_matches_plain_forced_long_answers(plain, fast, scripts):
    long_answer = '<points coords="1 1 101 202 2 303 404 3 505 606 4 707 808 5 909 010">many things</points>'
    for backend in (plain, fast):
        backend.script = lambda request: long_answer if "red" in request.prompt else long_answer[:30]
    got = _same(plain, fast, _requests(), GenerationOptions(max_new_tokens=120))
    assert got[0].text.startswith(long_answer) and got[0].num_generated_tokens == 120
    stopped = _same(plain, fast, _requests(), GenerationOptions(max_new_tokens=120, stop_at_coords=True))
    assert stopped[0].text == long_answer[: _first_stop(long_answer)]


def test_static_cache_lengths_are_bucketed(fast):
    assert bucketed_length(1) == bucketed_length(256) == 256
    assert bucketed_length(257) == 512
    first = fast.fast_decoder.generate_kwargs(1, 1200, 256)["cache"]
    again = fast.fast_decoder.generate_kwargs(1, 1250, 256)["cache"]
    assert again is first and first.layers[0].max_cache_len == 1536


def test_compile_unavailable_without_a_c_compiler(monkeypatch):
    import torch

    monkeypatch.setattr("shutil.which", lambda name: None)
    assert "C++ compiler" in compile_unavailable_reason(torch.device("cpu"))


def test_compile_failure_falls_back_to_eager_with_same_output(tiny_dir, plain, scripts, caplog):
    from molmo_agent.backends.molmo2 import Molmo2Backend
    from molmo_agent.backends.registry import resolve

    broken = Molmo2Backend(
        resolve(str(tiny_dir)), optimize=True, fast_decode=FastDecodeConfig(mode="no-such-mode")
    )
    if not broken.fast_decoder.compiles:
        pytest.skip(f"no torch.compile here: {broken.fast_decoder.compile_disabled_reason}")
    _same(plain, broken, _requests()[:1], GenerationOptions(max_new_tokens=8))
    assert "no-such-mode" in broken.fast_decoder.compile_disabled_reason
    assert "decoding eagerly" in caplog.text


@pytest.mark.slow
def test_compiled_decode_matches_plain_and_does_not_recompile_within_a_bucket(tiny_dir, plain, scripts):
    """torch.compile of the decode step on CPU (tens of seconds: inductor writes and builds C++)."""
    import torch._dynamo.utils

    from molmo_agent.backends.registry import resolve
    from molmo_agent.backends.scripted import ScriptedMolmo2Backend

    compiled = ScriptedMolmo2Backend(resolve(str(tiny_dir)), optimize=True)
    if not compiled.fast_decoder.compiles:
        pytest.skip(f"no torch.compile here: {compiled.fast_decoder.compile_disabled_reason}")
    options = GenerationOptions(max_new_tokens=24)
    requests = _requests()
    _same(plain, compiled, requests[:1], options)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    _same(plain, compiled, requests[1:2], options)  # another prompt length, same cache bucket
    _same(plain, compiled, requests[2:3], options)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
    _same(plain, compiled, requests[:2], options)  # batch 2: one more graph, same answers
    assert compiled.fast_decoder.compile_disabled_reason is None
    assert len(compiled.fast_decoder.compiled_shapes) == 2


# ---------------------------------------------------------------------------------- vision feature cache


def test_repeated_frame_skips_the_vision_tower_with_identical_answers(plain, fast, scripts):
    calls = []
    hook = fast.model.model.vision_tower.register_forward_hook(
        lambda module, args, out: calls.append(args[0].shape)
    )
    try:
        hits = fast.vision_cache.hits
        frame = Image.new("RGB", (640, 480), (200, 30, 30))
        options = GenerationOptions(max_new_tokens=16)
        for query in ("Point to the mug.", "Point to the bowl.", "Point to the spoon."):
            _same(plain, fast, [Request((frame,), query)], options)
        assert len(calls) == 1 and fast.vision_cache.hits == hits + 2
        other = Image.new("RGB", (300, 500), (30, 200, 30))
        batch = [Request((frame,), "Point to the mug."), Request((other,), "a"), Request((other,), "b")]
        _same(plain, fast, batch, options)  # the frame is cached; the new image is encoded once
        assert len(calls) == 2 and calls[1][0] == _crops(fast, other)
    finally:
        hook.remove()


def _crops(backend, image) -> int:
    return int(backend.preprocess([Request((image,), "a")])["image_num_crops"][0])


def test_vision_cache_is_a_small_lru(fast, scripts):
    fast.vision_cache.clear()
    options = GenerationOptions(max_new_tokens=1)
    for shade in range(fast.vision_cache.entries + 2):
        fast.generate([Request((Image.new("RGB", (64, 64), (shade, 0, 0)),), "a")], options)
    assert len(fast.vision_cache) == fast.vision_cache.entries


# ------------------------------------------------------------------------------------ loading, warm-up


def test_load_model_optimize_flag_and_warmup(tiny_dir):
    import molmo_agent as ma

    model = ma.load_model(tiny_dir, device="cpu", optimize=True)
    assert model.backend.optimize and model.backend.fast_decoder is not None
    assert model.backend.model.config._attn_implementation == "sdpa"
    model.backend.fast_decoder.compile_disabled_reason = "not in this test"  # compiling is tested above
    assert model.warmup() > 0
    assert len(model.backend.vision_cache) <= 1  # warm-up frames are not kept
    plain = ma.load_model(tiny_dir, device="cpu", optimize=False)
    assert plain.backend.fast_decoder is None and plain.backend.vision_cache is None


class _ScriptedRemoteMolmo1:
    """Stands in for Molmo v1's remote model (its code and weights cannot be fetched here): it emits a
    fixed answer token by token through ``generate_from_batch`` and honours ``stopping_criteria`` the way
    ``GenerationMixin.generate`` does, so the backend's wiring of the early stop is what is tested."""

    def __init__(self, tokenizer, answer: str) -> None:
        self.tokenizer, self.answer = tokenizer, answer
        self.criteria_seen = None

    def generate_from_batch(self, batch, generation_config, tokenizer=None, stopping_criteria=None):
        import torch

        ids = batch["input_ids"]
        self.criteria_seen = stopping_criteria
        for token in self.tokenizer(self.answer, add_special_tokens=False)["input_ids"]:
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            if stopping_criteria and all(bool(c(ids, None).all()) for c in stopping_criteria):
                break
        return ids


def test_molmo1_backend_stops_after_the_last_y_with_the_same_points(tiny_dir):
    import threading

    import torch
    from transformers import AutoTokenizer

    from molmo_agent.backends.molmo1 import Molmo1Backend
    from molmo_agent.model import POINT_OPTIONS

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    answer = '<point x="12.5" y="40.0" alt="the red mug">the red mug</point>'

    class Processor:
        def __init__(self) -> None:
            self.tokenizer = tokenizer

        def process(self, images, text):
            return {"input_ids": torch.tensor(tokenizer(" User: " + text + " Assistant:")["input_ids"])}

    backend = object.__new__(Molmo1Backend)
    backend.device, backend.dtype, backend._lock = torch.device("cpu"), torch.float32, threading.Lock()
    backend.processor, backend.model = Processor(), _ScriptedRemoteMolmo1(tokenizer, answer)
    request = Request(prompt="point to the red mug", images=[Image.new("RGB", (200, 100))])

    (cut,) = backend.generate([request], POINT_OPTIONS)
    (full,) = backend.generate([request], GenerationOptions(max_new_tokens=256, stop_at_answer=True))
    assert backend.model.criteria_seen is None  # no coordinate stop unless asked for
    assert full.text == answer
    assert cut.text.endswith('y="40.0"') and cut.num_generated_tokens < full.num_generated_tokens
    closed = complete_cut_answer(cut.text, "the red mug")
    assert parse_points(closed, image_sizes=[(200, 100)]) == parse_points(full.text, image_sizes=[(200, 100)])
