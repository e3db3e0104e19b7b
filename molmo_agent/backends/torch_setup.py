"""Device and dtype choice, in one place for every backend."""

from __future__ import annotations

import torch

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def choose_device(device: str | None) -> torch.device:
    """CUDA when present (the point of a local GPU), else CPU; an explicit choice always wins."""
    if device:
        chosen = torch.device(device)
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available on this machine")
        return chosen
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
"""``device`` values that spread one model over every visible GPU (then CPU memory), layer by layer, with
accelerate's device map: for checkpoints larger than one GPU (Molmo-72B needs ~145 GB in bf16)."""


def choose_placement(device: str | None) -> tuple[torch.device, dict]:
    """The device inputs go to, and the extra ``from_pretrained`` arguments that place the weights.

    A plain device (``cuda:1``, ``cpu``) loads normally and the backend moves the model there. A device map
    name (:data:`DEVICE_MAPS`) is passed to ``from_pretrained(device_map=...)``, which loads each layer
    straight onto its GPU (nothing is staged in CPU memory) and hooks the layers so activations follow
    them; inputs then go to the first GPU and the model must not be moved afterwards.
    """
    if device is None or device.lower() not in DEVICE_MAPS:
        return choose_device(device), {}
    try:
        import accelerate  # noqa: F401  (from_pretrained needs it for device_map)
    except ImportError:
        raise ValueError(
            f"device {device!r} places the model with accelerate, which is not installed: "
            "pip install 'molmo-agent[multigpu]' (or accelerate)"
        ) from None
    first = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    return first, {"device_map": device.lower()}


def choose_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """bf16 on CUDA (half the memory traffic, same accuracy for Molmo), fp32 on CPU (bf16 is slow there)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype:
        try:
            return DTYPES[dtype.lower()]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def set_cpu_threads(count: int) -> None:
    """Use ``count`` threads for torch's CPU kernels, process-wide.

    Measured on a 2-core machine: the tiny model runs its decode loop faster on 1 thread (70 vs 79 ms in
    process), and inside the server, where decoding and gRPC threads share the cores, 1 thread gave 69 ms
    against 132 ms; a 39 M-parameter model is 1.7x faster on 2 threads. So it is a per-deployment choice.
    """
    if count < 1:
        raise ValueError(f"cpu_threads must be >= 1, got {count}")
    torch.set_num_threads(count)
