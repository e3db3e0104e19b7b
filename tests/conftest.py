"""Shared fixtures: tiny Molmo2 checkpoints built offline through the real save/load path."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A freshly built tiny random Molmo2 checkpoint folder (the same files a Hub snapshot holds)."""
    from molmo_agent.backends.tiny_molmo2 import build_tiny_molmo2

    return build_tiny_molmo2(tmp_path_factory.mktemp("tiny-molmo2"))


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    import molmo_agent as ma

    return ma.load_model(tiny_dir)


@pytest.fixture(scope="session")
def scripted_backend(tiny_dir):
    """The tiny model with its answer text forced: real forward passes, known output text."""
    from molmo_agent.backends.registry import resolve
    from molmo_agent.backends.scripted import ScriptedMolmo2Backend

    return ScriptedMolmo2Backend(resolve(str(tiny_dir)))


@pytest.fixture
def scripted(scripted_backend):
    """A MolmoModel over the scripted backend; set ``scripted.backend.script`` in the test."""
    from molmo_agent.model import MolmoModel

    model = MolmoModel(scripted_backend)
    yield model
    scripted_backend.script = lambda request: ""
