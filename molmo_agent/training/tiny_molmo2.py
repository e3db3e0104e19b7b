"""Build tiny Molmo2-architecture checkpoints offline.

Why: Hub weights cannot be downloaded here, yet every test and benchmark must run the real loading path
(`AutoProcessor` / `AutoModelForImageTextToText.from_pretrained`) on a real Molmo2 graph. This module writes a
complete checkpoint folder (config, safetensors weights, tokenizer, image processor, chat template) of any
small size, which then loads exactly like ``allenai/Molmo2-8B``.

The default tokenizer is byte-level with no merges: one token per byte, so every digit of a coordinate is
its own token and any text (including non-ASCII) round-trips. ``tokenizer="words"`` learns a small byte-level
BPE from the training sources' texts instead (whole words, still one token per digit). ``tokenizer="numbers"``
is that vocabulary plus one token for every zero-padded coordinate "000" ... "999", whose output rows start
as a sine-cosine code of the value (see :func:`value_code`). Image special tokens live in Molmo2's
"additional vocabulary" (ids >= ``vocab_size``), which the output head cannot produce, as in the released
models.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..text_guard import MOLMO_CHAT_TOKENS, MOLMO_IMAGE_TOKENS

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

IMAGE_SPECIAL_TOKENS = MOLMO_IMAGE_TOKENS
"""Molmo2's image/video special tokens, in the order their ids are assigned after the base vocabulary."""

CHAT_TOKENS = MOLMO_CHAT_TOKENS
"""Chat-template tokens; inside the generatable vocabulary because ``<|im_end|>`` ends every answer."""

# Written for molmo-agent from the published Molmo2 prompt layout: images first (one ``<|image|>`` each,
# numbered when several), then ``<|im_start|>user\n{text}<|im_end|>\n`` turns and the assistant prefix.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(images=0) -%}"
    "{%- for message in messages -%}{%- if message['content'] is not string -%}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'image' -%}"
    "{%- set ns.images = ns.images + 1 -%}{%- endif -%}{%- endfor -%}{%- endif -%}{%- endfor -%}"
    "{%- if ns.images == 1 -%}{{ '<|image|>' }}"
    "{%- elif ns.images > 1 -%}{%- for i in range(ns.images) -%}{{ 'Image ' ~ (i + 1) ~ '<|image|>' }}"
    "{%- endfor -%}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
    "{%- else -%}{%- set text = message['content'] | selectattr('type', 'equalto', 'text') "
    "| map(attribute='text') | join(' ') -%}{%- endif -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if not loop.first -%}{{ '<|im_end|>\n' }}{%- endif -%}"
    "{{ '<|im_start|>user\n' ~ text ~ '<|im_end|>\n' }}"
    "{%- else -%}{{ '<|im_start|>assistant\n' ~ text }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


TOKENIZER_KINDS = ("bytes", "words", "numbers")
NUMBER_TOKENS = tuple(f"{value:03d}" for value in range(1000))
"""The ``numbers`` tokenizer's coordinate tokens: Molmo2 writes per-mille coordinates zero-padded to three
digits, so each of these is one whole coordinate (a 1000 is written "100" + "0")."""
VALUE_CODE_CYCLES = (0.5, 1, 2, 4, 8, 16, 32, 64)
"""Cycles per 1,000 of the value code: the slowest tells the halves of the image apart, the fastest
(a period of ~16 per mille) neighbouring values within an icon."""


