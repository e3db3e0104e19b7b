"""The attention of a few taught positions, computed beside the fused attention kernel.

Why: the attention loss of the embedded default's recipe (``pointer_recipe --attend-weight``) needs, at
each position that writes a coordinate, the attention probabilities of one head over the sequence. Asking
the model for them (``output_attentions=True``) forces the eager kernel, which materialises every layer's
full (batch, heads, length, length) probabilities and their gradients: on a CPU that was ~60% of a training
step's time, for a loss that reads a handful of rows. Here the model keeps SDPA for its own output, and the
rows the loss needs are recomputed from the same queries and keys (same scaling, same mask), with their
gradient. Training only: transformers does not write the attention implementation into a saved
config, so a checkpoint never names this function.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

TAUGHT_SDPA = "molmo_agent_taught_sdpa"
"""Name of the attention function in transformers' attention tables, only while :func:`taught_attention`
is active."""


@dataclass
class TaughtRows:
    """What the attention function reads (the taught positions, armed before a forward pass) and writes
    (each language-model layer's rows, in layer order)."""

    query: torch.Tensor | None = None
    """(B, Q) positions whose rows are wanted, >= 0 (padding entries point anywhere; the loss drops them)."""
    heads: torch.Tensor | None = None
    """(B, Q) which attention head each position's row comes from."""
    rows: list[torch.Tensor] = field(default_factory=list)
    """Per layer (B, Q, L): that head's attention probabilities at that position."""

    def arm(self, query: torch.Tensor, heads: torch.Tensor) -> None:
        self.query, self.heads, self.rows = query.clamp(min=0), heads, []

    def disarm(self) -> list[torch.Tensor]:
        rows, self.query, self.heads, self.rows = self.rows, None, None, []
        return rows


def select_rows(
    query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float, positions, heads
) -> torch.Tensor:
    """Softmax attention rows (B, Q, L) of ``heads`` at ``positions`` (both (B, Q)), from the layer's rotated
    ``query`` (B, H, L, D) and ``key`` (B, KV, L, D) and its SDPA mask (boolean, True where attending is
    allowed, or additive floats; ``None`` means causal only), exactly as the attention kernel weighs them."""
    batch, num_heads, length, _ = query.shape
    groups = num_heads // key.shape[1]
    rows = torch.arange(batch, device=query.device)[:, None].expand_as(positions)
    picked_query = query[rows, heads, positions].float()  # (B, Q, D); float even under bf16 autocast
    picked_key = key[rows, heads // groups].float()  # (B, Q, L, D)
    scores = torch.einsum("bqd,bqld->bql", picked_query, picked_key) * scaling
    if mask is None:
        allowed = torch.arange(length, device=query.device) <= positions[..., None]
        scores = scores.masked_fill(~allowed, float("-inf"))
    else:
        mask_rows = mask[rows, 0, positions] if mask.shape[1] == 1 else mask[rows, heads, positions]
        mask_rows = mask_rows[..., -length:]
        if mask_rows.dtype == torch.bool:
            scores = scores.masked_fill(~mask_rows, float("-inf"))
        else:
            scores = scores + mask_rows.float()
    return torch.softmax(scores, dim=-1)


def _taught_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    output, _ = sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
    )
    recorder: TaughtRows | None = getattr(module, "_molmo_agent_taught_rows", None)
    if recorder is not None and recorder.query is not None:
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        recorder.rows.append(select_rows(query, key, attention_mask, scale, recorder.query, recorder.heads))
    return output, None


@contextmanager
def taught_attention(model) -> Iterator[TaughtRows]:
    """Within the context, ``model``'s language model runs SDPA with taught rows; yields the recorder to
    arm per batch. On exit the model is back on plain SDPA and the function is gone from transformers'
    attention tables, so no other model in the process can run it, even by naming it."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    attention_modules = [
        module
        for name, module in model.named_modules()
        if "language_model" in name and hasattr(module, "q_proj") and hasattr(module, "layer_idx")
    ]
    if not attention_modules:
        raise ValueError("no language-model attention layers found to record taught attention rows from")
    recorder = TaughtRows()
    # Registered class-wide (transformers builds a mask only for names in the global table), for the
    # context's length only: both entries are removed again on exit.
    ALL_ATTENTION_FUNCTIONS.register(TAUGHT_SDPA, _taught_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(TAUGHT_SDPA, sdpa_mask)
    try:
        model.set_attn_implementation({"text_config": TAUGHT_SDPA})
        for module in attention_modules:
            module._molmo_agent_taught_rows = recorder
        yield recorder
    finally:
        for module in attention_modules:
            module.__dict__.pop("_molmo_agent_taught_rows", None)
        if model.config.get_text_config()._attn_implementation == TAUGHT_SDPA:
            model.set_attn_implementation({"text_config": "sdpa"})
        ALL_ATTENTION_FUNCTIONS._global_mapping.pop(TAUGHT_SDPA, None)
        ALL_MASK_ATTENTION_FUNCTIONS._global_mapping.pop(TAUGHT_SDPA, None)
