"""Which optional extra provides which import, so a missing one is an error that says what to install.

A plain ``pip install molmo-agent`` is the client and the formats (numpy, pillow, grpcio, protobuf); the
extras add local models, environments, GUI, training, serving and engines (pyproject.toml).
"""

from __future__ import annotations

import logging

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


class _TorchaoEnumNotice(logging.Filter):
    """Drops the deprecation lines torch logs when torchao 0.18 registers its enums at import.

    transformers imports torchao whenever it is installed (the ``quantize`` extra), so without this every
    model load would print two lines a user can do nothing about; other ``torch.utils._pytree`` messages
    pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is an Enum subclass and is now natively supported" not in str(record.msg)


def quiet_torchao_import() -> None:
    """Install the filter once (on the logger by name: torch need not be imported yet)."""
    log = logging.getLogger("torch.utils._pytree")
    if not any(isinstance(f, _TorchaoEnumNotice) for f in log.filters):
        log.addFilter(_TorchaoEnumNotice())


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