@dataclass(frozen=True)
class TinyMolmo2Spec:
    """Shape of a tiny Molmo2. Defaults give a ~1 MB model that runs in milliseconds on a CPU.

    ``crop_size`` must hold at least ``2 * overlap + 1`` patches per side, hence the [2, 2] margins on the
    default 112-px (8-patch) crops; the published [4, 4] margins need crops of 9+ patches.
    """

    vit_width: int = 32
    vit_layers: int = 2
    vit_heads: int = 2
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 128
    adapter_intermediate: int = 64
    crop_size: int = 112
    patch_size: int = 14
    max_crops: int = 4
    overlap_margins: tuple[int, int] = (2, 2)
    pooling_size: tuple[int, int] = (2, 2)
    """Patches pooled into one language-model token (rows, columns). The released models pool 2x2; a tiny
    model with (1, 1) sees every 14-px patch as its own token, so finding the right token already places a
    point within a patch instead of within a 2x2 block."""
    max_position_embeddings: int = 8192
    seed: int = 0
    vision_init_range: float | None = None
    tokenizer: str = "bytes"
    """``bytes``: one token per byte (no merges). ``words``: a byte-level BPE learnt from the training
    sources' prompts and answers (``training.examples.supervision_texts``), so colour, shape and format
    words are single tokens, while every digit stays a token of its own. ``numbers``: ``words`` plus one
    token per three-digit coordinate, so a coordinate is one choice among 1,000 neighbouring values."""
    word_vocab_size: int = 600
    sincos_positions: bool = False
    """Start the ViT's position embeddings as a 2-D sine-cosine grid (training from scratch learns where
    things are much sooner than from random embeddings)."""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        patches = self.crop_size // self.patch_size
        if self.crop_size % self.patch_size:
            raise ValueError(f"crop_size {self.crop_size} must be a multiple of patch_size {self.patch_size}")
        if patches <= sum(self.overlap_margins):
            raise ValueError(
                f"crop of {patches} patches leaves no window with overlap margins {self.overlap_margins}"
            )
        if self.tokenizer not in TOKENIZER_KINDS:
            raise ValueError(f"tokenizer must be one of {TOKENIZER_KINDS}, got {self.tokenizer!r}")
        for width, heads in ((self.vit_width, self.vit_heads), (self.text_width, self.text_heads)):
            if width % heads:
                raise ValueError(f"width {width} is not divisible by {heads} heads")


_SMALL = TinyMolmo2Spec(
    vit_width=128,
    vit_layers=4,
    vit_heads=4,
    text_width=192,
    text_layers=4,
    text_heads=6,
    text_kv_heads=2,
    text_intermediate=512,
    adapter_intermediate=256,
)
PRESETS: dict[str, TinyMolmo2Spec] = {
    "tiny": TinyMolmo2Spec(),
    "small": _SMALL,
    "medium": TinyMolmo2Spec(
        vit_width=384,
        vit_layers=6,
        vit_heads=6,
        text_width=512,
        text_layers=8,
        text_heads=8,
        text_kv_heads=4,
        text_intermediate=1536,
        adapter_intermediate=1024,
        crop_size=224,
        max_crops=6,
    ),
    "pointer": replace(_SMALL, crop_size=140, max_crops=2, sincos_positions=True),
    "pointer-224": replace(_SMALL, crop_size=224, max_crops=2, sincos_positions=True),
    "pointer-fine": replace(_SMALL, crop_size=224, max_crops=2, sincos_positions=True, pooling_size=(1, 1)),
    "pointer-words": replace(_SMALL, crop_size=224, max_crops=2, sincos_positions=True, tokenizer="words"),
    "pointer-numbers": replace(
        _SMALL, crop_size=224, max_crops=2, sincos_positions=True, tokenizer="numbers"
    ),
    "pointer-numbers-fine": replace(
        _SMALL, crop_size=168, max_crops=2, sincos_positions=True, tokenizer="numbers", pooling_size=(1, 1)
    ),
}
"""Named sizes: ``tiny`` for tests, ``small``/``medium`` for benchmarks, ``pointer`` for the embedded default
(a 140-px view of the whole image plus two 140-px crops along its long side, so a phone screen is seen
at 140x224 without squashing its icons: small enough to train on a CPU, sharp enough to tell shapes apart);
``pointer-224`` the same network on 224-px crops, where a phone icon spans 2-3 ViT patches instead of one
(see docs/training/README.md: at 140 px the tens digit of a coordinate stays at chance); ``pointer-fine``
that view without 2x2 pooling, one language-model token per patch (~4x the image tokens); ``pointer-words``
the ``pointer-224`` network with the learnt word vocabulary (a prompt is ~7 tokens instead of ~31);
``pointer-numbers`` adds a token per coordinate value whose output rows start as a smooth code of the
value, so the network learns one regression-like choice instead of three digits (docs/training);
``pointer-numbers-fine`` sees a phone screen through 168-px crops without pooling (12x12 whole-image tokens,
20x12 high-resolution ones, ~34 px each): tapping the centre of the token that holds a SyntheticGui icon's
centre lands inside it on 99% of screens, against 77% with ``pointer-224``'s 2x2-pooled tokens."""


def _byte_backend():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: index for index, token in enumerate(sorted(byte_alphabet))}
    for token in CHAT_TOKENS:
        vocab[token] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return backend


