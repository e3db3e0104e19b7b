"""``run.json``: what produced an evaluation folder, so that its numbers cannot silently mix two setups.

A folder is one configuration: the model (its weights' sha256 for a local checkpoint; the address and the
served model id for ``grpc://`` and ``openai://``), the env and every argument it was built with, protocol,
token budget, policy, seed, view and package version. Resuming needs the same configuration; anything
else is refused with the differing fields, or started over with ``force``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MolmoAgentError
from .steps import jsonable

if TYPE_CHECKING:
    from ..model import MolmoModel
    from .harness import EvalConfig, RunSettings

RUN_FILE = "run.json"
OUTPUTS = ("steps.jsonl", "run.json", "config.json", "summary.json", "accuracy.png", "report.html")
OUTPUT_DIRS = ("screens", "failures")
CHUNK = 1 << 20


class RunMismatchError(MolmoAgentError):
    """The output folder holds a run with another configuration."""


@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """Whole-file sha256, streamed; cached per (path, size, mtime) so a process hashes a file once."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha256(folder: Path) -> dict[str, str]:
    """sha256 of every safetensors (or, failing those, ``*.bin``) file of a checkpoint folder."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    hashes = {}
    for path in files:
        stat = path.stat()
        hashes[path.name] = _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return hashes


def model_identity(model: MolmoModel, *, hash_weights: bool = True) -> dict[str, Any]:
    """The model as a run records it: a remote one by address and served id, a local one by its weights."""
    info = model.info
    target = getattr(model.backend, "target", None)
    if info.source.startswith(("grpc://", "grpcs://", "openai://", "openais://")):
        address = getattr(target, "address", None) or getattr(target, "base_url", info.source)
        served = getattr(model.backend, "model_name", info.model_id)
        return {"id": info.model_id, "address": address, "served_model_id": served}
    identity: dict[str, Any] = {"id": info.model_id}
    if getattr(info, "quantize", None):  # same weights file, other numbers: an int8 run is another run
        identity["quantize"] = info.quantize
    folder = Path(info.source)
    if hash_weights and folder.is_dir():
        identity["weights_sha256"] = weights_sha256(folder)
    return identity


def env_arguments(env) -> dict[str, Any]:
    """Every argument the env was built with: its constructor's defaults overlaid by the given ones."""
    unwrapped = env.unwrapped
    arguments: dict[str, Any] = {}
    for name, parameter in inspect.signature(type(unwrapped).__init__).parameters.items():
        if name != "self" and parameter.default is not inspect.Parameter.empty:
            arguments[name] = parameter.default
    spec = getattr(env, "spec", None)
    arguments.update((spec.kwargs if spec is not None else {}) or {})
    return jsonable(arguments)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("molmo-agent")
    except PackageNotFoundError:
        return "unknown"


def run_manifest(
    config: EvalConfig, settings: RunSettings, env, model: MolmoModel, *, hash_weights: bool = True
) -> dict[str, Any]:
    """The configuration that decides a run's numbers (``config``) plus facts that do not (``info``)."""
    spec = getattr(env, "spec", None)
    return {
        "config": {
            "model": model_identity(model, hash_weights=hash_weights),
            "env_id": config.env_id,
            "env_args": env_arguments(env),
            "max_episode_steps": getattr(spec, "max_episode_steps", None),
            "protocol": settings.protocol,
            "max_new_tokens": settings.max_new_tokens,
            "policy": settings.policy,
            "seed": config.seed,
            "view": {"scale": config.view.scale, "bgr": config.view.bgr},
            "package_version": package_version(),
        },
        "info": {
            "model_source": model.info.source,
            "episodes": len(settings.episodes),
            "accepts_text": settings.accepts_text,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {json.dumps(a)} in the folder, {json.dumps(b)} now")
    return lines


def clear_folder(out_dir: Path) -> None:
    """Remove the outputs of an earlier run (only files this harness writes)."""
    for name in OUTPUTS:
        (out_dir / name).unlink(missing_ok=True)
    for name in OUTPUT_DIRS:
        shutil.rmtree(out_dir / name, ignore_errors=True)


def prepare_folder(out_dir: Path, manifest: dict[str, Any], *, force: bool = False) -> None:
    """Make ``out_dir`` ready for this configuration: new, the same run resumed, or started over."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUN_FILE
    if force:
        clear_folder(out_dir)
    elif path.is_file():
        old = json.loads(path.read_text())
        differences = _differences(old.get("config", {}), manifest["config"])
        if differences:
            raise RunMismatchError(
                f"{out_dir} holds a run with another configuration:\n  "
                + "\n  ".join(differences)
                + "\npass --force to start the folder over, or a new --out"
            )
        manifest = {**manifest, "info": {**manifest["info"], "created": old["info"].get("created")}}
    elif (out_dir / "steps.jsonl").is_file():
        raise RunMismatchError(
            f"{out_dir} holds steps of a run without a run.json (its configuration is unknown); "
            "pass --force to start the folder over, or a new --out"
        )
    path.write_text(json.dumps(manifest, indent=2))
