"""Which optional extra provides which import, so a missing one is an error that says what to install.

A plain ``pip install molmo-agent`` is the client and the formats (numpy, pillow, grpcio, protobuf); the
extras add local models, environments, GUI, training, serving and engines (pyproject.toml).
"""

from __future__ import annotations

from .errors import MolmoAgentError

EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "local",
    "torchvision": "local",
    "transformers": "local",
    "tokenizers": "local",
    "safetensors": "local",
    "tqdm": "local",
    "gymnasium": "envs",
    "cv2": "envs",
    "pyautogui": "gui",
    "mss": "gui",
    "peft": "train",
    "httpx": "engines",
    "accelerate": "multigpu",
    "einops": "v1",
    "android_env": "android",
    "grpc_reflection": "serve",
    "torchao": "quantize",
}
"""Top-level module -> the extra that installs it."""


CPU_TORCH_HINT = " (CPU-only machine: install torch from https://download.pytorch.org/whl/cpu first)"


class MissingExtraError(MolmoAgentError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def missing_extra(exc: ImportError, needed_for: str) -> MissingExtraError | ImportError:
    """The error to raise for ``exc``: :class:`MissingExtraError` naming the extra when the missing module
    belongs to one, else ``exc`` itself (a bug or a broken install is not hidden behind advice)."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(name)
    if extra is None:
        return exc
    hint = (
        " (CPU-only: install torch from https://download.pytorch.org/whl/cpu first)"
        if extra == "local"
        else ""
    )
    return MissingExtraError(
        f"{needed_for} needs {name}, which is not installed: pip install 'molmo-agent[{extra}]'{hint}"
    )
