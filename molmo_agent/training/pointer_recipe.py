"""The recipe that trained the embedded default model (``molmo_agent/default_model``), and only that.

The default is a tiny Molmo2 trained from scratch to point, on a CPU, in 14 stages
(``benchmarks/train_default_cpu.sh`` replays them; docs/training/README.md tells what each change did).
Training a model from scratch is not what ``molmo-agent finetune`` is for: that trains a released Molmo on
its answer tokens, and these knobs would only be noise there. From scratch, a model sits for thousands of
steps on a plateau where its coordinate digits are at chance, because its attention is spread evenly over
the image; what got the tiny pointer off it is kept here:

- ``attend_weight``: an auxiliary loss teaching the first attention head of every language-model layer but
  the first to look, at each position that writes a coordinate digit, at the image tokens holding that
  point (:func:`attention_loss`; the rows come from :mod:`.attention_rows`);
- ``attend_axis_heads``: head 0 taught at x digits and head 1 at y digits (a head's output is a fixed linear
  map of what it looks at, so one head cannot hand on x at one position and y at the next);
- ``place_weight``: an auxiliary loss making every whole-image token's features say where it is, as sines
  and cosines of its (x, y) at 1 and 3 cycles per image under a fixed read-out (:func:`place_loss`), so
  the coordinate can be read off the attended token (a linear probe recovered columns with R^2 ~0.6
  without it). Training only: nothing is added to the saved model;
- ``vision_lr_scale``: the ViT and the image adapter at a fraction of the lr (at the language model's lr
  the adapter's output grows by orders of magnitude within a few hundred steps and the image pathway stops
  learning);
- ``reuse``: each rendered batch trained on several times, for a GPU fed by a few CPU cores.

Its command line is ``python -m molmo_agent.cli_pointer_recipe`` (``finetune``'s options and these).
A checkpoint it trains records the recipe in its ``molmo_agent.json`` (``"recipe"``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .attention_rows import TaughtRows, taught_attention
from .objective import Objective
from .trainer import FinetuneError

NAME = "tiny-pointer"


@dataclass(frozen=True)
class PointerRecipe:
    """The recipe's knobs (see the module's docstring); the defaults switch every one of them off."""

    attend_weight: float = 0.0
    attend_axis_heads: bool = False
    place_weight: float = 0.0
    vision_lr_scale: float = 1.0
    reuse: int = 1

    def __post_init__(self) -> None:
        for name in ("attend_weight", "place_weight"):
            if getattr(self, name) < 0:
                raise FinetuneError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.attend_axis_heads and self.attend_weight <= 0:
            raise FinetuneError("attend_axis_heads splits the attention loss: it needs attend_weight > 0")
        if self.vision_lr_scale <= 0:
            raise FinetuneError(f"vision_lr_scale must be > 0, got {self.vision_lr_scale}")
        if self.reuse < 1:
            raise FinetuneError(f"reuse must be >= 1, got {self.reuse}")


# ------------------------------------------------------------------------------------------ the losses


def attention_loss(
    rows: Sequence[torch.Tensor], query: torch.Tensor, target: torch.Tensor
) -> torch.Tensor | None:
    """Mean over supervised positions and layers of -log(attention mass of the taught head on the targets).

    ``rows``: per language-model layer (B, Q, L), the taught head's attention at each supervised position
    (:class:`attention_rows.TaughtRows`); ``query`` (B, Q) those positions, -1 for none; ``target``
    (B, Q, L) the tokens to look at. Only the taught heads learn to look, so the others stay free for what
    else the answer needs. The first layer is left out (unless it is the only one): its queries come from
    each position's own token alone, before anything has told it which object the prompt names. ``None``
    when the batch has no supervised position (answers without points).
    """
    valid = query >= 0
    if not bool(valid.any()) or not rows:
        return None
    terms = []
    for layer_rows in rows[1:] if len(rows) > 1 else rows:
        mass = (layer_rows.float() * target).sum(-1)
        terms.append(-torch.log(mass.clamp(min=1e-6))[valid])
    return torch.cat(terms).mean()


PLACE_CYCLES = (1.0, 3.0)
"""Cycles per image of the position code: one gives a coordinate's hundreds digit as an angle, three keep
neighbouring tenths apart."""


def place_code(xy: torch.Tensor) -> torch.Tensor:
    """(N, 2) fractions of the image -> (N, 4 * len(PLACE_CYCLES)) sines and cosines."""
    angles = torch.cat([2 * math.pi * cycles * xy for cycles in PLACE_CYCLES], dim=1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def place_readout(width: int, seed: int = 0) -> torch.Tensor:
    """A fixed (code size, width) matrix of orthonormal rows: the read-out :func:`place_loss` scores.
    Seeded, so a resumed run scores the same read-out and nothing needs saving."""
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(width, 4 * len(PLACE_CYCLES), generator=generator)
    return torch.linalg.qr(gaussian).Q.T.contiguous()


def place_loss(embeddings: torch.Tensor, target: torch.Tensor, readout: torch.Tensor) -> torch.Tensor | None:
    """Mean squared error between the read-out of unit-normalised (RMS 1) token features and the
    :func:`place_code` of their positions. ``embeddings`` (B, L, D); ``target`` (B, L, 2), NaN on tokens
    without a place; ``None`` when no token has one."""
    valid = ~target[..., 0].isnan()
    if not bool(valid.any()):
        return None
    features = embeddings[valid].float()
    features = features / features.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    predicted = features @ readout.to(features.device).T
    return torch.nn.functional.mse_loss(predicted, place_code(target[valid].to(features.device).float()))


class PlaceTap:
    """Keeps the language model's input embeddings (image features already added) from the latest forward
    pass, for :func:`place_loss`. A hook only, so the model's own forward is untouched; :meth:`remove`
    takes it out."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.value: torch.Tensor | None = None
        inner = [m for name, m in model.named_modules() if name.endswith("language_model")]
        if not inner:
            raise FinetuneError("place_weight needs a Molmo2 language model to read image features from")
        self._handle = inner[0].register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs) -> None:
        self.value = kwargs.get("inputs_embeds")

    def remove(self) -> None:
        self._handle.remove()
        self.value = None


