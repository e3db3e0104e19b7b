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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import MolmoAgentError
from .answer_tokens import PLACES, VALUE, coordinate_digit_tokens, decoded_pieces
from .batches import IGNORE_INDEX, BatchStream, Mixture, SourceSpec, TurnCollator, unpack_pixels
from .objective import Objective

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
    seed: int = 0
    time_budget_s: float | None = None
    """Stop (saving and evaluating) once this much wall time has passed, even before ``steps``."""
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        object.__setattr__(self, "data", tuple(self.data))
        object.__setattr__(self, "eval_suites", tuple(self.eval_suites))
        for name in ("steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise FinetuneError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.decay_fraction <= 1:
            raise FinetuneError(f"decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise FinetuneError(f"need lr > 0 and 0 <= min_lr_ratio <= 1, got {self.lr}, {self.min_lr_ratio}")
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
    from .tiny_molmo2 import PRESETS, build_tiny_molmo2

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


def run_record(config: FinetuneConfig, objective: Objective, step: int) -> dict[str, Any]:
    """What a checkpoint's ``molmo_agent.json`` says of how it was trained: the run's settings and, for a
    recipe beyond plain fine-tuning, the recipe's."""
    recipe = objective.to_json()
    return {
        "trained_by": "molmo-agent finetune",
        "step": step,
        "config": config.to_json(),
        **({"recipe": recipe} if recipe is not None else {}),
    }


def save_checkpoint(
    model,
    processor,
    optimizer,
    config: FinetuneConfig,
    objective: Objective,
    step: int,
    history: list[dict],
    folder: Path,
) -> Path:
    _save_model(model, processor, folder, config.lora_rank > 0)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "config": config.to_json(),
        "recipe": objective.to_json(),
    }
    torch.save(state, folder / STATE_FILE)
    (folder / "molmo_agent.json").write_text(json.dumps(run_record(config, objective, step), indent=2))
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


def _answer_loss(
    model, batch: dict[str, torch.Tensor], objective: Objective
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Mean cross-entropy over answer tokens (logits are only computed for the answer's span), with the
    per-token losses and the labels they belong to (for :func:`coordinate_digit_losses`), and the
    auxiliary losses ``objective`` found targets for in the batch."""
    labels = batch.pop("labels")
    answer_positions = (labels != IGNORE_INDEX).any(dim=0).nonzero()
    keep = labels.shape[1] - int(answer_positions.min()) + 1 if len(answer_positions) else 1
    output, auxiliary = objective.forward(model, batch, keep)
    logits = output.logits.float()
    shifted_logits = logits[:, :-1]
    shifted_labels = labels[:, labels.shape[1] - keep + 1 :]
    token_losses = torch.nn.functional.cross_entropy(
        shifted_logits.transpose(1, 2), shifted_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    mask = shifted_labels != IGNORE_INDEX
    loss = token_losses.sum() / mask.sum().clamp(min=1)
    return loss, token_losses.detach(), shifted_labels, auxiliary


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


def _batches(config: FinetuneConfig, processor, start_batch: int, objective: Objective):
    mixture = Mixture([SourceSpec.parse(spec) for spec in config.data], family="molmo2")
    stats = processor.image_processor.image_mean, processor.image_processor.image_std
    collator = TurnCollator(processor, **objective.collator_options())
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


def _digits_field(token_losses: torch.Tensor, labels: torch.Tensor, tokenizer) -> dict[str, Any]:
    """``{"digits": {...}}`` for a history record (of the step's last micro-batch), or nothing."""
    digits = coordinate_digit_losses(token_losses, labels, tokenizer)
    return {"digits": digits} if digits else {}


def finetune(config: FinetuneConfig, objective: Objective | None = None) -> Path:
    """Run (or resume) training; returns the folder of the final checkpoint (``out_dir/final``).
    ``objective``: what is optimised beside the answer tokens (default: nothing; see :mod:`.objective`)."""
    from ..backends.torch_setup import choose_device

    objective = objective or Objective()
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
    with objective.attached(model, processor):
        if config.lora_rank:
            model = _apply_lora(model, config)
        model.train()
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            objective.parameter_groups(model),
            lr=config.lr,
            betas=(0.9, 0.95),
            weight_decay=config.weight_decay,
            fused=device.type == "cuda",
        )
        lr_scales = [group["lr_scale"] for group in optimizer.param_groups]  # this run's, not a resumed run's
        step, history = 0, []
        if resume_from is not None:
            step, history = _restore(resume_from, model, optimizer, config, objective)
            logger.info("resuming from %s at step %d", resume_from, step)
        torch.manual_seed(config.seed + step)
        (config.out_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2))

        batches = objective.replay(
            _batches(config, processor, step * config.grad_accum // objective.reuse, objective),
            seed=config.seed + step,
        )
        pixel_stats = processor.image_processor.image_mean, processor.image_processor.image_std
        image_meter = ImageFeatureMeter(model)
        weights = dict(objective.weights)
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
                total, aux_totals, token_losses, answer_labels = _accumulate(
                    model, batches, objective, config, device, bf16, pixel_stats
                )
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
                        **{
                            name: round(sum(vals) / len(vals), 4)
                            for name, vals in aux_windows.items()
                            if vals
                        },
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
                    save_checkpoint(model, processor, optimizer, config, objective, step, history, folder)
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
                        loss=f"{total:.3f}",
                        **{k: f"{v:.0%}" for k, v in last_eval.items() if "error" not in k},
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
    (final / "molmo_agent.json").write_text(json.dumps(run_record(config, objective, step), indent=2))
    from .curve import plot_history

    plot_history(history, config.out_dir / "learning_curve.png")
    return final


def _accumulate(
    model, batches, objective: Objective, config: FinetuneConfig, device, bf16: bool, pixel_stats
):
    """Forward and backward ``grad_accum`` micro-batches; returns the step's answer loss, its auxiliary
    losses by name, and the last micro-batch's per-token losses and labels (for the digit losses)."""
    total, aux_totals = 0.0, {}
    for _ in range(config.grad_accum):
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        unpack_pixels(batch, *pixel_stats)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, token_losses, answer_labels, auxiliary = _answer_loss(model, batch, objective)
        weighted = loss + sum(objective.weights[name] * value for name, value in auxiliary.items())
        (weighted / config.grad_accum).backward()
        total += float(loss.detach()) / config.grad_accum
        for name, value in auxiliary.items():
            aux_totals[name] = aux_totals.get(name, 0.0) + float(value.detach()) / config.grad_accum
    return total, aux_totals, token_losses, answer_labels


def _restore(
    folder: Path, model, optimizer, config: FinetuneConfig, objective: Objective
) -> tuple[int, list[dict]]:
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    saved = state.get("config", {})
    theirs, ours = (state.get("recipe") or {}).get("name"), (objective.to_json() or {}).get("name")
    if theirs != ours:  # a recipe's knobs may change on resume (e.g. its lrs), the recipe may not
        raise FinetuneError(
            f"cannot resume from {folder}: it was trained with recipe {theirs or 'plain finetune'!r}, this "
            f"run has {ours or 'plain finetune'!r}; use the same recipe or a new --out folder"
        )
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
