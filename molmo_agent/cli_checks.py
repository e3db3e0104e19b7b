"""Up-front checks of the command line: argument types, and what the arguments name on this machine.

Why a module of its own: a user's mistake should be found before a model loads or a run starts, and be
reported as one line that says what exists (env ids, env parameters, devices, dtypes) rather than as a
traceback from deep inside gymnasium, torch or transformers. Argparse ``type=`` functions here raise
:class:`argparse.ArgumentTypeError`; the checks that need the machine (CUDA, the Hub, the file system) raise
:class:`UsageError`, which the CLI prints and exits with status 2.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import re
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from .errors import ModelNotFoundError, MolmoAgentError

DTYPE_NAMES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
"""The names ``backends.torch_setup.DTYPES`` accepts (kept here so ``--help`` needs no torch)."""
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
DEVICE_PATTERN = re.compile(r"^(cpu|mps|(cuda|xpu)(:\d+)?)$")
DEVICE_HELP = "cpu, cuda, cuda:N, mps, xpu[:N], or a device map (auto, balanced, balanced_low_0, sequential)"
HUB_PROBE_S = 3.0
TRUE_WORDS = ("1", "true", "yes", "on")


class UsageError(MolmoAgentError):
    """The command line asks for something that cannot be done as given; the message says what to change."""


# -- argparse types ----------------------------------------------------------------------------------------


def _number(text: str, kind: Callable[[str], float | int]) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def at_least(minimum: float, kind: Callable[[str], float | int] = int) -> Callable[[str], float | int]:
    """An argparse type: a number of ``kind`` that is >= ``minimum`` (e.g. ``--max-steps``: at least 1)."""

    def parse(text: str) -> float | int:
        value = _number(text, kind)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    parse.__name__ = f"{kind.__name__} >= {minimum:g}"
    return parse


def above(minimum: float, kind: Callable[[str], float | int] = float) -> Callable[[str], float | int]:
    """An argparse type: a number strictly above ``minimum`` (e.g. ``--max-seconds``: above 0)."""

    def parse(text: str) -> float | int:
        value = _number(text, kind)
        if value <= minimum:
            raise argparse.ArgumentTypeError(f"must be above {minimum:g}, got {text}")
        return value

    parse.__name__ = f"{kind.__name__} > {minimum:g}"
    return parse


def port(text: str) -> int:
    value = _number(text, int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0: any free port), got {text}")
    return int(value)


def text(value: str) -> str:
    """Non-blank text (a goal, a query, a step): an empty one would make the run meaningless."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def device(value: str) -> str:
    """A device name torch knows, checked by its shape (whether this machine has it: :func:`check_device`)."""
    if DEVICE_PATTERN.match(value.strip().lower()) or value.strip().lower() in DEVICE_MAPS:
        return value.strip()
    raise argparse.ArgumentTypeError(f"unknown device {value!r}; use {DEVICE_HELP}")


def action_types(value: str) -> frozenset:
    """``--allow click,type``: action type names of the schema."""
    from .actions import ActionType

    names = [name.strip() for name in value.split(",") if name.strip()]
    known = [t.value for t in ActionType]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown action type(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(known)}"
        )
    return frozenset(ActionType(name) for name in names)


def region(value: str) -> tuple[int, int, int, int]:
    """``--region X,Y,W,H`` in screen pixels (the pointer's coordinates): a positive-sized box."""
    parts = [p.strip() for p in value.replace("x", ",").split(",")]
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,W,H (four integers), got {value!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be at least 1, got {w}x{h}")
    return x, y, w, h


def episodes(value: str) -> int | str:
    """``--episodes``: a positive number, or ``all`` (every episode of a dataset-replaying env)."""
    if value == "all":
        return value
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 episode, got {number}")
    return number


def env_arg(value: str) -> tuple[str, str]:
    """``--env-arg KEY=VALUE``; whether KEY is a parameter of the env is checked with the env id."""
    key, sep, raw = value.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a parameter name, got {value!r}")
    return key.strip(), raw


# -- checks against the machine ----------------------------------------------------------------------------


def check_device(name: str | None, dtype: str | None) -> None:
    """The device exists here and the dtype is one it can run: found before a model is built."""
    if name is None and dtype is None:
        return
    if name is not None and name.lower() in DEVICE_MAPS:
        _check_accelerate(name)
    if dtype is not None and dtype.lower() not in DTYPE_NAMES:
        raise UsageError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_NAMES)}")
    import torch

    kind, _, index = (name or "").lower().partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {name!r} was asked for but CUDA is not available here; use --device cpu"
            )
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise UsageError(f"device {name!r} does not exist: this machine has cuda:0..cuda:{count - 1}")
    elif kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError("device 'mps' was asked for but Apple's Metal (MPS) is not available here")
    elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise UsageError(f"device {name!r} was asked for but no Intel XPU is available here")
    on_cuda = kind == "cuda" or (not kind and torch.cuda.is_available())
    bf16 = dtype is not None and dtype.lower() in ("bfloat16", "bf16")
    if bf16 and on_cuda and not torch.cuda.is_bf16_supported():
        raise UsageError("this GPU does not support bfloat16; use --dtype float16 or float32")


def _check_accelerate(name: str) -> None:
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise UsageError(
            f"device {name!r} spreads the model with accelerate, which is not installed: "
            "pip install 'molmo-agent[multigpu]'"
        ) from None


