"""From examples to model-ready training batches: a weighted mixture of sources, the chat layout, labels.

A batch is tokenised exactly as the inference path does it (the backend's chat messages and the
checkpoint's own processor), with the answer and the end-of-turn token appended; only those answer tokens
carry a loss. Batch ``k`` is a pure function of ``(seed, k)``, so data loader workers can build batches in
any order and a resumed run continues the very stream it left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..backends.base import Request
from ..backends.molmo2 import chat_messages
from ..parsing import parse_points
from .answer_tokens import coordinate_digit_tokens, decoded_pieces
from .examples import (
    SHAPE_SCALES,
    TRAIN_SEED_BASE,
    DataError,
    Example,
    android_control_examples,
    pixmo_points_examples,
    shapes_example,
    synthetic_gui_example,
    tabletop_example,
)

IGNORE_INDEX = -100
END_OF_TURN = "<|im_end|>"
IMAGE_PATCH_TOKEN = "<im_patch>"
"""Molmo2's token for one pooled image patch (``config.image_patch_id``)."""


@dataclass(frozen=True)
class SourceSpec:
    """One entry of ``--data``: ``name[:argument][=weight]``.

    Names and arguments:

    - ``synthetic_gui[:TASK[,dN][,fill][,phone]]``: TASK is click (default), icon, multi or any; ``dN``
      fixes the difficulty (0-2, else random per screen); ``fill`` makes the app fill the canvas (no small
      windows); ``phone`` keeps to the portrait phone screens of ``GUI_SCREEN_SIZES``.
    - ``tabletop[:maxN]``: scenes of 1 to N objects (default 5).
    - ``shapes[:maxN][,xS]``: plain canvases of 1 to N SyntheticGui icons (default 4): pointing without
      clutter; ``xS`` draws them S times their usual size (e.g. ``shapes:max1,x3`` for a coarse first stage).
    - ``pixmo:FILE.jsonl``: a PixMo-Points-style JSONL (see ``examples.pixmo_points_examples``).
    - ``android_control:DIR``: the ``train`` split of AndroidControl shards in DIR.
    """

    name: str
    argument: str | None = None
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        body, _, weight = text.partition("=")
        name, _, argument = body.partition(":")
        name = name.strip()
        if name not in _SOURCE_NAMES:
            raise DataError(
                f"unknown data source {name!r} in {text!r}; choose from {', '.join(_SOURCE_NAMES)}"
            )
        try:
            value = float(weight) if weight else 1.0
        except ValueError as exc:
            raise DataError(f"the weight in {text!r} is not a number") from exc
        if value <= 0:
            raise DataError(f"the weight in {text!r} must be > 0")
        if name in ("pixmo", "android_control") and not argument:
            raise DataError(f"{name} needs a path: {name}:PATH[=weight]")
        spec = cls(name, argument or None, value)
        spec.generator_options()  # fail now, not in a data worker
        return spec

    def generator_options(self) -> dict:
        """Keyword arguments for the generated sources, read from the argument."""
        if self.name in _COUNTED:
            return self._counted_options()
        if self.name != "synthetic_gui":
            return {}
        parts = [p.strip() for p in (self.argument or "click").split(",")]
        options: dict = {"task": parts[0]}
        from molmo_envs.gui_scenes import TASK_KINDS

        if parts[0] not in TASK_KINDS:
            raise DataError(f"synthetic_gui task must be one of {TASK_KINDS}, got {parts[0]!r}")
        for part in parts[1:]:
            if part in ("d0", "d1", "d2"):
                options["difficulty"] = int(part[1])
            elif part == "fill":
                options["random_size"] = False
            elif part == "phone":
                options["phone_only"] = True
            else:
                raise DataError(f"unknown synthetic_gui option {part!r}: use dN (0-2), fill or phone")
        return options

    def _counted_options(self) -> dict:
        """``maxN`` for tabletop and shapes, plus ``xS`` (size scale) for shapes."""
        options: dict = {}
        for part in [p.strip() for p in (self.argument or "").split(",") if p.strip()]:
            if part.startswith("max") and part[3:].isdigit():
                options[_COUNTED[self.name]] = int(part[3:])
            elif self.name == "shapes" and part.startswith("x") and _is_scale(part[1:]):
                options["scale"] = float(part[1:])
            else:
                wanted = (
                    "maxN and/or xS (e.g. shapes:max1,x3)"
                    if self.name == "shapes"
                    else "maxN (e.g. tabletop:max2)"
                )
                raise DataError(f"{self.name} takes {wanted}, got {self.argument!r}")
        return options


