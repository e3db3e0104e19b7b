"""``molmo-agent finetune``: train a Molmo2 checkpoint on pointing / action supervision.

The loop is deliberately plain PyTorch (AdamW, linear warm-up then cosine decay, gradient accumulation,
gradient clipping, bf16 autocast on CUDA) so that every step is visible and resumable. What is specific to
this project:

- the loss is on answer tokens only (``batches.TurnCollator`` masks the prompt and the image tokens);
- periodic evaluation saves a real checkpoint and loads it back with ``ma.load_model`` before running the
  agent path on held-out seeds, so "eval accuracy" is what a user of the checkpoint would get;
- LoRA (peft) for models too large to fine-tune fully; checkpoints are saved merged, so they load like any
  other Molmo2 folder, with the adapter kept beside them for resuming.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import MolmoAgentError
from . import attention_rows
from .answer_tokens import PLACES, VALUE, coordinate_digit_tokens, decoded_pieces
from .batches import IGNORE_INDEX, BatchStream, Mixture, SourceSpec, TurnCollator, unpack_pixels

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
HISTORY_FILE = "history.jsonl"
FINAL_DIR = "final"


class FinetuneError(MolmoAgentError):
    """A fine-tuning run cannot start or continue (bad settings, nothing to resume)."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything a run depends on; saved in every checkpoint so a resume checks it continues the same run."""

    model: str
    """Checkpoint to start from: a Hub id or a local Molmo2 folder (``init_preset`` builds one)."""
    out_dir: Path
    data: tuple[str, ...] = ("synthetic_gui:icon",)
    init_preset: str | None = None
    """Start from a fresh tiny Molmo2 of this preset (``tiny_molmo2.PRESETS``), built in ``out_dir``."""
    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    decay_fraction: float = 1.0
    """Share of the run over which the lr decays (cosine); before it the lr holds at ``lr``. 1.0 is plain
    cosine; ~0.2 is warm-up/stable/decay, which keeps the lr high through the plateau that pointing goes
    through before it learns where things are."""
    weight_decay: float = 0.0
    attend_weight: float = 0.0
    """Weight of an auxiliary loss that teaches the first attention head of every language-model layer but
    the first to look, at each position that writes a coordinate digit, at the image tokens holding that
    point (one per view; ``batches.TurnCollator(attention_targets=True)``). Why: a model trained from
    scratch sits on a long plateau where the digits are at chance because its attention is spread evenly
    over the image; the answer's own point says where it should look, so the routing can be taught
    directly instead of found by chance. 0 (the default) trains on the answer tokens alone."""
    attend_axis_heads: bool = False
    """Teach head 0 to look at the point at x digits and head 1 at y digits, instead of head 0 at both.
    Why: a head's output is a fixed linear map of what it looks at, so one head cannot hand on the
    token's x at one position and its y at the next; with a head per axis each can learn its own copy."""
    place_weight: float = 0.0
    """Weight of an auxiliary loss that makes every token of the whole-image view say, in the features the
    language model receives, where in the image it is: a fixed linear read-out of the unit-normalised
    feature must give the sine and cosine of the token's (x, y) at 1 and 3 cycles per image
    (:func:`place_loss`). Why: after the attention loss teaches the model which token to look at, the
    coordinate it writes is only as precise as the position it can read off that token, and in a model
    trained from scratch the content swamps it (a linear probe recovers columns with R^2 ~0.6). Training
    only: nothing is added to the saved model. 0 (the default) leaves the features alone."""
    place_code: str = "sincos"
    """Which code :func:`place_loss` asks for (:data:`PLACE_CODES`). ``sincos``: 1 and 3 cycles per image
    in a random subspace. ``value`` (tokenizers with one token per coordinate, ``pointer-numbers*``): the
    code the output head scores coordinate tokens with, x in the head's own subspace and y in another
    (:func:`value_place_readout`). Why: with ``sincos`` the language model must turn a coarse code into
    the head's sharp one, a non-linear map; with ``value`` copying the attended token's x is already the
    answer, and y is one linear map away."""
    place_layer: int = 0
    """Where :func:`place_loss` reads the tokens. 0: the language model's input (the image features), on
    the whole-image view's tokens only. K >= 1: the output of language-model layer K, on every image token
    of both views. Why: the coordinate is read off the token the attention picks, and that is as often a
    high-resolution token as a whole-image one; a high-resolution token's own features say where it is
    within its crop, not which crop, so without this its place (the y of a portrait screen, stacked in
    crops) is ambiguous. By layer K the language model has seen the crops in order and can tell them apart;
    the loss asks it to write every token's place into its state before the later layers read it."""
    vision_lr_scale: float = 1.0
    """Multiplier on the lr of the vision tower and the image adapter. Why: trained from scratch at the
    language model's lr, the adapter's output (a gated, i.e. quadratic, MLP) grows by orders of magnitude
    within a few hundred steps, and the image pathway stops learning (see docs/training/README.md);
    Molmo's own recipes likewise give the ViT and the connector their own lrs."""
    max_grad_norm: float = 1.0
    lora_rank: int = 0
    """0: full fine-tuning; > 0: LoRA of this rank on every linear layer (needs peft)."""
    lora_alpha: float | None = None
    device: str | None = None
    bf16: bool | None = None
    """bf16 autocast; ``None``: on for CUDA, off for CPU."""
    eval_every: int = 500
    eval_seeds: int = 32
    eval_suites: tuple[str, ...] = ("synthetic_gui", "tabletop")
    save_every: int = 500
    keep_checkpoints: int = 2
    workers: int = 0
    reuse: int = 1
    """Train on each generated batch ``reuse`` times on average, drawing steps from a buffer of recent
    batches: for when rendering the data, not the accelerator, limits the speed (a GPU fed by a few CPU
    cores). 1: every step gets a fresh batch."""
    seed: int = 0
    time_budget_s: float | None = None
    """Stop (saving and evaluating) once this much wall time has passed, even before ``steps``."""
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        object.__setattr__(self, "data", tuple(self.data))
        object.__setattr__(self, "eval_suites", tuple(self.eval_suites))
        for name in ("steps", "batch_size", "grad_accum", "reuse"):
            if getattr(self, name) < 1:
                raise FinetuneError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.decay_fraction <= 1:
            raise FinetuneError(f"decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise FinetuneError(f"need lr > 0 and 0 <= min_lr_ratio <= 1, got {self.lr}, {self.min_lr_ratio}")
        for name in ("attend_weight", "place_weight"):
            if getattr(self, name) < 0:
                raise FinetuneError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.attend_axis_heads and self.attend_weight <= 0:
            raise FinetuneError("attend_axis_heads splits the attention loss: it needs attend_weight > 0")
        if self.place_code not in PLACE_CODES:
            known = ", ".join(PLACE_CODES)
            raise FinetuneError(f"place_code must be one of {known}, got {self.place_code!r}")
        if self.place_layer < 0:
            raise FinetuneError(f"place_layer must be >= 0, got {self.place_layer}")
        if self.place_layer and self.place_weight <= 0:
            raise FinetuneError("place_layer moves the place loss: it needs place_weight > 0")
        if self.vision_lr_scale <= 0:
            raise FinetuneError(f"vision_lr_scale must be > 0, got {self.vision_lr_scale}")
        if self.lora_rank < 0:
            raise FinetuneError(f"lora_rank must be >= 0, got {self.lora_rank}")
        for spec in self.data:
            SourceSpec.parse(spec)

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


class ImageFeatureMeter:
    """RMS of the image adapter's output in the latest forward pass, logged as ``image_rms``.

    Why: the language model normalises each token, so nothing in the loss stops the image features from
    growing; when they grow by orders of magnitude the image pathway stops learning and the gradient norm
    spikes. This number shows that happening in the history, long before the accuracy says so.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.value: float | None = None
        adapters = [m for name, m in model.named_modules() if name.endswith("multi_modal_projector")]
        if adapters:
            adapters[0].register_forward_hook(self._record)

    def _record(self, module, inputs, output) -> None:
        hidden = getattr(output, "last_hidden_state", output)
        if isinstance(hidden, torch.Tensor) and hidden.numel():
            self.value = float(hidden.detach().float().pow(2).mean().sqrt())

    def field(self) -> dict[str, float]:
        return {} if self.value is None else {"image_rms": round(self.value, 3)}


class PlaceTap:
    """Keeps the token states :func:`place_loss` scores from the latest forward pass: the language model's
    input embeddings (image features already added) at ``layer`` 0, else the output of its layer
    ``layer``. Hooks only, so the model's own forward is untouched."""

    def __init__(self, model: torch.nn.Module, layer: int = 0) -> None:
        self.value: torch.Tensor | None = None
        inner = [m for name, m in model.named_modules() if name.endswith("language_model")]
        if not inner:
            raise FinetuneError("place_weight needs a Molmo2 language model to read image features from")
        if layer == 0:
            inner[0].register_forward_pre_hook(self._record_input, with_kwargs=True)
            return
        layers = getattr(inner[0], "layers", ())
        if not 1 <= layer <= len(layers):
            raise FinetuneError(
                f"place_layer {layer} is not a layer of this language model (it has {len(layers)}); "
                f"use 0 for its input or 1-{len(layers)}"
            )
        layers[layer - 1].register_forward_hook(self._record_output)

    def _record_input(self, module, args, kwargs) -> None:
        self.value = kwargs.get("inputs_embeds")

    def _record_output(self, module, args, output) -> None:
        self.value = output[0] if isinstance(output, tuple) else output


PLACE_CYCLES = (1.0, 3.0)
"""Cycles per image of the sine-cosine position code :func:`place_loss` asks the features to carry: one
cycle gives a coordinate's hundreds digit as an angle, three keep neighbouring tenths apart."""


def place_code(xy: torch.Tensor) -> torch.Tensor:
    """(N, 2) fractions of the image -> (N, 4 * len(PLACE_CYCLES)) sines and cosines."""
    angles = torch.cat([2 * math.pi * cycles * xy for cycles in PLACE_CYCLES], dim=1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def place_readout(width: int, seed: int = 0) -> torch.Tensor:
    """A fixed (code size, width) matrix of orthonormal rows: the read-out :func:`place_loss` scores.
    Fixed and seeded, so a resumed run scores the same read-out and nothing needs saving."""
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(width, 4 * len(PLACE_CYCLES), generator=generator)
    return torch.linalg.qr(gaussian).Q.T.contiguous()


PLACE_CODES = ("sincos", "value")
"""The codes ``FinetuneConfig.place_code`` names: :func:`place_code` and :func:`value_place_code`."""

PLACE_READOUT_FILE = "place_readout.safetensors"
"""Where a run keeps a read-out derived from its starting model, so a resumed run scores the same one."""


def value_place_code(xy: torch.Tensor) -> torch.Tensor:
    """(N, 2) fractions of the image -> the coordinate tokens' value codes of x and of y, side by side:
    what the output head's row for a coordinate is built from (``tiny_molmo2.value_code``)."""
    from ..backends.tiny_molmo2 import value_code

    return torch.cat([value_code(xy[:, 0] * 1000), value_code(xy[:, 1] * 1000)], dim=1).to(xy.device)


def value_place_readout(model, tokenizer, seed: int = 0) -> torch.Tensor:
    """A (2 * code size, width) read-out with orthonormal rows for :func:`value_place_code`. Its x half is
    the subspace in which the output head's coordinate rows hold their value code (a least-squares fit of
    the rows on the code, made orthonormal by its polar factor so the fit's own directions keep their
    signs); its y half is a seeded random subspace orthogonal to it. Raises ``FinetuneError`` when the
    vocabulary has no token per coordinate."""
    from ..backends.tiny_molmo2 import NUMBER_TOKENS, value_code

    vocab = tokenizer.get_vocab()
    if not all(token in vocab for token in NUMBER_TOKENS):
        raise FinetuneError(
            "place_code 'value' needs a vocabulary with one token per coordinate ('000' ... '999'), as the "
            "pointer-numbers presets build; use place_code 'sincos' for this model"
        )
    rows = model.get_output_embeddings().weight.detach().float().cpu()
    head = rows[torch.tensor([vocab[token] for token in NUMBER_TOKENS])]
    code = value_code(torch.arange(len(NUMBER_TOKENS)))
    fit = torch.linalg.lstsq(code, head).solution  # (code size, width): head ~ code @ fit
    left, _, right = torch.linalg.svd(fit, full_matrices=False)
    x_rows = left @ right
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(x_rows.shape[1], x_rows.shape[0], generator=generator)
    gaussian = gaussian - x_rows.T @ (x_rows @ gaussian)
    y_rows = torch.linalg.qr(gaussian).Q.T
    return torch.cat([x_rows, y_rows]).contiguous()


def place_loss(
    embeddings: torch.Tensor, target: torch.Tensor, readout: torch.Tensor, code=place_code
) -> torch.Tensor | None:
    """Mean squared error between the read-out of unit-normalised (RMS 1) token features and the ``code``
    (:func:`place_code` or :func:`value_place_code`) of their positions. ``embeddings`` (B, L, D);
    ``target`` (B, L, 2) with NaN on tokens without a place; ``None`` when no token has one."""
    valid = ~target[..., 0].isnan()
    if not bool(valid.any()):
        return None
    features = embeddings[valid].float()
    features = features / features.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    predicted = features @ readout.to(features.device).T
    return torch.nn.functional.mse_loss(predicted, code(target[valid].to(features.device).float()))


VISION_MODULES = ("vision_tower", "multi_modal_projector")
"""Name parts of the image pathway's parameters in transformers' Molmo2 (the ViT and the adapter)."""


def _parameter_groups(model: torch.nn.Module, vision_lr_scale: float) -> list[dict[str, Any]]:
    """Trainable parameters split into the image pathway and the rest, each with its lr multiplier."""
    vision, other = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (vision if any(part in name for part in VISION_MODULES) else other).append(parameter)
    groups = [{"params": other, "lr_scale": 1.0}]
    if vision:
        groups.append({"params": vision, "lr_scale": vision_lr_scale})
    return groups


def learning_rate(config: FinetuneConfig, step: int, elapsed_s: float = 0.0) -> float:
    """Linear warm-up to ``lr``, hold, then cosine decay to ``lr * min_lr_ratio`` over the last
    ``decay_fraction`` of the run. The run ends at ``steps`` or at the time budget, whichever comes first,
    so a run cut short by the budget still ends annealed."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    if config.time_budget_s:
        progress = max(progress, min(elapsed_s / config.time_budget_s, 1.0))
    hold = 1.0 - config.decay_fraction
    progress = max(progress - hold, 0.0) / max(config.decay_fraction, 1e-9)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------------------ model setup


def _starting_checkpoint(config: FinetuneConfig) -> str:
    if config.init_preset is None:
        return config.model
    from ..backends.tiny_molmo2 import PRESETS, build_tiny_molmo2

    if config.init_preset not in PRESETS:
        raise FinetuneError(f"unknown preset {config.init_preset!r}; choose from {', '.join(PRESETS)}")
    init_dir = config.out_dir / "init"
    if not (init_dir / "config.json").is_file():
        build_tiny_molmo2(init_dir, PRESETS[config.init_preset])
    return str(init_dir)


def _load_for_training(location: str, device: torch.device):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ..backends.registry import resolve

    resolved = resolve(location)
    if resolved.family != "molmo2":
        raise FinetuneError(
            f"{resolved.model_id} is a Molmo v1 checkpoint; finetune trains Molmo2 checkpoints (native "
            "transformers); v1 needs its remote training code"
        )
    processor = AutoProcessor.from_pretrained(resolved.location)
    model = AutoModelForImageTextToText.from_pretrained(
        resolved.location, dtype=torch.float32, attn_implementation="sdpa"
    )
    return model.to(device), processor, resolved


def _apply_lora(model, config: FinetuneConfig):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise FinetuneError("LoRA needs peft: pip install 'molmo-agent[train]'") from exc
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha or 2 * config.lora_rank,
        target_modules="all-linear",
        lora_dropout=0.0,
    )
    return get_peft_model(model, lora)


# ------------------------------------------------------------------------------------------ checkpoints


def _save_model(model, processor, folder: Path, lora: bool) -> None:
    """A folder ``ma.load_model`` reads: LoRA weights merged into a copy of the base."""
    folder.mkdir(parents=True, exist_ok=True)
    if lora:
        model.save_pretrained(folder / "adapter")
        import copy

        merged = copy.deepcopy(model).merge_and_unload()
        merged.save_pretrained(folder)
        del merged
    else:
        model.save_pretrained(folder)
    processor.save_pretrained(folder)


def save_checkpoint(
    model, processor, optimizer, config: FinetuneConfig, step: int, history: list[dict], folder: Path
) -> Path:
    _save_model(model, processor, folder, config.lora_rank > 0)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "config": config.to_json(),
    }
    torch.save(state, folder / STATE_FILE)
    (folder / "molmo_agent.json").write_text(
        json.dumps({"trained_by": "molmo-agent finetune", "step": step, "config": config.to_json()}, indent=2)
    )
    _write_history(history, folder / HISTORY_FILE)
    return folder


def _write_history(history: list[dict], path: Path) -> None:
    path.write_text("".join(json.dumps(h) + "\n" for h in history))


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = [p for p in out_dir.glob("checkpoint-*") if (p / STATE_FILE).is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def _prune(out_dir: Path, keep: int) -> None:
    found = sorted(
        (p for p in out_dir.glob("checkpoint-*") if (p / STATE_FILE).is_file()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    for old in found[: max(len(found) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------- evaluation


def evaluate_checkpoint(folder: Path, config: FinetuneConfig, device: torch.device) -> dict[str, Any]:
    """Load ``folder`` as a user would and score each suite on held-out seeds ``0 .. eval_seeds - 1``
    with the evaluation harness (the same episodes and scoring as ``molmo-agent eval`` with the suite's
    documented arguments, ``evaluation.suites``)."""
    from ..evaluation.suites import score_suite
    from ..model import load_model

    model = load_model(str(folder), device=str(device))
    seeds = range(config.eval_seeds)
    results = {}
    for suite in config.eval_suites:
        summary, _ = score_suite(model, suite, seeds)
        results[suite] = round(summary["step_accuracy"], 4)
        if "tabletop" in summary and summary["tabletop"]["median_error_m"] is not None:
            results[f"{suite}_median_error_m"] = summary["tabletop"]["median_error_m"]
    del model
    return results


# ----------------------------------------------------------------------------------------------- loop


@dataclass
class PlaceProbe:
    """What :func:`place_loss` needs during training: the embedding tap, the fixed read-out and its code."""

    tap: PlaceTap
    readout: torch.Tensor
    code: Callable[[torch.Tensor], torch.Tensor] = place_code


def _place_probe(model, processor, config: FinetuneConfig) -> PlaceProbe:
    """The probe for ``config.place_code``. A ``value`` read-out is derived from the model a run starts
    from, so it is saved in the run folder and read back on resume instead of derived again."""
    tap = PlaceTap(model, config.place_layer)
    if config.place_code == "sincos":
        return PlaceProbe(tap, place_readout(model.config.get_text_config().hidden_size))
    from safetensors.torch import load_file, save_file

    saved = config.out_dir / PLACE_READOUT_FILE
    if saved.is_file():
        readout = load_file(saved)["readout"]
    else:
        readout = value_place_readout(model, processor.tokenizer, seed=config.seed)
        save_file({"readout": readout}, saved)
    return PlaceProbe(tap, readout, value_place_code)


def _answer_loss(
    model,
    batch: dict[str, torch.Tensor],
    taught: attention_rows.TaughtRows | None = None,
    place: PlaceProbe | None = None,
    attend_axis_heads: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Mean cross-entropy over answer tokens (logits are only computed for the answer's span), with the
    per-token losses and the labels they belong to (for :func:`coordinate_digit_losses`), and the
    auxiliary losses the batch has targets for: ``attend`` (:func:`attention_loss`, when ``taught``, the
    recorder :func:`attention_rows.install` put in the model, is given; a head per axis with
    ``attend_axis_heads``) and ``place`` (:func:`place_loss`, when ``place`` is given)."""
    labels = batch.pop("labels")
    query, target = batch.pop("attend_query", None), batch.pop("attend_target", None)
    axis = batch.pop("attend_axis", None)
    place_target = batch.pop("place_target", None)
    answer_positions = (labels != IGNORE_INDEX).any(dim=0).nonzero()
    keep = labels.shape[1] - int(answer_positions.min()) + 1 if len(answer_positions) else 1
    supervise = taught is not None and query is not None and bool((query >= 0).any())
    if supervise:
        heads = axis if attend_axis_heads and axis is not None else torch.zeros_like(query)
        taught.arm(query, heads)
    try:
        output = model(**batch, logits_to_keep=keep)
    finally:
        rows = taught.disarm() if supervise else []
    logits = output.logits.float()
    shifted_logits = logits[:, :-1]
    shifted_labels = labels[:, labels.shape[1] - keep + 1 :]
    token_losses = torch.nn.functional.cross_entropy(
        shifted_logits.transpose(1, 2), shifted_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    mask = shifted_labels != IGNORE_INDEX
    loss = token_losses.sum() / mask.sum().clamp(min=1)
    auxiliary = {
        "attend": (attention_loss(rows, query, target) if supervise else None),
        "place": (
            place_loss(place.tap.value, place_target, place.readout, place.code)
            if place is not None and place_target is not None and place.tap.value is not None
            else None
        ),
    }
    return loss, token_losses.detach(), shifted_labels, {k: v for k, v in auxiliary.items() if v is not None}


def attention_loss(
    rows: Sequence[torch.Tensor],
    query: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor | None:
    """Mean over supervised positions and layers of -log(attention mass of the taught head on the targets).

    ``rows``: per language-model layer (B, Q, L), the taught head's attention at each supervised position
    (:class:`attention_rows.TaughtRows`: head 0, or the batch's ``attend_axis`` for a head per axis);
    ``query`` (B, Q) those positions, -1 for none; ``target`` (B, Q, L) the tokens to look at. Only the
    taught heads learn to look, so the others stay free for whatever else the answer needs (the prompt's
    words, the format).
    The first layer is left out (unless it is the only one) because its queries come from each position's
    own token alone, before anything has told that position which object the prompt names.
    ``None`` when the batch has no supervised position (answers without points).
    """
    valid = query >= 0
    if not bool(valid.any()) or not rows:
        return None
    terms = []
    for layer_rows in rows[1:] if len(rows) > 1 else rows:
        mass = (layer_rows.float() * target).sum(-1)
        terms.append(-torch.log(mass.clamp(min=1e-6))[valid])
    return torch.cat(terms).mean()


def coordinate_digit_losses(token_losses: torch.Tensor, labels: torch.Tensor, tokenizer) -> dict[str, float]:
    """Mean loss of the coordinate digits by place: hundreds, tens and units of Molmo2's zero-padded
    per-mille values (x and y; frame and point indices are not padded and are left out).

    Why: the mean over all answer tokens hides whether a model knows where things are. The format and the
    echoed label are learnt within a few hundred steps and then cost nothing, the units digit stays near
    chance (ln 10 = 2.30) at any useful resolution, so the hundreds and the tens digits (which tenth, which
    hundredth of the image) are the numbers that say whether pointing is being learnt. Answers in other
    formats (v1's percent attributes, actions) contribute nothing; empty places are left out. A tokenizer
    with one token per coordinate reports it as ``value`` (chance: ln 1000 = 6.91).
    """
    token_losses, labels = token_losses.float().cpu(), labels.cpu()  # one copy, not a sync per token
    places = (*PLACES, VALUE)
    sums = dict.fromkeys(places, 0.0)
    counts = dict.fromkeys(places, 0)
    for row in range(labels.shape[0]):
        positions = (labels[row] != IGNORE_INDEX).nonzero().flatten().tolist()
        pieces = decoded_pieces([int(labels[row, p]) for p in positions], tokenizer)
        for digit in coordinate_digit_tokens(pieces):
            sums[digit.place] += float(token_losses[row, positions[digit.token]])
            counts[digit.place] += 1
    return {place: round(sums[place] / counts[place], 4) for place in places if counts[place]}


def _batches(config: FinetuneConfig, processor, start_batch: int):
    mixture = Mixture([SourceSpec.parse(spec) for spec in config.data], family="molmo2")
    stats = processor.image_processor.image_mean, processor.image_processor.image_std
    collator = TurnCollator(
        processor,
        attention_targets=config.attend_weight > 0,
        place_targets=config.place_weight > 0,
        place_every_view=config.place_layer > 0,
    )
    stream = BatchStream(mixture, collator, config.batch_size, config.seed, start_batch, stats)
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=config.workers,
        prefetch_factor=4 if config.workers else None,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )
    yield from loader


def replayed(batches, reuse: int, seed: int, buffer_batches: int | None = None):
    """Each batch from ``batches`` is followed by ``reuse`` draws from a buffer of the latest
    ``buffer_batches`` (default ``8 * reuse``) batches, the new one included: every batch is trained on
    ``reuse`` times on average, never many times in a row. ``reuse`` 1 passes the stream through."""
    if reuse <= 1:
        yield from batches
        return
    import random

    draw = random.Random(seed)
    size = buffer_batches or 8 * reuse
    buffer: list = []
    for batch in batches:
        buffer.append(batch)
        if len(buffer) > size:
            buffer.pop(0)
        for _ in range(reuse):
            yield buffer[draw.randrange(len(buffer))]


def _digits_field(token_losses: torch.Tensor, labels: torch.Tensor, tokenizer) -> dict[str, Any]:
    """``{"digits": {...}}`` for a history record (of the step's last micro-batch), or nothing."""
    digits = coordinate_digit_losses(token_losses, labels, tokenizer)
    return {"digits": digits} if digits else {}


def finetune(config: FinetuneConfig) -> Path:
    """Run (or resume) training; returns the folder of the final checkpoint (``out_dir/final``)."""
    from ..backends.torch_setup import choose_device

    started = time.monotonic()
    device = choose_device(config.device)
    bf16 = config.bf16 if config.bf16 is not None else device.type == "cuda"
    if device.type == "cuda" and not bf16:
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 weights and sums, tensor-core products
        torch.backends.cudnn.allow_tf32 = True
    config.out_dir.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(config.out_dir)
    source = str(resume_from) if resume_from and config.lora_rank == 0 else _starting_checkpoint(config)
    model, processor, _ = _load_for_training(source, device)
    taught = attention_rows.install(model) if config.attend_weight > 0 else None
    if config.attend_axis_heads and model.config.get_text_config().num_attention_heads < 2:
        raise FinetuneError("attend_axis_heads needs a language model with at least two attention heads")
    if config.lora_rank:
        model = _apply_lora(model, config)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        _parameter_groups(model, config.vision_lr_scale),
        lr=config.lr,
        betas=(0.9, 0.95),
        weight_decay=config.weight_decay,
        fused=device.type == "cuda",
    )
    lr_scales = [group["lr_scale"] for group in optimizer.param_groups]  # this run's, not a resumed run's
    step, history = 0, []
    if resume_from is not None:
        step, history = _restore(resume_from, model, optimizer, config)
        logger.info("resuming from %s at step %d", resume_from, step)
    torch.manual_seed(config.seed + step)
    (config.out_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2))

    batches = replayed(
        _batches(config, processor, start_batch=step * config.grad_accum // config.reuse),
        config.reuse,
        seed=config.seed + step,
    )
    pixel_stats = processor.image_processor.image_mean, processor.image_processor.image_std
    image_meter = ImageFeatureMeter(model)
    place = _place_probe(model, processor, config) if config.place_weight > 0 else None
    weights = {"attend": config.attend_weight, "place": config.place_weight}
    bar = _progress_bar(config, step)
    last_eval: dict[str, Any] = {}
    skipped = 0
    window: list[float] = []
    aux_windows: dict[str, list[float]] = {name: [] for name in weights}
    try:
        while step < config.steps:
            current_lr = learning_rate(config, step, time.monotonic() - started)
            for group, scale in zip(optimizer.param_groups, lr_scales, strict=True):
                group["lr"] = current_lr * scale
            total = 0.0
            aux_totals: dict[str, float] = {}
            for _ in range(config.grad_accum):
                batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
                unpack_pixels(batch, *pixel_stats)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss, token_losses, answer_labels, auxiliary = _answer_loss(
                        model, batch, taught, place, config.attend_axis_heads
                    )
                objective = loss + sum(weights[name] * value for name, value in auxiliary.items())
                (objective / config.grad_accum).backward()
                total += float(loss.detach()) / config.grad_accum
                for name, value in auxiliary.items():
                    aux_totals[name] = aux_totals.get(name, 0.0) + float(value.detach()) / config.grad_accum
            grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm))
            if math.isfinite(grad_norm) and math.isfinite(total):
                optimizer.step()
            else:  # one overflowing batch must not turn every weight into NaN
                skipped += 1
                logger.warning("step %d: non-finite loss or gradient (%s): skipped", step + 1, grad_norm)
                if skipped > max(10, config.steps // 100):
                    raise FinetuneError(
                        f"{skipped} updates skipped for non-finite gradients by step {step + 1}: the run "
                        "diverged; lower --lr (or train in float32: bf16 off)"
                    )
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window.append(total)
            for name, value in aux_totals.items():  # e.g. steps whose answers had no point: no `attend`
                aux_windows[name].append(value)
            out_of_time = (
                config.time_budget_s is not None and time.monotonic() - started > config.time_budget_s
            )
            record: dict[str, Any] = {}
            if step % 10 == 0 or step == config.steps or out_of_time:
                record = {
                    "step": step,
                    "loss": round(sum(window) / len(window), 5),
                    **_digits_field(token_losses, answer_labels, processor.tokenizer),
                    "lr": current_lr,
                    "grad_norm": round(grad_norm, 4),
                    **image_meter.field(),
                    **{name: round(sum(vals) / len(vals), 4) for name, vals in aux_windows.items() if vals},
                    "elapsed_s": round(time.monotonic() - started, 1),
                }
                window, aux_windows = [], {name: [] for name in weights}
            due_eval = config.eval_every and (
                step % config.eval_every == 0 or step == config.steps or out_of_time
            )
            due_save = step % config.save_every == 0 or due_eval or step == config.steps or out_of_time
            if due_save and not record:
                record = {"step": step, "elapsed_s": round(time.monotonic() - started, 1)}
            if record:
                history.append(record)
            if due_save:
                folder = config.out_dir / f"checkpoint-{step}"
                save_checkpoint(model, processor, optimizer, config, step, history, folder)
                if due_eval:
                    try:
                        last_eval = evaluate_checkpoint(folder, config, device)
                    except Exception as exc:  # an evaluation failure must not cost the training run
                        logger.exception("evaluation at step %d failed; training goes on", step)
                        last_eval = {"error": f"{type(exc).__name__}: {exc}"}
                    record["eval"] = last_eval
                    _write_history(history, folder / HISTORY_FILE)
                _prune(config.out_dir, config.keep_checkpoints)
            if record:
                _write_history(history, config.out_dir / HISTORY_FILE)
                if bar is None and (step % 100 == 0 or "eval" in record or step == config.steps):
                    logger.info("%s", json.dumps(record))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{total:.3f}", **{k: f"{v:.0%}" for k, v in last_eval.items() if "error" not in k}
                )
            if out_of_time:
                logger.warning("time budget of %.0f s reached at step %d", config.time_budget_s, step)
                break
    finally:
        if bar is not None:
            bar.close()
    final = config.out_dir / FINAL_DIR
    if final.exists():
        shutil.rmtree(final)
    _save_model(model, processor, final, config.lora_rank > 0)
    (final / "molmo_agent.json").write_text(
        json.dumps({"trained_by": "molmo-agent finetune", "step": step, "config": config.to_json()}, indent=2)
    )
    from .curve import plot_history

    plot_history(history, config.out_dir / "learning_curve.png")
    return final


