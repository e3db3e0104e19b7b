"""Reuse the vision features of an image that was just seen (a robot asking about three objects in one frame).

Molmo2 turns each image into crops, runs the ViT over them and pools the patches into image tokens; that
depends on the image alone, not on the question. So the pooled features of an image are kept in a small
LRU keyed by a hash of its pixels and handed to the model as ``mm_encoder_outputs`` in place of
``pixel_values``: a second query about the same frame skips the vision tower. Each image of a batch is
looked up on its own, so a batch of three queries about one frame encodes it once.

Sound because the key covers every input of the computation: the image bytes (mode, size, pixels) fix the
crops the processor makes, and one backend always uses the same processor and weights.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import OrderedDict
from collections.abc import Sequence
from itertools import accumulate

import torch
from PIL import Image

DEFAULT_ENTRIES = 8
_VISION_INPUTS = ("pixel_values", "image_token_pooling", "image_grids", "image_num_crops")


def image_key(image: Image.Image) -> bytes:
    """A 128-bit digest of an image's mode, size and pixels (BLAKE2b: a few ms for a 720p frame)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.digest()


def _image_slices(inputs: dict[str, torch.Tensor], per_image: bool) -> list[tuple[slice, torch.Tensor]]:
    """Per image: its crops in ``pixel_values`` and its pooling rows numbered from its own first patch.

    transformers >= 5.25 (``per_image``) numbers each image's patches from 0 and gives it exactly the rows its
    grid says (high-res rows x cols + low-res rows x cols). Earlier versions number patches across the whole
    batch: there a row belongs to the image whose patch range holds its indices, and rows that pool nothing
    (all ``-1``) produce no token and are dropped.
    """
    crops = inputs["image_num_crops"].tolist()
    pooling = inputs["image_token_pooling"]
    if per_image:
        grids = inputs["image_grids"]
        tokens = (grids[:, 0] * grids[:, 1] + grids[:, 2] * grids[:, 3]).tolist()
        if sum(tokens) != pooling.shape[0]:
            return []
        row_starts = list(accumulate(tokens, initial=0))[:-1]
        crop_starts = list(accumulate(crops, initial=0))[:-1]
        return [
            (slice(first, first + count), pooling[start : start + n])
            for first, count, start, n in zip(crop_starts, crops, row_starts, tokens, strict=True)
        ]
    patches_per_crop = inputs["pixel_values"].shape[1]
    owner_patch = pooling.max(dim=-1).values
    result, first_crop = [], 0
    for count in crops:
        low, high = first_crop * patches_per_crop, (first_crop + count) * patches_per_crop
        rows = pooling[(owner_patch >= low) & (owner_patch < high)]
        result.append((slice(first_crop, first_crop + count), torch.where(rows >= 0, rows - low, rows)))
        first_crop += count
    return result


class VisionFeatureCache:
    """LRU of pooled image features for one Molmo2 model (``entries`` images, a few MB each)."""

    def __init__(self, model, entries: int = DEFAULT_ENTRIES) -> None:
        if entries < 1:
            raise ValueError(f"the vision cache needs at least 1 entry, got {entries}")
        self.model = model
        self.entries = entries
        # transformers >= 5.25 numbers pooling rows per image and takes each image's crop count
        self._per_image = "image_num_crops" in inspect.signature(model.get_image_features).parameters
        self._features: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self._features.clear()

    def __len__(self) -> int:
        return len(self._features)

    def swap_in(self, inputs: dict[str, torch.Tensor], images: Sequence[Image.Image]) -> dict:
        """``inputs`` with the vision inputs replaced by (cached or freshly computed) ``mm_encoder_outputs``.

        ``images`` are the batch's images in prompt order, the order the processor made crops in.
        """
        if "pixel_values" not in inputs or not images:
            return inputs
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        keys = [image_key(image) for image in images]
        slices = _image_slices(inputs, self._per_image)
        if len(slices) != len(keys):  # not the layout this cache understands: let the model encode
            return inputs
        first_of = {key: i for i, key in reversed(list(enumerate(keys)))}
        missing = [i for key, i in first_of.items() if key not in self._features]
        found = {keys[i]: features for i, features in self._encode(inputs, slices, missing).items()}
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        for key in keys:
            found.setdefault(key, self._features.get(key))
            self._remember(key, found[key])
        outputs = BaseModelOutputWithPooling(pooler_output=tuple(found[key] for key in keys))
        rest = {name: value for name, value in inputs.items() if name not in _VISION_INPUTS}
        return {**rest, "mm_encoder_outputs": {"image": outputs}}

    def _encode(self, inputs: dict[str, torch.Tensor], slices, missing: list[int]) -> dict[int, torch.Tensor]:
        """Features of the images not in the cache, in one call to the vision tower."""
        if not missing:
            return {}
        pixels, pooling, offset = [], [], 0
        patches_per_crop = inputs["pixel_values"].shape[1]
        for i in missing:
            crops, rows = slices[i]
            pixels.append(inputs["pixel_values"][crops])
            pooling.append(rows if self._per_image else torch.where(rows >= 0, rows + offset, rows))
            offset += (crops.stop - crops.start) * patches_per_crop
        args = [torch.cat(pixels), torch.cat(pooling), inputs["image_grids"][missing]]
        if self._per_image:
            args.append(inputs["image_num_crops"][missing])
        output = self.model.get_image_features(*args)
        return dict(zip(missing, output.pooler_output, strict=True))

    def _remember(self, key: bytes, features: torch.Tensor) -> None:
        self._features[key] = features
        self._features.move_to_end(key)
        while len(self._features) > self.entries:
            self._features.popitem(last=False)
