"""Why a Molmo2 checkpoint does or does not point: three measurements of its image pathway.

Run on any local Molmo2 checkpoint (a training run's ``checkpoint-N`` or ``final``)::

    python benchmarks/diagnose_pointing.py RUN/checkpoint-500 [--seeds 150] [--data synthetic_gui:icon,d0]

1. **Image feature size**: mean |value| of the adapter's output (what the language model receives) on
   held-out scenes (default: single shapes at 3x size; ``--data`` takes any generated ``finetune --data``
   source with one point per answer, e.g. the GUI icon task). A freshly built pointer model gives ~20-50;
   trained from scratch with the vision tower and adapter at the language model's lr it grows to 1e4-1e6
   within a few hundred steps.
2. **Position in the tokens**: how well a linear map reads each image token's own grid cell from its
   features (held-out R^2, columns and rows). ~0.6-0.8 at initialisation (the sine-cosine position
   embeddings); near 0 means the tokens no longer say where they are, and no amount of training of the
   language model can point from them.
3. **Routing**: at the answer position that predicts the x coordinate's hundreds digit, the share of
   attention (per layer, heads averaged) on image tokens, and on the two tokens (one per view) whose cell
   holds the target, as a multiple of an even share. ~1x means the model has not found the object yet (the
   loss plateau); pointing models put several times their share there.

These numbers are what docs/training/README.md reports per run; they are cheap (a forward pass per
scene) and tell a stuck run from a slow one long before held-out accuracy moves.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "envs")]

from molmo_agent.training.batches import (  # noqa: E402
    Mixture,
    SourceSpec,
    TurnCollator,
    cell_centres,
    chw_pixels,
    view_cells,
)
from molmo_agent.training.examples import Example  # noqa: E402


@dataclass
class Diagnosis:
    feature_size: float
    position_r2: tuple[float, float]
    image_attention: list[float]
    target_attention: list[float]


def _cells(grid: list[int]) -> list[tuple[float, float]]:
    """Centre (x, y) in 0-1 of every image token, global view first, then the crop view(s)."""
    centres = []
    for rows, cols in view_cells(grid):
        centres += cell_centres(rows, cols)
    return centres


def features_and_positions(model, processor, examples: list[Example]) -> tuple[np.ndarray, np.ndarray, float]:
    features, positions, sizes = [], [], []
    for example in examples:
        batch = processor.image_processor(images=[chw_pixels(example)], return_tensors="pt")
        with torch.no_grad():
            tokens = model.model.get_image_features(
                batch["pixel_values"], batch["image_token_pooling"], batch["image_grids"]
            ).pooler_output[0]
        cells = _cells(batch["image_grids"][0].tolist())
        if len(cells) != tokens.shape[0]:  # tokens dropped as padding: cells no longer line up
            continue
        features.append(tokens.float().numpy())
        positions.append(np.array(cells))
        sizes.append(float(tokens.abs().mean()))
    return np.concatenate(features), np.concatenate(positions), float(np.mean(sizes))


def linear_r2(features: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Held-out R^2 of a ridge map from unit-normalised features (scale-free, like the model's RMSNorm)."""
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    x = np.hstack([x, np.ones((len(x), 1))])
    cut = int(len(x) * 0.8)
    weights = np.linalg.solve(x[:cut].T @ x[:cut] + 1e-3 * np.eye(x.shape[1]), x[:cut].T @ targets[:cut])
    residual = ((x[cut:] @ weights - targets[cut:]) ** 2).sum(0)
    spread = ((targets[cut:] - targets[cut:].mean(0)) ** 2).sum(0)
    r2 = 1 - residual / spread
    return float(r2[0]), float(r2[1])


def routing(model, processor, examples: list[Example]) -> tuple[list[float], list[float]]:
    """Uses the training's own attention targets (``TurnCollator(attention_targets=True)``): the first
    supervised position is the one before the x coordinate's hundreds digit (or before the whole x
    coordinate, with the ``numbers`` tokenizer's one token per coordinate)."""
    batch = TurnCollator(processor, attention_targets=True)(examples)
    batch.pop("labels")
    queries, targets = batch.pop("attend_query"), batch.pop("attend_target")
    with torch.no_grad():
        attentions = model(**batch, output_attentions=True).attentions
    on_image = np.zeros(len(attentions))
    on_target = np.zeros(len(attentions))
    rows = [row for row in range(len(examples)) if int(queries[row, 0]) >= 0]  # answers with a point
    for row in rows:
        query = int(queries[row, 0])
        image = (batch["input_ids"][row] == model.config.image_patch_id).nonzero().flatten()
        target = targets[row, 0].nonzero().flatten()
        for layer, attention in enumerate(attentions):
            weights = attention[row].float().mean(0)[query]
            share = float(weights[image].sum())
            on_image[layer] += share
            even = share * len(target) / len(image)
            on_target[layer] += float(weights[target].sum()) / max(even, 1e-12)
    count = max(len(rows), 1)
    return (on_image / count).round(3).tolist(), (on_target / count).round(2).tolist()


def diagnose(path: str, seeds: int = 150, data: str = "shapes:max1,x3") -> Diagnosis:
    from transformers import AutoProcessor, Molmo2ForConditionalGeneration

    processor = AutoProcessor.from_pretrained(path)
    model = Molmo2ForConditionalGeneration.from_pretrained(path, attn_implementation="eager").eval()
    mixture = Mixture([SourceSpec.parse(data)])
    rng = np.random.default_rng(0)
    examples = [mixture.example(rng, seed) for seed in range(seeds)]  # seeds 0..N-1: never trained on
    features, positions, size = features_and_positions(model, processor, examples)
    image_share, target_share = routing(model, processor, examples[:16])
    return Diagnosis(size, linear_r2(features, positions), image_share, target_share)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="local Molmo2 checkpoint folders")
    parser.add_argument("--seeds", type=int, default=150, help="held-out scenes for the position probe")
    parser.add_argument(
        "--data", default="shapes:max1,x3", help="generated finetune --data source, one point per answer"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    for path in args.checkpoints:
        d = diagnose(path, args.seeds, args.data)
        print(
            f"{path}: image features |f| {d.feature_size:.3g}; position R^2 columns {d.position_r2[0]:.2f}, "
            f"rows {d.position_r2[1]:.2f}; attention on image tokens per layer {d.image_attention}, "
            f"on the target x{d.target_attention} of an even share"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
