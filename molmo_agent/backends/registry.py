"""One registry: which models exist, which family each belongs to, and which backend loads it.

Hub ids of the seven published Molmo checkpoints are known up front; any local folder holding a
``config.json`` is accepted too, its family read from ``model_type``. The embedded default model ships
inside the package and is what ``load_model(None)`` returns.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError, ModelNotFoundError
from ..extras import missing_extra

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"
DEFAULT_MODEL_NAME = "molmo-agent/default"


@dataclass(frozen=True)
class KnownModel:
    """A published checkpoint: what a user can name without a path."""

    model_id: str
    family: str
    parameters: str
    loads_with: str
    note: str = ""


MOLMO1_NOTE = "Hub remote code (trust_remote_code); untested offline here: no weights, no remote code"
MOLMO2_NOTE = "native transformers >= 5.20 (AutoModelForImageTextToText)"

KNOWN_MODELS: dict[str, KnownModel] = {
    m.model_id: m
    for m in (
        KnownModel("allenai/MolmoE-1B-0924", "molmo1", "7.2B (1.2B active, MoE)", MOLMO1_NOTE),
        KnownModel("allenai/Molmo-7B-O-0924", "molmo1", "7.7B", MOLMO1_NOTE),
        KnownModel("allenai/Molmo-7B-D-0924", "molmo1", "8.0B", MOLMO1_NOTE),
        KnownModel("allenai/Molmo-72B-0924", "molmo1", "73.3B", MOLMO1_NOTE),
        KnownModel("allenai/Molmo2-4B", "molmo2", "4.8B", MOLMO2_NOTE),
        KnownModel("allenai/Molmo2-8B", "molmo2", "8.7B", MOLMO2_NOTE),
        KnownModel("allenai/Molmo2-O-7B", "molmo2", "7.8B", MOLMO2_NOTE),
        KnownModel(
            DEFAULT_MODEL_NAME,
            "molmo2",
            "3.3M",
            "embedded in the package; Molmo2 architecture trained by `molmo-agent finetune` on SyntheticGui"
            " and TabletopPointing",
            "points at SyntheticGui icons and tabletop objects; knows nothing of real photos or apps",
        ),
    )
}

BACKENDS: dict[str, str] = {
    "molmo2": "molmo_agent.backends.molmo2:Molmo2Backend",
    "molmo1": "molmo_agent.backends.molmo1:Molmo1Backend",
    "remote": "molmo_agent.backends.remote:RemoteBackend",
    "openai": "molmo_agent.backends.openai_compat:OpenAICompatBackend",
}
"""Family -> ``module:Class`` of its backend, imported only when a model of that family is loaded."""

MODEL_TYPE_TO_FAMILY = {"molmo2": "molmo2", "molmo": "molmo1"}


@dataclass(frozen=True)
class ResolvedModel:
    """A name resolved to a family and a local folder (or a Hub id that transformers will look up)."""

    model_id: str
    family: str
    location: str
    is_local_dir: bool


def resolve(name_or_path: str | os.PathLike | None) -> ResolvedModel:
    """Turn what the user typed into a family and a location, without loading any weights.

    ``grpc://HOST:PORT`` / ``grpcs://HOST:PORT`` name a model served by ``molmo-agent serve`` (the family
    ``remote``; the served model's own family is read from the server when it is loaded).
    ``openai://HOST:PORT/PATH?model=NAME`` / ``openais://...`` name a model behind an inference engine's
    OpenAI-compatible API (the family ``openai``; the model's own family is settled when it is loaded).
    """
    if name_or_path is None or str(name_or_path) in ("", "default", DEFAULT_MODEL_NAME):
        return ResolvedModel(DEFAULT_MODEL_NAME, "molmo2", str(DEFAULT_MODEL_DIR), True)
    text = str(name_or_path)
    if text.startswith(("grpc://", "grpcs://", "grpc+dns://", "grpcs+dns://")):
        return ResolvedModel(text, "remote", text, False)
    if text.startswith(("openai://", "openais://")):
        return ResolvedModel(text, "openai", text, False)
    path = Path(text).expanduser()
    if path.is_dir():
        return ResolvedModel(text, family_of_dir(path), str(path), True)
    if text in KNOWN_MODELS:
        return ResolvedModel(text, KNOWN_MODELS[text].family, text, False)
    if path.exists() or text.startswith((".", "/", "~")) or os.sep in text.strip("/").replace("/", "", 1):
        raise ModelNotFoundError(f"model folder {text!r} does not exist (or is not a folder)")
    cached = cached_snapshot(text)
    if cached is not None:
        return ResolvedModel(text, family_of_dir(cached), text, False)
    raise ModelNotFoundError(
        f"unknown model {text!r}: not a local folder, not one of the known ids ({', '.join(KNOWN_MODELS)}), "
        "and not in the Hugging Face cache. Pass a folder that holds config.json, or a known id."
    )


def family_of_dir(path: Path) -> str:
    """Read ``model_type`` from a checkpoint folder's config.json to pick the backend."""
    config_path = path / "config.json"
    try:
        model_type = json.loads(config_path.read_text()).get("model_type", "")
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"{path} has no config.json: it is not a model checkpoint folder") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not read {config_path}: {exc}") from exc
    family = MODEL_TYPE_TO_FAMILY.get(model_type)
    if family is None:
        raise ModelLoadError(
            f"{path} holds a {model_type or 'untyped'!r} model; molmo-agent loads Molmo v1 ('molmo') "
            "and Molmo2 ('molmo2') checkpoints"
        )
    return family


def cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a Hub repo if its config.json is already cached, else ``None``."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # invalid repo id syntax and the like: simply not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


def is_available_locally(model_id: str) -> bool:
    """True when loading ``model_id`` would not need the network."""
    try:
        resolved = resolve(model_id)
    except (ModelNotFoundError, ModelLoadError):
        return False
    if resolved.family in ("remote", "openai"):
        return False
    return resolved.is_local_dir or cached_snapshot(resolved.location) is not None


def backend_class(family: str) -> type:
    """Import the backend class registered for ``family``."""
    module_name, class_name = BACKENDS[family].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise missing_extra(exc, f"a {family} model") from exc
    return getattr(module, class_name)


def missing_weights_message(model_id: str) -> str:
    """How to provide weights when they are not on this machine; shared by every backend."""
    return (
        f"the weights of {model_id!r} are not on this machine and cannot be downloaded "
        f"(offline: HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}). Either download them where "
        f"there is network (`hf download {model_id}`) and copy the Hugging Face cache here "
        "(point HF_HOME at it), or pass the local folder that holds the checkpoint: "
        "`ma.load_model('/path/to/folder')` / `--model /path/to/folder`."
    )
