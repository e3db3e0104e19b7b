"""Model resolution and loading errors: names, folders, missing weights, Molmo v1 handling."""

from __future__ import annotations

import json
import os

import pytest

import molmo_agent as ma
from molmo_agent.backends import molmo1
from molmo_agent.backends.registry import DEFAULT_MODEL_DIR, KNOWN_MODELS, resolve


def test_registry_knows_the_seven_published_checkpoints():
    published = {m for m in KNOWN_MODELS if m.startswith("allenai/")}
    assert published == {
        "allenai/MolmoE-1B-0924",
        "allenai/Molmo-7B-O-0924",
        "allenai/Molmo-7B-D-0924",
        "allenai/Molmo-72B-0924",
        "allenai/Molmo2-4B",
        "allenai/Molmo2-8B",
        "allenai/Molmo2-O-7B",
    }
    assert {KNOWN_MODELS[m].family for m in published if "Molmo2" in m} == {"molmo2"}
    assert {KNOWN_MODELS[m].family for m in published if "Molmo2" not in m} == {"molmo1"}


def test_default_model_is_embedded_small_and_loads_through_from_pretrained():
    size = sum(f.stat().st_size for f in DEFAULT_MODEL_DIR.iterdir())
    assert size < 20 * 1024 * 1024  # the budget for the embedded model
    model = ma.load_model()
    assert model.info.model_id == "molmo-agent/default"
    assert model.info.source == str(DEFAULT_MODEL_DIR)
    assert model.family == "molmo2"


def test_tiny_checkpoint_loads_with_plain_transformers(tiny_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    processor = AutoProcessor.from_pretrained(tiny_dir)
    assert type(model).__name__ == "Molmo2ForConditionalGeneration"
    assert type(processor).__name__ == "Molmo2Processor"


def test_unpooled_tiny_model_gives_every_patch_its_own_token(tmp_path):
    """``pooling_size`` (1, 1) reaches the saved processor: 4x the image tokens of the 2x2 default, each
    pooling one patch, and the model runs on them."""
    from dataclasses import replace

    import numpy as np
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from molmo_agent.training.tiny_molmo2 import PRESETS, build_tiny_molmo2

    image = np.zeros((120, 200, 3), dtype=np.uint8)
    counts = {}
    for pooling in ((2, 2), (1, 1)):
        folder = build_tiny_molmo2(tmp_path / str(pooling[0]), replace(PRESETS["tiny"], pooling_size=pooling))
        processor = AutoProcessor.from_pretrained(folder)
        inputs = processor(images=[image], text="<|image|>where?", return_tensors="pt")
        assert inputs["image_token_pooling"].shape[1] == pooling[0] * pooling[1]
        counts[pooling] = inputs["image_token_pooling"].shape[0]
        with torch.no_grad():
            logits = AutoModelForImageTextToText.from_pretrained(folder)(**inputs).logits
        assert torch.isfinite(logits).all()
    assert counts[(1, 1)] >= 3 * counts[(2, 2)]


@pytest.mark.parametrize("model_id", ["allenai/Molmo2-8B", "allenai/Molmo-7B-D-0924"])
def test_known_model_without_weights_offline_names_the_model_and_the_fix(model_id, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    with pytest.raises(ma.ModelNotFoundError) as caught:
        ma.load_model(model_id)
    message = str(caught.value)
    assert model_id in message
    assert "HF_HOME" in message and "local folder" in message


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ma.ModelNotFoundError, match=r"unknown model 'someone/NotAModel'"):
        ma.load_model("someone/NotAModel")


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ma.ModelNotFoundError, match="does not exist"):
        ma.load_model(str(tmp_path / "nope" / "model"))


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ma.ModelNotFoundError, match=r"no config\.json"):
        ma.load_model(tmp_path)


def test_folder_of_another_architecture_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ma.ModelLoadError, match="'llama'"):
        ma.load_model(tmp_path)


def test_molmo1_folder_resolves_to_the_remote_code_backend(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "molmo", "auto_map": {}}))
    assert resolve(str(tmp_path)).family == "molmo1"


def test_molmo1_folder_without_remote_code_fails_clearly(tmp_path):
    config = {
        "model_type": "molmo",
        "architectures": ["MolmoForCausalLM"],
        "auto_map": {
            "AutoConfig": "config_molmo.MolmoConfig",
            "AutoModelForCausalLM": "modeling_molmo.MolmoForCausalLM",
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises((ma.ModelLoadError, ma.ModelNotFoundError)) as caught:
        ma.load_model(tmp_path)
    assert str(tmp_path) in str(caught.value) or "Molmo v1" in str(caught.value)


def test_molmo1_patch_supplies_the_removed_helper_to_the_remote_base_class():
    class RemotePreTrained:  # stands in for the remote MolmoPreTrainedModel
        pass

    class RemoteModel(RemotePreTrained):
        def update(self, outputs):
            return super()._extract_past_from_model_output(outputs)

    class Outputs:
        past_key_values = ("k", "v")

    assert molmo1.patch_extract_past(RemoteModel) is True
    assert RemoteModel().update(Outputs()) == ("past_key_values", ("k", "v"))
    assert molmo1.patch_extract_past(RemoteModel) is False, "a second patch must be a no-op"


def test_molmo1_incompatibility_is_detected_from_the_remote_traceback():
    namespace = {}
    code = compile(
        "def broken():\n    raise AttributeError('gone')\n",
        os.path.join("cache", "transformers_modules", "modeling_molmo.py"),
        "exec",
    )
    exec(code, namespace)
    with pytest.raises(AttributeError) as caught:
        namespace["broken"]()
    assert molmo1.raised_in_remote_code(caught.value)
    assert not molmo1.raised_in_remote_code(ValueError("local"))


def test_device_and_dtype_defaults_and_overrides():
    import torch

    from molmo_agent.backends.torch_setup import choose_device, choose_dtype

    cpu = choose_device("cpu")
    assert choose_dtype(None, cpu) == torch.float32
    assert choose_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert choose_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        choose_dtype("int3", cpu)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            choose_device("cuda")