def replayed(batches: Iterator, reuse: int, seed: int, buffer_batches: int | None = None) -> Iterator:
    """Each batch from ``batches`` is followed by ``reuse`` draws from a buffer of the latest
    ``buffer_batches`` (default ``8 * reuse``) batches, the new one included: every batch is trained on
    ``reuse`` times on average, never many times in a row. ``reuse`` 1 passes the stream through."""
    if reuse <= 1:
        yield from batches
        return
    draw = random.Random(seed)
    size = buffer_batches or 8 * reuse
    buffer: list = []
    for batch in batches:
        buffer.append(batch)
        if len(buffer) > size:
            buffer.pop(0)
        for _ in range(reuse):
            yield buffer[draw.randrange(len(buffer))]


# --------------------------------------------------------------------------------- the trainer's hook

VISION_MODULES = ("vision_tower", "multi_modal_projector")
"""Name parts of the image pathway's parameters in transformers' Molmo2 (the ViT and the adapter)."""


class PointerObjective(Objective):
    """:class:`PointerRecipe` as the trainer's :class:`~.objective.Objective`."""

    def __init__(self, recipe: PointerRecipe) -> None:
        self.recipe = recipe
        self.weights = {"attend": recipe.attend_weight, "place": recipe.place_weight}
        self.reuse = recipe.reuse
        self._taught: TaughtRows | None = None
        self._tap: PlaceTap | None = None
        self._readout: torch.Tensor | None = None

    def collator_options(self) -> dict[str, bool]:
        return {
            "attention_targets": self.recipe.attend_weight > 0,
            "place_targets": self.recipe.place_weight > 0,
        }

    def parameter_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        vision, other = [], []
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                (vision if any(part in name for part in VISION_MODULES) else other).append(parameter)
        groups = [{"params": other, "lr_scale": 1.0}]
        if vision:
            groups.append({"params": vision, "lr_scale": self.recipe.vision_lr_scale})
        return groups

    @contextmanager
    def attached(self, model: torch.nn.Module, processor: Any) -> Iterator[None]:
        heads = model.config.get_text_config().num_attention_heads
        if self.recipe.attend_axis_heads and heads < 2:
            raise FinetuneError("attend_axis_heads needs a language model with at least two attention heads")
        with ExitStack() as stack:
            if self.recipe.attend_weight > 0:
                self._taught = stack.enter_context(taught_attention(model))
            if self.recipe.place_weight > 0:
                self._tap = PlaceTap(model)
                stack.callback(self._tap.remove)
                self._readout = place_readout(model.config.get_text_config().hidden_size)
            try:
                yield
            finally:
                self._taught, self._tap, self._readout = None, None, None

    def replay(self, batches: Iterator[dict], seed: int) -> Iterator[dict]:
        return replayed(batches, self.recipe.reuse, seed)

    def forward(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], logits_to_keep: int
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        query, target = batch.pop("attend_query", None), batch.pop("attend_target", None)
        axis, place_target = batch.pop("attend_axis", None), batch.pop("place_target", None)
        taught = self._taught
        supervise = taught is not None and query is not None and bool((query >= 0).any())
        if supervise:
            split = self.recipe.attend_axis_heads and axis is not None
            taught.arm(query, axis if split else torch.zeros_like(query))
        try:
            output = model(**batch, logits_to_keep=logits_to_keep)
        finally:
            rows = taught.disarm() if supervise else []
        losses = {"attend": attention_loss(rows, query, target) if supervise else None}
        if self._tap is not None and self._tap.value is not None and place_target is not None:
            losses["place"] = place_loss(self._tap.value, place_target, self._readout)
        return output, {name: loss for name, loss in losses.items() if loss is not None}

    def to_json(self) -> dict[str, Any]:
        return {"name": NAME, "module": __name__, **asdict(self.recipe)}
