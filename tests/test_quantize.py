"""Weight-only quantization (``load_model(quantize=...)``): choices, refusals, and int8 on the embedded model.

The 200-screen comparison with fp32 is ``benchmarks/quantize_cpu.py``; here 30 held-out screens check
that int8 really quantizes and still points: a floor well under fp32's ~90% and agreement with fp32's
verdicts on most screens, both of which a broken quantization (garbage weights, the wrong layers) fails.
"""

from __future__ import annotations

import sys

import pytest
import torch

import molmo_agent as ma
from molmo_agent.backends.quantize import (
    check_quantize,
    int4_unsupported_reason,
    is_quantized,
    quantized_linears,
    tensor_bytes,
    torchao_config,
    weight_bytes,
)
from molmo_agent.evaluation.runs import model_identity
from molmo_agent.evaluation.suites import score_suite
from molmo_agent.extras import MissingExtraError

SEEDS = range(30)


def test_choices_are_normalised_and_unknown_ones_refused():
    assert check_quantize(None) is None
    assert check_quantize("none") is None
    assert check_quantize("INT8") == "int8"
    with pytest.raises(ValueError, match="int8, int4"):
        check_quantize("int3")


@pytest.mark.parametrize("url", ["grpc://localhost:1", "openai://localhost:1/v1?model=m"])
def test_remote_models_refuse_quantize_before_connecting(url):
    with pytest.raises(ValueError, match="server or engine"):
        ma.load_model(url, quantize="int8")


def test_int4_on_cpu_is_refused_with_what_it_needs():
    reason = int4_unsupported_reason(torch.device("cpu"), torch.float32)
    assert reason is not None and "CUDA" in reason and "int8" in reason
    with pytest.raises(ValueError, match="CUDA"):
        ma.load_model(quantize="int4", device="cpu")


def test_missing_torchao_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao", None)
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(MissingExtraError, match=r"molmo-agent\[quantize\]"):
        torchao_config("int8", torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def fp32_model():
    return ma.load_model(device="cpu")


@pytest.fixture(scope="module")
def int8_model():
    pytest.importorskip("torchao")
    return ma.load_model(device="cpu", quantize="int8")


@pytest.mark.slow
def test_int8_really_quantizes_the_linear_layers(fp32_model, int8_model):
    net = int8_model.backend.model
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert quantized_linears(net) == len(linears) - 1  # all but the output head
    assert not is_quantized(net.lm_head.weight)
    weight = net.model.language_model.layers[0].self_attn.q_proj.weight
    assert type(weight).__name__ == "Int8Tensor"
    assert tensor_bytes(weight) < weight.numel() * 4 / 3  # int8 data plus per-row scales, not fp32
    assert quantized_linears(fp32_model.backend.model) == 0
    assert weight_bytes(net) < 0.5 * weight_bytes(fp32_model.backend.model)


@pytest.mark.slow
def test_int8_is_recorded_where_runs_tell_models_apart(fp32_model, int8_model):
    assert int8_model.info.quantize == "int8" and fp32_model.info.quantize is None
    assert model_identity(int8_model, hash_weights=False) == {"id": "molmo-agent/default", "quantize": "int8"}
    assert "quantize" not in model_identity(fp32_model, hash_weights=False)


@pytest.mark.slow
def test_int8_keeps_pointing_and_agrees_with_fp32(fp32_model, int8_model):
    _, fp32_records = score_suite(fp32_model, "synthetic_gui", SEEDS)
    int8_summary, int8_records = score_suite(int8_model, "synthetic_gui", SEEDS)
    assert int8_summary["step_accuracy"] >= 0.8
    fp32_correct = {r["seed"]: r["correct"] for r in fp32_records}
    same_verdict = [r["correct"] == fp32_correct[r["seed"]] for r in int8_records]
    assert len(same_verdict) == len(SEEDS) and sum(same_verdict) >= 0.9 * len(SEEDS)
    parsed = [r for r in int8_records if r["predicted"] is not None]
    assert len(parsed) == len(SEEDS)  # every int8 answer is a well-formed point


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["point", "sample", "mug", "--device", "cpu", "--quantize", "int4"], "needs a CUDA GPU"),
        (["serve", "--model", "grpc://localhost:1", "--quantize", "int8"], "server or engine"),
        (["demo", "--device", "cpu", "--quantize", "int4"], "needs a CUDA GPU"),
    ],
)
def test_cli_refuses_quantize_it_cannot_run_before_loading(argv, message, capsys):
    from molmo_agent.cli import EXIT_USAGE, main

    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