def _restore(folder: Path, model, optimizer, config: FinetuneConfig) -> tuple[int, list[dict]]:
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    saved = state.get("config", {})
    for key in ("data", "batch_size", "grad_accum", "lora_rank", "seed"):
        ours = config.to_json()[key]
        theirs = saved.get(key)
        if _comparable(ours) != _comparable(theirs):
            raise FinetuneError(
                f"cannot resume from {folder}: it was trained with {key}={theirs!r}, this run has {ours!r}; "
                "use the same settings or a new --out folder"
            )
    if config.lora_rank:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(folder / "adapter" / "adapter_model.safetensors")))
    try:
        optimizer.load_state_dict(state["optimizer"])
    except ValueError as exc:  # e.g. a checkpoint from before the image pathway had its own lr group
        raise FinetuneError(
            f"cannot resume from {folder}: its optimizer state does not fit this model ({exc}); "
            "start a new --out folder with --model pointing at that checkpoint"
        ) from exc
    torch.set_rng_state(state["torch_rng"])
    history_path = folder / HISTORY_FILE
    history = (
        [json.loads(line) for line in history_path.read_text().splitlines()] if history_path.exists() else []
    )
    return int(state["step"]), history


def _comparable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def _progress_bar(config: FinetuneConfig, step: int):
    if not config.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.steps, initial=step, unit="step", desc="finetune", dynamic_ncols=True)


__all__ = ["FinetuneConfig", "FinetuneError", "finetune", "latest_checkpoint", "learning_rate"]
