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

4. **Reading**: at the positions that predict the point's x and y, in the last layer, for the head
   that puts most attention on the target (chosen per axis): how often its most-attended image token
   holds the point, and the median distance (per mille of the image) from the point to the
   attention-weighted centre of the image tokens, next to the median distance of the model's own most
   likely coordinate (vocabularies with one token per coordinate). A model whose attention finds the
   point but whose own coordinate is far off routes well and cannot yet read the attended token's place
   (docs/training, seventh session).

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

from molmo_agent.parsing import parse_points  # noqa: E402
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
class Reading:
    """Per axis (x, y): see measurement 4 of the module docstring."""

    heads: tuple[int, int]
    picks: tuple[float, float]
    attended_error: tuple[float, float]
    model_error: tuple[float, float] | None


@dataclass
class Diagnosis:
    feature_size: float
    position_r2: tuple[float, float]
    image_attention: list[float]
    target_attention: list[float]
    reading: Reading | None = None


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


def _coordinate_values(tokenizer) -> dict[int, int]:
    """Token id -> per-mille value for vocabularies with one token per coordinate; empty otherwise."""
    from molmo_agent.training.tiny_molmo2 import NUMBER_TOKENS

    vocab = tokenizer.get_vocab()
    if not all(token in vocab for token in NUMBER_TOKENS):
        return {}
    return {vocab[token]: value for value, token in enumerate(NUMBER_TOKENS)}


def reading(model, processor, examples: list[Example]) -> Reading | None:
    """Measurement 4; ``None`` when no example has a supervised point."""
    batch = TurnCollator(processor, attention_targets=True)(examples)
    batch.pop("labels")
    queries, targets, axes = batch.pop("attend_query"), batch.pop("attend_target"), batch.pop("attend_axis")
    with torch.no_grad():
        output = model(**batch, output_attentions=True)
    last = output.attentions[-1].float()  # (B, heads, L, L)
    values = _coordinate_values(processor.tokenizer)
    value_ids = torch.tensor(list(values), dtype=torch.long)
    found = []  # (row, query position, target mask, axis, true per-mille value)
    for row in range(len(examples)):
        height, width = examples[row].image.shape[:2]
        points = parse_points(examples[row].answer, image_sizes=[(width, height)])
        point = (points[0].x, points[0].y) if points else None
        for column in range(queries.shape[1]):
            position, axis = int(queries[row, column]), int(axes[row, column])
            if position < 0 or point is None or any(f[0] == row and f[3] == axis for f in found):
                continue  # the first point's x and y only
            truth = 1000 * (point[0] / width if axis == 0 else point[1] / height)
            found.append((row, position, targets[row, column], axis, truth))
    if not found:
        return None
    heads = []  # per axis: the head with most mass on the target (a head per axis may be taught)
    for axis in (0, 1):
        masses = [last[r, :, p][:, t].sum(-1) for r, p, t, a, _ in found if a == axis]
        heads.append(int(torch.stack(masses).mean(0).argmax()) if masses else 0)
    picks, attended, own = ([], []), ([], []), ([], [])
    for row, position, target, axis, truth in found:
        image = (batch["input_ids"][row] == model.config.image_patch_id).nonzero().flatten()
        centres = torch.tensor(_cells(batch["image_grids"][row].tolist()))[:, axis] * 1000
        if len(centres) != len(image):
            continue
        weights = last[row, heads[axis], position][image]
        picks[axis].append(bool(target[image[weights.argmax()]]))
        attended[axis].append(abs(float(weights @ centres / weights.sum()) - truth))
        if values:
            logits = output.logits[row, position, value_ids]
            own[axis].append(abs(values[int(value_ids[logits.argmax()])] - truth))

    def median(pair):
        return tuple(float(np.median(v)) if v else float("nan") for v in pair)

    return Reading(
        (heads[0], heads[1]),
        tuple(float(np.mean(v)) if v else float("nan") for v in picks),
        median(attended),
        median(own) if values else None,
    )


def diagnose(path: str, seeds: int = 150, data: str = "shapes:max1,x3") -> Diagnosis:
    from transformers import AutoProcessor, Molmo2ForConditionalGeneration

    processor = AutoProcessor.from_pretrained(path)
    model = Molmo2ForConditionalGeneration.from_pretrained(path, attn_implementation="eager").eval()
    mixture = Mixture([SourceSpec.parse(data)])
    rng = np.random.default_rng(0)
    examples = [mixture.example(rng, seed) for seed in range(seeds)]  # seeds 0..N-1: never trained on
    features, positions, size = features_and_positions(model, processor, examples)
    image_share, target_share = routing(model, processor, examples[:16])
    return Diagnosis(
        size,
        linear_r2(features, positions),
        image_share,
        target_share,
        reading(model, processor, examples[:24]),
    )


def _pair(values: tuple[float, float], form: str = ".0f") -> str:
    return f"{values[0]:{form}} / {values[1]:{form}}"


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
        if d.reading is not None:
            r = d.reading
            own = "" if r.model_error is None else f"; the model's own coordinate {_pair(r.model_error)}"
            print(
                f"  reading (last layer, heads {_pair(r.heads, 'd')}; x, y): most-attended token holds the "
                f"point {_pair(r.picks, '.0%')}; median distance (per mille) of the attended centre "
                f"{_pair(r.attended_error)}{own}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
