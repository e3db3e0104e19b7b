"""The tiny models' tokenizers: every coordinate digit one token; the word vocabulary learnt from the
training texts makes colour, shape and format words single tokens and still round-trips any text; the
``numbers`` vocabulary makes each whole coordinate one token whose output row starts near its neighbours'."""

from __future__ import annotations

from dataclasses import replace

import pytest

from molmo_agent.training.answer_tokens import coordinate_digit_tokens
from molmo_agent.training.examples import synthetic_gui_example
from molmo_agent.training.tiny_molmo2 import (
    IMAGE_SPECIAL_TOKENS,
    PRESETS,
    TinyMolmo2Spec,
    _build_tokenizer,
    build_tiny_molmo2,
)

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
