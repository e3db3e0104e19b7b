"""The tiny models' tokenizers: every coordinate digit one token; the word vocabulary learnt from the
training texts makes colour, shape and format words single tokens and still round-trips any text; the
``numbers`` vocabulary makes each whole coordinate one token whose output row starts near its neighbours'."""

from __future__ import annotations

from dataclasses import replace

import pytest

from molmo_agent.backends.tiny_molmo2 import (
    IMAGE_SPECIAL_TOKENS,
    PRESETS,
    TinyMolmo2Spec,
    _build_tokenizer,
    build_tiny_molmo2,
)
from molmo_agent.training.answer_tokens import coordinate_digit_tokens
from molmo_agent.training.examples import synthetic_gui_example

ANSWER = '<points coords="1 1 551 128">the teal hexagon icon</points>'


@pytest.fixture(scope="module")
def word_tokenizer():
    return _build_tokenizer(replace(PRESETS["tiny"], tokenizer="words"))


def _pieces(tokenizer, text: str) -> list[str]:
    return [tokenizer.decode([i]) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


@pytest.mark.parametrize("kind", ["bytes", "words"])
def test_every_coordinate_digit_is_its_own_token(kind, word_tokenizer):
    tokenizer, _ = word_tokenizer if kind == "words" else _build_tokenizer(PRESETS["tiny"])
    pieces = _pieces(tokenizer, ANSWER)
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert digits == list("11551128")
    assert tokenizer.decode(tokenizer(ANSWER, add_special_tokens=False)["input_ids"]) == ANSWER


def test_word_vocabulary_makes_names_single_tokens_and_shortens_prompts(word_tokenizer):
    tokenizer, vocab_size = word_tokenizer
    pieces = _pieces(tokenizer, "Point to the teal hexagon icon.")
    for word in (" teal", " hexagon", " icon", " the"):
        assert word in pieces
    byte_tokenizer, _ = _build_tokenizer(PRESETS["tiny"])
    example = synthetic_gui_example(1_000_006, task="icon")
    assert len(_pieces(tokenizer, example.prompt)) * 3 < len(_pieces(byte_tokenizer, example.prompt))
    text = "Ünïcode 😀 unseen wörds 0042"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    # the end of turn is generatable, image tokens are Molmo2's additional vocabulary beyond it
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") < vocab_size
    assert min(tokenizer.convert_tokens_to_ids(list(IMAGE_SPECIAL_TOKENS))) >= vocab_size


@pytest.fixture(scope="module")
def number_tokenizer():
    return _build_tokenizer(replace(PRESETS["tiny"], tokenizer="numbers"))


def test_number_vocabulary_makes_each_coordinate_one_token(number_tokenizer):
    tokenizer, vocab_size = number_tokenizer
    answer = '<points coords="1 1 551 128 2 007 1000">the teal hexagon icon</points>'
    pieces = _pieces(tokenizer, answer)
    numbers = [p for p in pieces if any(c.isdigit() for c in p)]
    assert numbers == ["1", "1", "551", "128", "2", "007", "100", "0"]
    assert " hexagon" in pieces
    for text in (answer, "Click(45.3, 71.2) in 2026", "Ünïcode 😀 0042"):
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    # every value is generatable, the image tokens still come after them
    assert max(tokenizer.convert_tokens_to_ids(["000", "999", "<|im_end|>"])) < vocab_size
    assert min(tokenizer.convert_tokens_to_ids(list(IMAGE_SPECIAL_TOKENS))) >= vocab_size
    # the digit meter and the attention targets see whole-coordinate tokens as place "value"
    found = coordinate_digit_tokens(pieces)
    assert [(pieces[d.token], d.point, d.place) for d in found] == [
        ("551", 0, "value"),
        ("128", 0, "value"),
        ("007", 1, "value"),
    ]


def test_number_rows_start_smooth_in_the_value(tmp_path):
    """Neighbouring values' output rows start alike and far ones unalike, so the head's scores are a bump
    around a value; the code is seeded, so two builds agree."""
    import torch
    from safetensors.torch import load_file

    spec = replace(PRESETS["tiny"], tokenizer="numbers")
    first = build_tiny_molmo2(tmp_path / "a", spec)
    tokenizer, _ = _build_tokenizer(spec)
    ids = tokenizer.convert_tokens_to_ids(["500", "503", "520", "600", "900"])
    weights = load_file(first / "model.safetensors")
    head = next(w for name, w in weights.items() if name.endswith("lm_head.weight"))
    rows = torch.nn.functional.normalize(head[ids], dim=1)
    near, middle, far, farthest = (rows[1:] @ rows[0]).tolist()
    assert near > 0.8 > middle > far and max(abs(far), abs(farthest)) < 0.4
    again = load_file(build_tiny_molmo2(tmp_path / "b", spec) / "model.safetensors")
    assert torch.equal(next(w for n, w in again.items() if n.endswith("lm_head.weight")), head)


def test_word_vocabulary_is_deterministic(word_tokenizer):
    again, _ = _build_tokenizer(replace(PRESETS["tiny"], tokenizer="words"))
    assert again.get_vocab() == word_tokenizer[0].get_vocab()


def test_unknown_tokenizer_kind_is_refused():
    with pytest.raises(ValueError, match="tokenizer must be"):
        TinyMolmo2Spec(tokenizer="sentencepiece")


@pytest.mark.parametrize(("kind", "meter"), [("words", "hundreds"), ("numbers", "value")])
def test_a_learnt_vocabulary_model_trains_and_answers_through_the_library(tmp_path, kind, meter):
    """The whole path with a learnt vocabulary: build, finetune (answer tokens located after the
    prompt, digit-place or value losses read), reload with ``ma.load_model`` and point."""
    import numpy as np

    import molmo_agent as ma
    from molmo_agent.training import FinetuneConfig, finetune

    init = build_tiny_molmo2(tmp_path / "init", replace(PRESETS["tiny"], tokenizer=kind))
    config = FinetuneConfig(
        model=str(init),
        out_dir=tmp_path / "run",
        data=("shapes:max1",),
        steps=4,
        batch_size=2,
        warmup_steps=1,
        eval_every=0,
        save_every=4,
        progress=False,
    )
    final = finetune(config)
    records = [
        line for line in (config.out_dir / "history.jsonl").read_text().splitlines() if "digits" in line
    ]
    assert records and f'"{meter}"' in records[-1]
    model = ma.load_model(str(final), device="cpu")
    points = model.point(np.zeros((64, 96, 3), np.uint8), "the red square")
    assert isinstance(points, list)


def test_value_place_readout_reads_the_output_heads_code(tmp_path):
    """The ``value`` place code's x read-out is the subspace the coordinate tokens' output rows hold their
    code in: a feature carrying the code of x along it scores the token for x (or a neighbour) highest.
    A vocabulary without coordinate tokens is refused with a message that names the fix."""
    import torch

    from molmo_agent.backends.tiny_molmo2 import NUMBER_TOKENS, value_code
    from molmo_agent.training.trainer import FinetuneError, _load_for_training, value_place_readout

    spec = replace(PRESETS["tiny"], tokenizer="numbers")
    cpu = torch.device("cpu")
    model, processor, _ = _load_for_training(str(build_tiny_molmo2(tmp_path / "n", spec)), cpu)
    readout = value_place_readout(model, processor.tokenizer, seed=3)
    size = value_code(torch.zeros(1)).shape[1]
    assert readout.shape == (2 * size, model.config.get_text_config().hidden_size)
    assert torch.allclose(readout @ readout.T, torch.eye(2 * size), atol=1e-5)
    ids = processor.tokenizer.convert_tokens_to_ids(list(NUMBER_TOKENS))
    head = model.get_output_embeddings().weight.detach()[ids]
    values = torch.tensor([37.0, 250.0, 512.0, 880.0])
    x_scores = head @ (value_code(values) @ readout[:size]).T  # (1000 tokens, 4 values)
    assert (x_scores.argmax(0).float() - values).abs().max() <= 2
    y_scores = head @ (value_code(values) @ readout[size:]).T  # the y half is not the head's code
    assert (y_scores.argmax(0).float() - values).abs().min() > 2
    assert torch.equal(value_place_readout(model, processor.tokenizer, seed=3), readout)

    words_dir = build_tiny_molmo2(tmp_path / "w", replace(PRESETS["tiny"], tokenizer="words"))
    words, words_processor, _ = _load_for_training(str(words_dir), cpu)
    with pytest.raises(FinetuneError, match="one token per coordinate"):
        value_place_readout(words, words_processor.tokenizer)


def test_value_place_code_trains_and_resumes_with_the_same_readout(tmp_path):
    """``place_code='value'`` logs the place loss, keeps its read-out in the run folder, and a resumed run
    (more steps) scores that saved read-out rather than one derived from the trained head."""
    import json

    import torch
    from safetensors.torch import load_file

    from molmo_agent.training import FinetuneConfig, FinetuneError, finetune
    from molmo_agent.training.trainer import PLACE_READOUT_FILE

    init = build_tiny_molmo2(tmp_path / "init", replace(PRESETS["tiny"], tokenizer="numbers"))
    settings = dict(
        model=str(init),
        out_dir=tmp_path / "run",
        data=("shapes:max1",),
        batch_size=2,
        warmup_steps=1,
        eval_every=0,
        save_every=3,
        place_weight=1.0,
        place_code="value",
        progress=False,
    )
    finetune(FinetuneConfig(steps=3, **settings))
    saved = load_file(tmp_path / "run" / PLACE_READOUT_FILE)["readout"]
    finetune(FinetuneConfig(steps=6, **settings))
    assert torch.equal(load_file(tmp_path / "run" / PLACE_READOUT_FILE)["readout"], saved)
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert history[-1]["step"] == 6 and any("place" in record for record in history)
    with pytest.raises(FinetuneError, match="place_code must be one of"):
        FinetuneConfig(steps=3, **{**settings, "place_code": "polar"})
