"""Weight-only int8 / int4 quantization of an in-process model, through torchao.

Why: at batch 1 a decode step reads every language-model weight once, so its time is weight bytes over
memory bandwidth; 8-bit weights halve those bytes against bf16 and 4-bit ones quarter them, and they let
Molmo2-8B (17 GB in bf16) fit the 8-16 GB GPUs robots carry. Activations keep the model's dtype.

How: torchao's ``quantize_`` after ``from_pretrained``, every ``nn.Linear`` but the output head, module by
module onto the target device (``quantize_(device=...)``), so the GPU never holds the bf16 model whole.
transformers' own ``TorchAoConfig`` route is not used: with transformers 5.25 it skips Molmo2's checkpoint
conversions (the fused qkv and gate-up weights that are split while loading) and leaves ``k_proj``,
``v_proj`` and ``gate_proj`` randomly initialised. bitsandbytes is CUDA-first; torchao's int8 also runs
on a CPU, which is where the embedded default model and CI live.

- ``int8``: ``Int8WeightOnlyConfig`` (symmetric, one scale per output row): CPU and CUDA.
- ``int4``: ``Int4WeightOnlyConfig`` with groups of 128 in the tinygemm layout (``tile_packed_to_4d``,
  ``torch.ops.aten._weight_int4pack_mm``): CUDA with compute capability >= 8.0 (Ampere, Orin, Hopper) and
  bf16 activations only. torchao 0.18 has no CPU int4 weight-only path (its other layouts need the
  ``mslk`` kernels or CUDA), so on a CPU it is refused with that said. Linears whose input width is not a
  multiple of 128 stay unquantized (torchao skips them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..extras import missing_extra

if TYPE_CHECKING:  # torch loads with the model, not with the name check (a plain install has no torch)
    import torch

QUANTIZE_CHOICES = ("int8", "int4")
INT4_GROUP_SIZE = 128
KEEP_FULL_PRECISION = ("lm_head",)
"""Module names never quantized: the output head decides every coordinate token (transformers' torchao
integration keeps it too)."""


def check_quantize(quantize: str | None) -> str | None:
    """The normalised choice (``None``, ``"int8"``, ``"int4"``); anything else is refused before loading."""
    if quantize is None or quantize == "" or str(quantize).lower() in ("none", "no"):
        return None
    kind = str(quantize).lower()
    if kind not in QUANTIZE_CHOICES:
        raise ValueError(f"unknown quantize {quantize!r}; use one of {', '.join(QUANTIZE_CHOICES)} (or none)")
    return kind


def int4_unsupported_reason(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why int4 cannot run with this device and dtype here, or ``None`` when it can.

    Shared by ``load_model`` and the CLI's up-front checks, so both say the same thing.
    """
    import torch

    if device.type != "cuda":
        return (
            f"int4 weight-only quantization needs a CUDA GPU (torchao's tinygemm int4 kernel); device "
            f"{str(device)!r} has no int4 path in torchao: use --quantize int8 on a CPU"
        )
    if dtype != torch.bfloat16:
        return f"int4 weight-only quantization runs with bfloat16 activations; got {dtype} (use --dtype bf16)"
    if torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] < 8:
        name = torch.cuda.get_device_name(device)
        return (
            "int4 weight-only quantization needs compute capability >= 8.0 (Ampere or newer); "
            f"{name} is older"
        )
    return None


def torchao_config(kind: str, device: torch.device, dtype: torch.dtype) -> Any:
    """The torchao config for ``kind`` on this device; int4 where it cannot run raises ``ValueError``."""
    try:
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig
    except ImportError as exc:
        raise missing_extra(exc, f"--quantize {kind}") from exc
    if kind == "int8":
        return Int8WeightOnlyConfig()
    reason = int4_unsupported_reason(device, dtype)
    if reason is not None:
        raise ValueError(reason)
    return Int4WeightOnlyConfig(group_size=INT4_GROUP_SIZE, int4_packing_format="tile_packed_to_4d")


def _is_quantizable(module: torch.nn.Module, name: str) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in KEEP_FULL_PRECISION


def quantization_config(quantize: str | None, device: torch.device, dtype: torch.dtype) -> Any | None:
    """The torchao config a backend applies after loading, or ``None`` for full precision.

    Called before ``from_pretrained`` so that a choice this machine cannot run (int4 on a CPU, no torchao)
    fails in a second rather than after loading gigabytes.
    """
    kind = check_quantize(quantize)
    return None if kind is None else torchao_config(kind, device, dtype)


def quantize_model(model: torch.nn.Module, config: Any, device: torch.device | None) -> torch.nn.Module:
    """Quantize ``model``'s linear weights in place and return it.

    With ``device`` each linear is moved there just before it is quantized, so the device holds the full
    precision weights of one layer at a time; the caller moves the rest (embeddings, norms) afterwards.
    ``None`` quantizes where the weights are (a device-mapped model is already spread over its GPUs).
    """
    from torchao.quantization import quantize_

    quantize_(model, config, filter_fn=_is_quantizable, device=device)
    return model


def is_quantized(weight: torch.Tensor) -> bool:
    """True for torchao's tensor subclasses (``Int8Tensor``, ``Int4TilePackedTo4dTensor``, ...)."""
    import torch

    return type(weight) not in (torch.Tensor, torch.nn.Parameter)


def quantized_linears(model: torch.nn.Module) -> int:
    """How many linear layers hold quantized weights (tests and benchmarks check it is not zero)."""
    import torch

    return sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear) and is_quantized(m.weight))


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor really stores: a quantized one counts its inner tensors (int8 data plus scales)."""
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if is_quantized(tensor) and flatten is not None:
        names, _ = flatten()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer as stored: what the memory holds and a decode step reads."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(tensor_bytes(t) for t in tensors)
