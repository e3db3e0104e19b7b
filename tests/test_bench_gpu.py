"""``molmo-agent bench gpu``: the phases run end to end on the tiny size (CPU), the 8B shape is the
published one, and the roofline reproduces the issue's back-of-the-envelope figure."""

from __future__ import annotations

import json

import pytest

from molmo_agent.bench.gpu import (
    AGREEMENT_PROMPTS,
    ANSWER_TOKENS,
    _component_params,
    _shape,
    decode_step_ms,
    gpu_specs,
    published_8b_config,
    roofline,
    run_gpu_bench,
    token_agreement,
)
from molmo_agent.cli import main


@pytest.mark.slow
def test_tiny_bench_on_cpu_writes_every_phase_and_prints_the_table(tmp_path):
    out = tmp_path / "bench.json"
    results = run_gpu_bench(
        size="tiny", device="cpu", runs=1, batch=2, full_budget_runs=1, skip=("optimized",), out=out
    )
    saved = json.loads(out.read_text())
    assert saved["table"] == results["table"]
    assert not saved["errors"], saved["errors"]
    assert saved["skipped"].pop("optimized") == "skipped on request"
    assert "CUDA" in saved["skipped"].pop("int4")  # no int4 kernel on a CPU: skipped, saying why
    assert saved["skipped"] == {}
    phases = saved["phases"]
    assert phases["build"]["parameters"] > 0
    for name in ("plain", "plain_batch"):
        assert phases[name]["tokens_per_query"] == ANSWER_TOKENS + 1  # forced answer + its end token
        assert phases[name]["forced_answer_seen"]
        assert phases[name]["ms"] > 0
    assert phases["plain_batch"]["batch"] == 2
    assert phases["prefill"]["prompt_tokens"] > phases["prefill"]["image_tokens"] > 0
    assert phases["recipe"]["weights"] == "float32" and phases["recipe"]["autocast"] == "bfloat16"
    assert phases["recipe"]["tokens_per_query"] == ANSWER_TOKENS + 1
    assert phases["recipe"]["full_budget"]["tokens_per_query"] == 200
    int8, plain = phases["int8"], phases["plain"]
    assert int8["quantized_linears"] > 0 and int8["forced_answer_seen"]
    assert int8["tokens_per_query"] == ANSWER_TOKENS + 1
    assert 0 < int8["weight_bytes"] < 0.5 * phases["build"]["parameters"] * 4  # fp32 would be 4 B each
    assert int8["agreement"]["prompts"] == AGREEMENT_PROMPTS
    assert "decode_step_ms" in plain and "decode_step_ms" in int8
    assert "roofline" not in saved  # no datasheet figures for a CPU
    labels = (
        "roofline",
        "model-card recipe",
        "plain",
        "optimised",
        "prefill only",
        "batch 8 plain",
        "int8 weights",
    )
    for label in labels:
        assert label in results["table"]


def test_no_budget_skips_every_phase_and_still_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        main(["bench", "gpu", "--size", "tiny", "--device", "cpu", "--budget-s", "0", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "build:" in printed and "budget" in printed
    saved = json.loads(out.read_text())
    assert set(saved["skipped"]) == {"build"}
    assert saved["phases"] == {}


def test_8b_config_is_the_published_size_and_its_roofline_matches_the_issue():
    import torch
    from transformers import Molmo2ForConditionalGeneration

    from molmo_agent.training.tiny_molmo2 import _build_tokenizer

    tokenizer, _ = _build_tokenizer()
    config = published_8b_config(tokenizer)
    with torch.device("meta"):
        model = Molmo2ForConditionalGeneration(config)
    params = _component_params(model)
    assert 8.5e9 < sum(params.values()) < 8.8e9  # Molmo2-8B: 8.66 B
    prompt = {"prompt_tokens": 1248, "image_tokens": 1162, "crops": 9, "vit_patches": 9 * 729}
    limit = roofline(params, _shape(config), prompt, ANSWER_TOKENS + 1, gpu_specs("NVIDIA H100 80GB HBM3"))
    assert 4 < limit["vit_tflop"] < 7 and 15 < limit["lm_prefill_tflop"] < 22  # issue: ~5 and ~20
    assert 14 < limit["decode_step_gb"] < 17  # ~16 GB of bf16 weights per token
    assert 100 < limit["query_ms"] < 140  # issue: ~130 ms
    assert gpu_specs("NVIDIA H200")[1] == 4.8 and gpu_specs("cpu") is None


def test_token_agreement_and_decode_step_arithmetic():
    reference = [[1, 2, 3], [4, 5, 6]]
    assert token_agreement(reference, [[1, 2, 3], [4, 9, 6]]) == {
        "prompts": 2,
        "tokens": 3,
        "all_equal": 0.5,
        "mean_equal_prefix": 2.0,
    }
    assert decode_step_ms({"ms": 10.0 + 2.0 * ANSWER_TOKENS}, {"ms": 10.0}) == 2.0