def _word_backend(vocab_size: int):
    """Byte-level BPE trained on the supervision texts. Digits are split off one by one before the merges
    are learnt or applied, so no merge can join them: coordinates stay one token per digit."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from .examples import supervision_texts

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(CHAT_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(supervision_texts(), trainer)
    return backend


def _build_tokenizer(spec: TinyMolmo2Spec | None = None):
    from transformers import PreTrainedTokenizerFast

    spec = spec or TinyMolmo2Spec()
    backend = _byte_backend() if spec.tokenizer == "bytes" else _word_backend(spec.word_vocab_size)
    if spec.tokenizer == "numbers":
        # Added tokens are matched in the raw text before the digit-splitting pre-tokenizer, so a padded
        # coordinate becomes one token while shorter numbers keep one token per digit.
        backend.add_tokens(list(NUMBER_TOKENS))
    vocab = backend.get_vocab()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image|>", "video_token": "<|video|>"},
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": list(CHAT_TOKENS[1:]) + list(IMAGE_SPECIAL_TOKENS)}
    )
    tokenizer.padding_side = "left"
    return tokenizer, len(vocab)


def image_token_settings(tokenizer) -> dict[str, int]:
    """The ``Molmo2Config`` arguments that name our tokenizer's image-marker ids.

    Every config built for this tokenizer, whatever its size, needs the same ids, or the model would
    look for image patches at the wrong tokens."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in IMAGE_SPECIAL_TOKENS}
    return {
        "image_start_token_id": ids["<im_start>"],
        "low_res_image_start_token_id": ids["<low_res_im_start>"],
        "image_end_token_id": ids["<im_end>"],
        "image_patch_id": ids["<im_patch>"],
        "frame_start_token_id": ids["<frame_start>"],
        "frame_end_token_id": ids["<frame_end>"],
    }


def with_text_token_ids(config, tokenizer):
    """``config`` with the tokenizer's bos/eos/pad ids, which generation reads from the config."""
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    return config


def _build_config(spec: TinyMolmo2Spec, tokenizer, vocab_size: int):
    from transformers import Molmo2Config

    vit_heads_dim = spec.vit_width // spec.vit_heads
    vision_init = spec.vision_init_range or (1.0 / spec.vit_width**0.5)
    grid = spec.crop_size // spec.patch_size
    config = Molmo2Config(
        vision_config={
            "hidden_size": spec.vit_width,
            "intermediate_size": spec.vit_width * 4,
            "num_hidden_layers": spec.vit_layers,
            "num_attention_heads": spec.vit_heads,
            "num_key_value_heads": spec.vit_heads,
            "head_dim": vit_heads_dim,
            "image_size": [spec.crop_size, spec.crop_size],
            "patch_size": spec.patch_size,
            "num_position_embeddings": grid * grid,
            "initializer_range": vision_init,
        },
        adapter_config={
            "vision_feature_layer": [-1] if spec.vit_layers < 2 else [-1, -2],
            "hidden_size": spec.vit_width,
            "num_attention_heads": spec.vit_heads,
            "num_key_value_heads": spec.vit_heads,
            "head_dim": vit_heads_dim,
            "intermediate_size": spec.adapter_intermediate,
            "text_hidden_size": spec.text_width,
            "initializer_range": vision_init,
        },
        text_config={
            "hidden_size": spec.text_width,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "head_dim": spec.text_width // spec.text_heads,
            "vocab_size": vocab_size,
            "additional_vocab_size": len(IMAGE_SPECIAL_TOKENS),
            "num_hidden_layers": spec.text_layers,
            "intermediate_size": spec.text_intermediate,
            "max_position_embeddings": spec.max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        },
        **image_token_settings(tokenizer),
        **spec.extra,
    )
    return with_text_token_ids(config, tokenizer)


