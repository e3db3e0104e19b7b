"""Shared fixtures: tiny Molmo2 checkpoints built offline through the real save/load path."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest

# One Xvfb for the whole session, shared by every GUI test module: pyautogui opens the display once, at
# its first import, so a second server started by another module would receive none of its clicks.
from conftest_gui import gui_app, xserver  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A freshly built tiny random Molmo2 checkpoint folder (the same files a Hub snapshot holds)."""
    from molmo_agent.training.tiny_molmo2 import build_tiny_molmo2

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


@pytest.fixture(scope="session")
def android_control_dir(tmp_path_factory):
    """A small AndroidControl-format dataset (GZIP TFRecord shards + split files) written by our writer."""
    from molmo_envs.androidcontrol.synthetic import make_episodes
    from molmo_envs.androidcontrol.writer import write_dataset

    folder = tmp_path_factory.mktemp("android_control_small")
    episodes = make_episodes(3, sizes=[(540, 1200)])
    ids = [e.episode_id for e in episodes]
    write_dataset(folder, episodes, num_shards=2, splits={"train": [], "validation": [], "test": ids})
    return folder


@pytest.fixture(scope="module")
def backend(tiny_dir):
    """The tiny model answering like a trained one: the scripted text, then its end-of-turn token."""
    from molmo_agent.backends.registry import resolve
    from molmo_agent.backends.scripted import ScriptedMolmo2Backend

    scripted = ScriptedMolmo2Backend(resolve(str(tiny_dir)))
    scripted.end_after_script = True
    return scripted


@pytest.fixture
def model(backend):
    """A MolmoModel over ``backend``; set ``backend.script`` in the test (reset afterwards)."""
    from molmo_agent.model import MolmoModel

    yield MolmoModel(backend)
    backend.script = lambda request: ""


MODEL_FIXTURES = frozenset({"tiny_dir", "tiny_model", "scripted_backend", "scripted", "backend", "model"})
"""Fixtures that build or load a model: a test using any of them is in the slow lane."""
SLOW_MODULES = frozenset(
    {
        "test_default_model",
        "test_demo",
        "test_decode_speed",
        "test_finetune",
        "test_openai_backend",
        "test_balancing",
        "test_interop_node",
        "test_pointing_paths",
        "test_eval_runs",
        "test_device_map",
        "test_diagnose_pointing",
        "test_loading",
        "test_remote",
        "test_server",
        "test_client",
        "test_desktop",
        "test_desktop_region",
        "test_agent_loop",
        "test_token_grid_ceiling",
        "test_tiny_tokenizer",
        "test_bench_gpu",
        "test_light_install",
        "test_quantize",
    }
)
"""Modules whose tests load the embedded model, start servers or engines, or train."""


def pytest_collection_modifyitems(config, items):
    """``slow`` marks model-building tests, so ``pytest -m "not slow"`` is a fast lane (README)."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) or module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