def _is_scale(text: str) -> bool:
    try:
        return SHAPE_SCALES[0] <= float(text) <= SHAPE_SCALES[1]
    except ValueError:
        return False


_SOURCE_NAMES = ("synthetic_gui", "tabletop", "shapes", "pixmo", "android_control")
_COUNTED = {"tabletop": "max_objects", "shapes": "max_shapes"}
"""Generated sources whose argument is ``maxN``, and the generator keyword it sets."""


@dataclass
class Mixture:
    """Draws examples from weighted sources; generated sources use a fresh seed per example."""

    specs: Sequence[SourceSpec]
    family: str = "molmo2"
    _lists: dict[int, list[Example]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.specs:
            raise DataError("no data sources given")
        weights = np.array([spec.weight for spec in self.specs], dtype=np.float64)
        self._probabilities = weights / weights.sum()

    def example(self, rng: np.random.Generator, seed: int) -> Example:
        index = int(rng.choice(len(self.specs), p=self._probabilities))
        spec = self.specs[index]
        if spec.name == "synthetic_gui":
            return synthetic_gui_example(seed, self.family, **spec.generator_options())
        if spec.name == "tabletop":
            return tabletop_example(seed, self.family, **spec.generator_options())
        if spec.name == "shapes":
            return shapes_example(seed, self.family, **spec.generator_options())
        pool = self._pool(index, spec)
        return pool[int(rng.integers(len(pool)))]

    def _pool(self, index: int, spec: SourceSpec) -> list[Example]:
        """File sources are read once per process (the whole file: fine for fine-tuning-sized sets)."""
        if index not in self._lists:
            if spec.name == "pixmo":
                self._lists[index] = pixmo_points_examples(spec.argument or "", self.family)
            else:
                self._lists[index] = list(android_control_examples(spec.argument or ""))
                if not self._lists[index]:
                    raise DataError(f"no AndroidControl train steps in {spec.argument}")
        return self._lists[index]

    def batch_examples(self, seed: int, index: int, size: int) -> list[Example]:
        """Batch ``index`` of the stream: the same ``(seed, index)`` always gives the same examples."""
        rng = np.random.default_rng([seed, index])
        first = TRAIN_SEED_BASE + (seed * 1_000_003 + index * size) % 10**12
        return [self.example(rng, first + i) for i in range(size)]


def chw_pixels(example: Example) -> torch.Tensor:
    """The example's image as a uint8 CHW tensor: the processor's own input layout, ~13% faster than a
    PIL image, same pixels."""
    return torch.from_numpy(np.ascontiguousarray(example.image)).permute(2, 0, 1).contiguous()


class TurnCollator:
    """Examples -> the processor's tensors plus ``labels`` that are set on answer tokens only.

    ``attention_targets`` and ``place_targets`` add the targets of the auxiliary losses of the recipe that
    trained the embedded default (:mod:`molmo_agent.training.pointer_recipe`); plain fine-tuning has none.
    """

    def __init__(
        self,
        processor,
        attention_targets: bool = False,
        place_targets: bool = False,
    ) -> None:
        self.processor = processor
        tokenizer = processor.tokenizer
        vocab = tokenizer.get_vocab()
        self.end_of_turn = END_OF_TURN if END_OF_TURN in vocab else tokenizer.eos_token
        self.tokenizer = tokenizer
        self.attention_targets = attention_targets
        self.place_targets = place_targets
        self.image_patch_id = vocab.get(IMAGE_PATCH_TOKEN)
        if (attention_targets or place_targets) and self.image_patch_id is None:
            raise DataError(
                f"attention and place targets need the {IMAGE_PATCH_TOKEN} token, which this tokenizer lacks"
            )

    def prompt_text(self, example: Example) -> str:
        request = Request((Image.new("RGB", (1, 1)),), example.prompt)
        return self.processor.apply_chat_template(
            chat_messages(request), add_generation_prompt=True, tokenize=False
        )

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        texts = [self.prompt_text(e) + e.answer + self.end_of_turn for e in examples]
        images = [chw_pixels(e) for e in examples]
        batch = dict(self.processor(images=images, text=texts, padding=True, return_tensors="pt"))
        labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        left_padded = self.tokenizer.padding_side == "left"
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        queries: list[list[tuple[int, list[int], int]]] = []
        for row, example in enumerate(examples):
            answer = self.tokenizer(example.answer + self.end_of_turn, add_special_tokens=False)["input_ids"]
            end = batch["input_ids"].shape[1] if left_padded else int(lengths[row])
            tail = batch["input_ids"][row, end - len(answer) : end].tolist()
            if tail != answer:
                raise DataError(
                    "the tokenizer does not split prompt and answer at the answer's first token, so the "
                    f"answer tokens cannot be located (answer {example.answer[:40]!r})"
                )
            labels[row, end - len(answer) : end] = batch["input_ids"][row, end - len(answer) : end]
            if self.attention_targets:
                queries.append(self._attention_queries(batch, row, example, answer, end - len(answer)))
        batch["labels"] = labels
        if self.attention_targets:
            _pack_attention_targets(batch, queries)
        if self.place_targets:
            batch["place_target"] = self._place_targets(batch)
        return batch

    def _image_layout(
        self, batch: dict[str, torch.Tensor], row: int
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Sequence positions of a row's image tokens and its views' (rows, columns); no positions when
        the two disagree (a layout this code does not know: no target rather than a wrong one)."""
        image_positions = (batch["input_ids"][row] == self.image_patch_id).nonzero().flatten().tolist()
        cells = view_cells(batch["image_grids"][row].tolist())
        if len(image_positions) != sum(rows * cols for rows, cols in cells):
            return [], cells
        return image_positions, cells

    def _place_targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``place_target`` (B, L, 2): the (x, y) centre, in fractions of the image, of every token of the
        low-resolution whole-image view; NaN elsewhere. Only the whole-image view: each high-resolution
        crop goes through the ViT on its own, with the same position embeddings, so which crop a token came
        from is not in its image features; only the language model, which sees the crops in sequence, can
        work it out."""
        target = torch.full((*batch["input_ids"].shape, 2), float("nan"))
        for row in range(batch["input_ids"].shape[0]):
            image_positions, cells = self._image_layout(batch, row)
            if not image_positions:
                continue
            centres = cell_centres(*cells[0])
            target[row, image_positions[: len(centres)]] = torch.tensor(centres)
        return target

    def _attention_queries(
        self, batch: dict[str, torch.Tensor], row: int, example: Example, answer: list[int], start: int
    ) -> list[tuple[int, list[int], int]]:
        """(position, image-token positions, axis) for every position that predicts a coordinate digit:
        the image tokens whose cell (one per view) holds the point that digit belongs to, and whether the
        digit is of its x (0) or y (1)."""
        height, width = example.image.shape[:2]
        points = parse_points(example.answer, image_sizes=[(width, height)])
        digits = coordinate_digit_tokens(decoded_pieces(answer, self.tokenizer))
        if not digits or max(d.point for d in digits) >= len(points):
            return []
        image_positions, cells = self._image_layout(batch, row)
        if not image_positions:
            return []
        targets = []
        for point in points:
            x, y = point.x / width, point.y / height
            targets.append(_cell_tokens(cells, x, y, image_positions))
        return [(start + d.token - 1, targets[d.point], d.axis) for d in digits]


def view_cells(grid: list[int]) -> list[tuple[int, int]]:
    """(rows, columns) of image tokens per view from a row of the processor's ``image_grids``: Molmo2
    lays out the whole image at low resolution first, then the high-resolution crops stitched into one
    grid, each in row-major order."""
    return [(grid[0], grid[1]), (grid[2], grid[3])]


def cell_centres(rows: int, cols: int) -> list[tuple[float, float]]:
    """Centre (x, y), in fractions of the image, of each token of a view of ``rows`` x ``cols``, in the
    row-major order Molmo2 lays them out."""
    return [((c + 0.5) / cols, (r + 0.5) / rows) for r in range(rows) for c in range(cols)]


def cell_index(x: float, y: float, rows: int, cols: int) -> int:
    """Row-major index of the cell of a ``rows`` x ``cols`` view that holds (x, y) (fractions of the image;
    points on or beyond the edge belong to the nearest cell)."""
    row = min(max(int(y * rows), 0), rows - 1)
    col = min(max(int(x * cols), 0), cols - 1)
    return row * cols + col


def _cell_tokens(cells: list[tuple[int, int]], x: float, y: float, image_positions: list[int]) -> list[int]:
    """Sequence positions of the token holding (x, y) (fractions of the image) in each view."""
    found, offset = [], 0
    for rows, cols in cells:
        found.append(image_positions[offset + cell_index(x, y, rows, cols)])
        offset += rows * cols
    return found


def _pack_attention_targets(
    batch: dict[str, torch.Tensor], queries: list[list[tuple[int, list[int], int]]]
) -> None:
    """``attend_query`` (B, Q): positions whose attention is supervised, -1 where a row has fewer;
    ``attend_target`` (B, Q, L): the image tokens that attention should land on; ``attend_axis`` (B, Q):
    0 where the position predicts an x digit, 1 for a y digit."""
    width = max((len(q) for q in queries), default=0)
    length = batch["input_ids"].shape[1]
    query = torch.full((len(queries), max(width, 1)), -1, dtype=torch.long)
    target = torch.zeros((len(queries), max(width, 1), length), dtype=torch.bool)
    axis = torch.zeros((len(queries), max(width, 1)), dtype=torch.long)
    for row, triples in enumerate(queries):
        for index, (position, tokens, coordinate) in enumerate(triples):
            query[row, index] = position
            target[row, index, tokens] = True
            axis[row, index] = coordinate
    batch["attend_query"], batch["attend_target"], batch["attend_axis"] = query, target, axis


def pack_pixels(batch: dict[str, torch.Tensor], mean: Sequence[float], std: Sequence[float]) -> None:
    """Replace float ``pixel_values`` by their uint8 originals (4x less to move between processes).

    Exact because the processor resizes uint8 images to uint8 before normalising; :func:`unpack_pixels`
    restores the normalised floats.
    """
    values = batch.pop("pixel_values")
    mean_t, std_t = _per_value(mean, values), _per_value(std, values)
    batch["pixel_values_u8"] = ((values * std_t + mean_t) * 255).round().clamp(0, 255).to(torch.uint8)


def _per_value(stat: Sequence[float], values: torch.Tensor) -> torch.Tensor:
    """A per-channel statistic laid out like a flattened patch (channels vary fastest)."""
    per_channel = torch.tensor(stat, dtype=torch.float32, device=values.device)
    return per_channel.repeat(values.shape[-1] // len(stat))


def unpack_pixels(batch: dict[str, torch.Tensor], mean: Sequence[float], std: Sequence[float]) -> None:
    packed = batch.pop("pixel_values_u8")
    mean_t, std_t = _per_value(mean, packed), _per_value(std, packed)
    batch["pixel_values"] = (packed.float() / 255 - mean_t) / std_t


class BatchStream(torch.utils.data.IterableDataset):
    """Batches ``start, start + 1, ...`` of a mixture, split across data loader workers by index."""

    def __init__(
        self,
        mixture: Mixture,
        collator: Callable[[Sequence[Example]], dict[str, torch.Tensor]],
        batch_size: int,
        seed: int,
        start: int = 0,
        pixel_stats: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.mixture, self.collator = mixture, collator
        self.batch_size, self.seed, self.start = batch_size, seed, start
        self.pixel_stats = pixel_stats

    def build(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.collator(self.mixture.batch_examples(self.seed, index, self.batch_size))
        if self.pixel_stats is not None:
            pack_pixels(batch, *self.pixel_stats)
        return batch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:
            torch.set_num_threads(1)
        index = self.start + worker
        while True:
            yield self.build(index)
            index += workers