def check_quantize(quantize: str | None, model: str | None, device: str | None, dtype: str | None) -> None:
    """``--quantize`` can run here: a model in this process, torchao installed, int4 where its kernel is."""
    if quantize is None:
        return
    if str(model or "").startswith(("grpc", "openai")):
        raise UsageError(
            f"--quantize cannot apply to {model}: its server or engine holds the weights; quantize there "
            "(molmo-agent serve --quantize, or the engine's own option)"
        )
    import importlib.util

    if importlib.util.find_spec("torchao") is None:
        raise UsageError(
            "--quantize needs torchao, which is not installed: pip install 'molmo-agent[quantize]'"
        )
    if quantize == "int4":
        from .backends.quantize import int4_unsupported_reason
        from .backends.torch_setup import choose_dtype, choose_placement

        target, _ = choose_placement(device)
        reason = int4_unsupported_reason(target, choose_dtype(dtype, target))
        if reason is not None:
            raise UsageError(reason)


def check_model(name: str | None) -> None:
    """The model can be had without a long wait: a known or cached name, and the Hub reachable if needed.

    Offline, transformers retries the Hub for minutes before it gives up with an OSError; here a Hub id that
    is not in the cache fails at once with the same :class:`ModelNotFoundError` message ``point`` gives.
    When the Hub cannot be reached the process works offline (``HF_HUB_OFFLINE``), so a cached model loads
    without those retries too.
    """
    from .backends.registry import cached_snapshot, missing_weights_message, resolve

    resolved = resolve(name)  # unknown names and missing folders raise ModelNotFoundError here
    if resolved.is_local_dir or resolved.family in ("remote", "openai"):
        return
    if not _hub_offline() and not hub_reachable():
        _go_offline()
    if _hub_offline() and cached_snapshot(resolved.location) is None:
        raise ModelNotFoundError(missing_weights_message(resolved.model_id))


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_WORDS


def _go_offline() -> None:
    """Work from the cache for the rest of the process: the Hub did not answer the probe."""
    import sys

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported already: its flag was read from the environment at import
        constants.HF_HUB_OFFLINE = True


def hub_reachable(timeout_s: float = HUB_PROBE_S) -> bool:
    """Whether a TCP connection to the Hub opens within ``timeout_s`` (name lookup included).

    A configured proxy is trusted (the direct connection may be blocked while the proxy works).
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, target_port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, target_port), timeout=timeout_s).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def check_writable_dir(path: str | Path, what: str) -> Path:
    """A folder the command will create or fill: it, or its nearest existing parent, must take files."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{what} {str(folder)!r} is a file, not a folder")
    _probe_write(_existing_ancestor(folder), what, folder)
    return folder


def check_writable_file(path: str | Path, what: str, suffixes: tuple[str, ...] = ()) -> Path:
    """A file the command will write: not a folder, its folder creatable, and (for images) a known suffix."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise UsageError(f"{what} {str(target)!r} is a folder; give a file name")
    if suffixes and target.suffix.lower() not in suffixes:
        raise UsageError(f"{what} {str(target)!r} needs one of the suffixes {', '.join(suffixes)}")
    _probe_write(_existing_ancestor(target.parent), what, target)
    return target


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.absolute().parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _probe_write(folder: Path, what: str, target: Path) -> None:
    """Really create (and remove) a file: permission bits say nothing to root, or on read-only mounts."""
    if not folder.is_dir():
        raise UsageError(f"cannot write {what} {str(target)!r}: {str(folder)!r} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {what} {str(target)!r}: {exc.strerror or exc}") from None


def check_existing(path: str | Path, what: str, *, folder: bool = False) -> Path:
    """An input the user named must be there (a file, or with ``folder`` a folder)."""
    found = Path(path).expanduser()
    if not found.exists():
        raise UsageError(f"{what} {str(found)!r} does not exist")
    if folder and not found.is_dir():
        raise UsageError(f"{what} {str(found)!r} is not a folder")
    if not folder and found.is_dir():
        raise UsageError(f"{what} {str(found)!r} is a folder, not a file")
    return found


# -- environments ------------------------------------------------------------------------------------------


def check_env_id(env_id: str) -> str:
    """A registered molmo_envs id (``molmo_envs:`` prefix allowed); the message lists the ids."""
    import molmo_envs

    bare = env_id.removeprefix("molmo_envs:")
    if bare in molmo_envs.REGISTERED_IDS:
        return bare
    raise UsageError(
        f"unknown environment {env_id!r}; eval runs the molmo_envs environments: "
        + ", ".join(molmo_envs.REGISTERED_IDS)
    )


def env_parameters(env_id: str) -> dict[str, inspect.Parameter]:
    """The constructor parameters of a registered env (what ``--env-arg`` may set)."""
    import importlib

    import molmo_envs

    module_name, class_name = molmo_envs.ENVIRONMENTS[env_id][0].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    parameters = inspect.signature(cls.__init__).parameters
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: p for name, p in parameters.items() if name != "self" and p.kind in named}


def check_env_kwargs(env_id: str, kwargs: dict[str, object], flags: dict[str, str]) -> None:
    """Every keyword is a parameter of the env; ``flags`` names the option each came from, for the message."""
    parameters = env_parameters(env_id)
    for key in kwargs:
        if key not in parameters:
            flag = flags.get(key, f"--env-arg {key}=...")
            raise UsageError(f"{flag} does not apply to {env_id}: its parameters are {', '.join(parameters)}")
    needs_data = "data_dir" in parameters and parameters["data_dir"].default is None
    if needs_data and "data_dir" not in kwargs and "episodes" not in kwargs:
        raise UsageError(
            f"{env_id} replays a dataset: pass --data-dir DIR (the folder with its TFRecord shards and "
            "splits.json)"
        )
