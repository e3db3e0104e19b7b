"""What a fine-tuning run optimises beside the answer tokens' cross-entropy: in plain fine-tuning, nothing.

Why a hook and not more settings: the recipe that trained the embedded default
(:mod:`molmo_agent.training.pointer_recipe`) adds auxiliary losses on the model's attention and image
features, its own lr for the image pathway and batch replay. Those are research for a tiny model trained
from scratch, not choices for someone fine-tuning a released Molmo, so they live in that recipe and reach
the trainer's loop only through the methods of this class, whose defaults leave a run plain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch


class Objective:
    """The plain objective: the answer tokens' cross-entropy, one lr, a fresh batch every step."""

    weights: Mapping[str, float] = {}
    """Weight of each auxiliary loss :meth:`forward` returns, by name (its name in the history too)."""
    reuse: int = 1
    """How many steps each generated batch is trained on (:meth:`replay`); the trainer needs it to resume
    the data stream at the right batch."""

    def collator_options(self) -> dict[str, bool]:
        """Extra targets the batches must carry (``batches.TurnCollator`` keyword arguments)."""
        return {}

    def parameter_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        """The optimiser's groups, each with the ``lr_scale`` the schedule's lr is multiplied by."""
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]

    def attached(self, model: torch.nn.Module, processor: Any) -> AbstractContextManager[None]:
        """Hooks the objective puts into ``model`` for the run; removed when the context exits."""
        return nullcontext()

    def replay(self, batches: Iterator[dict], seed: int) -> Iterator[dict]:
        """The batches steps are drawn from (``reuse`` draws per generated batch)."""
        return batches

    def forward(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], logits_to_keep: int
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        """The model's output and the auxiliary losses this batch has targets for (none here)."""
        return model(**batch, logits_to_keep=logits_to_keep), {}

    def to_json(self) -> dict[str, Any] | None:
        """What a checkpoint records of the objective, beside the run's config (``None``: plain)."""
        return None