def image_processor_for(spec: TinyMolmo2Spec):
    """The Molmo2 image processor a model of ``spec`` ships with (crops, patches, pooling)."""
    from transformers import Molmo2ImageProcessor

    return Molmo2ImageProcessor(
        size={"height": spec.crop_size, "width": spec.crop_size},
        patch_size=spec.patch_size,
        max_crops=spec.max_crops,
        overlap_margins=list(spec.overlap_margins),
        pooling_size=list(spec.pooling_size),
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def _build_processor(spec: TinyMolmo2Spec, tokenizer):
    from transformers import Molmo2Processor, Molmo2VideoProcessor

    image_processor = image_processor_for(spec)
    video_processor = Molmo2VideoProcessor(
        size={"height": spec.crop_size, "width": spec.crop_size},
        patch_size=spec.patch_size,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        num_frames=8,
    )
    return Molmo2Processor(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_molmo2(out_dir: str | Path, spec: TinyMolmo2Spec | None = None) -> Path:
    """Write a randomly initialised Molmo2 checkpoint of ``spec``'s shape to ``out_dir`` and return the path.

    The folder is self-contained and loads with ``ma.load_model(out_dir)`` or the plain transformers
    ``from_pretrained`` calls, with ``HF_HUB_OFFLINE=1``.
    """
    import torch
    from transformers import GenerationConfig, Molmo2ForConditionalGeneration

    spec = spec or TinyMolmo2Spec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, vocab_size = _build_tokenizer(spec)
    config = _build_config(spec, tokenizer, vocab_size)
    torch.manual_seed(spec.seed)
    model = Molmo2ForConditionalGeneration(config).eval()
    if spec.sincos_positions:
        _init_sincos_positions(model, spec)
    if spec.tokenizer == "numbers":
        _init_number_rows(model, tokenizer, spec)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=64,
    )
    model.save_pretrained(out)
    _build_processor(spec, tokenizer).save_pretrained(out)
    (out / "molmo_agent.json").write_text(
        json.dumps({"builder": "tiny_molmo2", "spec": _spec_dict(spec)}, indent=2)
    )
    logger.info("wrote tiny Molmo2 (%d parameters) to %s", sum(p.numel() for p in model.parameters()), out)
    return out


def sincos_grid(grid: int, width: int) -> torch.Tensor:
    """``(grid * grid, width)`` 2-D sine-cosine position codes: half the channels encode the row, half the
    column, each as sines and cosines of geometrically spaced frequencies (row-major patch order)."""
    import torch

    quarter = width // 4
    frequencies = 1.0 / (100.0 ** (torch.arange(quarter, dtype=torch.float64) / max(quarter, 1)))
    positions = torch.arange(grid, dtype=torch.float64)
    angles = positions[:, None] * frequencies[None, :]  # (grid, quarter)
    axis = torch.cat([angles.sin(), angles.cos()], dim=1)  # (grid, 2 * quarter)
    rows = axis[:, None, :].expand(grid, grid, -1)
    cols = axis[None, :, :].expand(grid, grid, -1)
    codes = torch.zeros(grid, grid, width, dtype=torch.float64)
    codes[..., : 4 * quarter] = torch.cat([rows, cols], dim=-1)
    return codes.reshape(grid * grid, width).float()


def _init_sincos_positions(model, spec: TinyMolmo2Spec) -> None:
    import torch

    grid = spec.crop_size // spec.patch_size
    for name, parameter in model.named_parameters():
        if name.endswith("positional_embedding"):
            with torch.no_grad():
                parameter.copy_(sincos_grid(grid, parameter.shape[1]) * 0.5)
            return
    raise RuntimeError("the Molmo2 vision tower has no positional_embedding parameter")


def value_code(values: torch.Tensor) -> torch.Tensor:
    """``(N, 2 * len(VALUE_CODE_CYCLES))`` sines and cosines of per-mille ``values`` at each of
    ``VALUE_CODE_CYCLES`` cycles per 1,000. The dot product of two codes is a sum of cosines of their
    difference: largest when equal and falling off with distance, so rows built from it make the output
    head's scores a smooth bump around a value instead of 1,000 unrelated classes."""
    import torch

    cycles = torch.tensor(VALUE_CODE_CYCLES, dtype=torch.float64)
    angles = values.double()[:, None] * cycles[None, :] * (2 * torch.pi / 1000.0)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def _init_number_rows(model, tokenizer, spec: TinyMolmo2Spec) -> None:
    """Start each coordinate token's output row (and input embedding) as its value's code in a fixed,
    seeded subspace, scaled to the size of the random rows around it.

    Why: a from-scratch model with one token per value must otherwise learn that 523 is next to 524
    from examples of each; with the code, pushing the hidden state towards one value's row raises its
    neighbours too, so what is learnt about one value carries to the values around it."""
    import torch

    ids = torch.tensor(tokenizer.convert_tokens_to_ids(list(NUMBER_TOKENS)))
    code = value_code(torch.arange(len(NUMBER_TOKENS)))
    generator = torch.Generator().manual_seed(spec.seed + 1)
    for matrix in (model.lm_head.weight, model.get_input_embeddings().weight):
        basis, _ = torch.linalg.qr(torch.randn(matrix.shape[1], code.shape[1], generator=generator))
        with torch.no_grad():
            row_norm = matrix.norm(dim=1).mean()
            rows = code @ basis.T  # (1000, width), every row of norm sqrt(len(cycles))
            matrix[ids] = rows * (row_norm / rows.norm(dim=1, keepdim=True)) * 2 + matrix[ids] * 0.25


def _spec_dict(spec: TinyMolmo2Spec) -> dict:
    from dataclasses import asdict

    return asdict(spec)
