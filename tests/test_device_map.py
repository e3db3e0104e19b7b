"""``device="auto"`` (and the other accelerate device-map names): one model spread over the GPUs there are.

This machine has no GPU, so accelerate places everything on the CPU; what is checked is the code path a
multi-GPU box takes (``from_pretrained(device_map=...)``, no move afterwards, inputs to the first device)
and that its answers are those of the plain path.
"""

from __future__ import annotations

import sys

import pytest
from PIL import Image

import molmo_agent as ma
from molmo_agent.backends.base import GenerationOptions
from molmo_agent.backends.torch_setup import choose_placement


def test_a_plain_device_has_no_placement_and_a_map_name_has_one():
    assert choose_placement("cpu")[1] == {}
    pytest.importorskip("accelerate")
    device, placement = choose_placement("AUTO")
    assert placement == {"device_map": "auto"}
    assert device.type in ("cpu", "cuda")


def test_device_auto_loads_through_a_device_map_and_answers_as_the_plain_path(tiny_dir, monkeypatch):
    pytest.importorskip("accelerate")
    import transformers

    calls = []
    original = transformers.AutoModelForImageTextToText.from_pretrained

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", spy)
    image = Image.new("RGB", (320, 200), (30, 120, 200))
    options = GenerationOptions(max_new_tokens=12)
    mapped = ma.load_model(tiny_dir, device="auto", dtype="float32")
    plain = ma.load_model(tiny_dir, device="cpu", dtype="float32")
    assert calls[0].get("device_map") == "auto" and "device_map" not in calls[1]
    assert mapped.generate(image, "Describe it.", options=options) == plain.generate(
        image, "Describe it.", options=options
    )


def test_device_auto_without_accelerate_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)
    with pytest.raises(ValueError, match=r"molmo-agent\[multigpu\]"):
        choose_placement("auto")
