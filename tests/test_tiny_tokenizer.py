"""The tiny models' tokenizers: every coordinate digit one token; the word vocabulary learnt from the
training texts makes colour, shape and format words single tokens and still round-trips any text."""

from __future__ import annotations

from dataclasses import replace

import pytest

from molmo_agent.backends.tiny_molmo2 import IMAGE_SPECIAL_TOKENS, PRESETS, TinyMolmo2Spec, _build_tokenizer
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


def test_word_vocabulary_is_deterministic(word_tokenizer):
    again, _ = _build_tokenizer(replace(PRESETS["tiny"], tokenizer="words"))
    assert again.get_vocab() == word_tokenizer[0].get_vocab()


def test_unknown_tokenizer_kind_is_refused():
    with pytest.raises(ValueError, match="tokenizer must be"):
        TinyMolmo2Spec(tokenizer="sentencepiece")


def test_a_word_vocabulary_model_trains_and_answers_through_the_library(tmp_path):
    """The whole path with the learnt vocabulary: build, finetune (answer tokens located after the
    prompt, digit-place losses read), reload with ``ma.load_model`` and point."""
    import numpy as np

    import molmo_agent as ma
    from molmo_agent.backends.tiny_molmo2 import build_tiny_molmo2
    from molmo_agent.training import FinetuneConfig, finetune

    init = build_tiny_molmo2(tmp_path / "init", replace(PRESETS["tiny"], tokenizer="words"))
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
    assert records and '"hundreds"' in records[-1]
    model = ma.load_model(str(final), device="cpu")
    points = model.point(np.zeros((64, 96, 3), np.uint8), "the red square")
    assert isinstance(points, list)
