"""One record format for supervision, and the readers that produce it.

Every source (the synthetic environments, a PixMo-Points-style JSONL, AndroidControl shards) yields
:class:`Example` records: one image, the prompt the model will see at inference time, and the answer text
already rendered in the target family's own format. Rendering here, with the same ``prompts`` and
``parsing`` functions the agent uses to read answers back, is what keeps training and inference speaking
exactly one format.

Seeds decide everything a generator draws, so a run is reproducible and the held-out evaluation seeds
(:data:`EVAL_SEED_BASE` and up are never drawn by training: training seeds start at
:data:`TRAIN_SEED_BASE`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..actions import Action
from ..errors import MolmoAgentError
from ..parsing import format_action_molmo, format_point_molmo1, format_points_molmo2
from ..prompts import act_prompt, point_prompt
from .supervision import synthetic_gui_turns, tabletop_turn

FAMILIES = ("molmo1", "molmo2")
TRAIN_SEED_BASE = 1_000_000
"""Generator seeds used for training start here; evaluation uses seeds below it (0, 1, 2, ...)."""

GUI_SCREEN_SIZES = ((540, 960), (360, 640), (412, 915), (800, 600), (1280, 720), (1024, 768))
"""Canvas sizes SyntheticGui training draws from (phones and desktops), so no one aspect ratio is learnt."""
PHONE_SCREEN_SIZES = tuple(size for size in GUI_SCREEN_SIZES if size[1] > size[0])
TABLETOP_IMAGE_SIZES = ((320, 240), (424, 240), (320, 320))


class DataError(MolmoAgentError):
    """A data source cannot be read (missing file, malformed line): the message names the place."""


@dataclass(frozen=True)
class Example:
    """One supervised turn: an RGB image, the prompt, and the answer in the family's format."""

    image: np.ndarray
    prompt: str
    answer: str
    source: str


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return family


def render_points(points: Sequence[tuple[float, float]], label: str, family: str) -> str:
    """Normalised points of one image as the family's answer ("There are none." when empty)."""
    if _check_family(family) == "molmo2":
        return format_points_molmo2([list(points)], label)
    return format_point_molmo1(list(points), label)


# ------------------------------------------------------------------------------ synthetic generators


def synthetic_gui_example(
    seed: int,
    family: str = "molmo2",
    task: str = "click",
    difficulty: int | None = None,
    random_size: bool = True,
    phone_only: bool = False,
) -> Example:
    """A SyntheticGui screen and the pointing turn for its next step (``task``: click, icon, multi, any;
    ``difficulty`` 0-2 or None for random; ``random_size`` False makes the app fill the canvas;
    ``phone_only`` draws only the portrait phone sizes)."""
    from molmo_envs.synthetic_gui import SyntheticGuiEnv

    sizes = PHONE_SCREEN_SIZES if phone_only else GUI_SCREEN_SIZES
    size = sizes[seed % len(sizes)]
    key = ("gui", size, task, difficulty, random_size)
    env = _cached_env(
        key,
        lambda: SyntheticGuiEnv(screen_size=size, task=task, difficulty=difficulty, random_size=random_size),
    )
    obs, _ = env.reset(seed=seed)
    labels = synthetic_gui_turns(env, _check_family(family))
    return Example(obs["screenshot"], labels["point_prompt"], labels["point_answer"], f"synthetic_gui:{task}")


SHAPE_SCALES = (0.25, 4.0)
"""Smallest and largest ``scale`` of :func:`shapes_example` (beyond them shapes vanish or fill the canvas)."""


def shapes_example(seed: int, family: str = "molmo2", max_shapes: int = 4, scale: float = 1.0) -> Example:
    """A plain canvas of 1 to ``max_shapes`` icons (distinct colour and shape pairs, drawn exactly as
    SyntheticGui draws its icons, at its icon sizes times ``scale``) and the pointing turn for one of them.

    Why it exists: a model trained from scratch first has to learn *where* things are, and it learns that
    far sooner from uncluttered scenes (one or two shapes) than from whole app screens; mixed in later, the
    many-shape canvases teach telling icons apart by colour and shape without the layout's regularities.
    ``scale`` > 1 draws larger shapes, which cover more of the image tokens a fresh model attends to
    evenly (meant for a first, coarse stage; in the CPU pilots of docs/training it did not shorten the
    plateau).
    """
    if not SHAPE_SCALES[0] <= scale <= SHAPE_SCALES[1]:
        raise ValueError(f"shape scale must be between {SHAPE_SCALES[0]} and {SHAPE_SCALES[1]}, got {scale}")
    from molmo_envs.gui_render import draw_shape
    from molmo_envs.gui_scenes import COLORS, SHAPES

    rng = np.random.default_rng([seed, 7])
    width, height = GUI_SCREEN_SIZES[seed % len(GUI_SCREEN_SIZES)]
    light = rng.random() < 0.7
    shade = int(rng.integers(225, 256)) if light else int(rng.integers(20, 50))
    image = np.empty((height, width, 3), np.uint8)
    image[:] = (shade, shade, min(255, shade + int(rng.integers(0, 10))))
    unit = rng.uniform(0.08, 0.12) * min(width, height * 0.75)
    size = min(max(int(unit * rng.uniform(0.9, 1.25) * scale), 12), min(width, height) - 2)
    count = int(rng.integers(1, max(max_shapes, 1) + 1))
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    chosen = [pairs[int(i)] for i in rng.permutation(len(pairs))[:count]]
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(200 * count):
        if len(boxes) == count:
            break
        x0 = int(rng.integers(0, width - size))
        y0 = int(rng.integers(0, height - size))
        box = (x0, y0, x0 + size, y0 + size)
        if all(_apart(box, other, 4) for other in boxes):
            boxes.append(box)
    for (color, shape), box in zip(chosen, boxes, strict=False):
        draw_shape(image, shape, box, COLORS[color])
    target = int(rng.integers(len(boxes)))
    color, shape = chosen[target]
    x0, y0, x1, y1 = boxes[target]
    phrase = f"the {color} {shape} icon"
    point = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height)
    return Example(image, point_prompt(phrase, family), render_points([point], phrase, family), "shapes")


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    """Whether two boxes are at least ``gap`` pixels apart on some axis."""
    return a[2] + gap < b[0] or b[2] + gap < a[0] or a[3] + gap < b[1] or b[3] + gap < a[1]


def tabletop_example(seed: int, family: str = "molmo2", max_objects: int = 5) -> Example:
    """A TabletopPointing frame (1 to ``max_objects`` solids) and the pointing turn for its target."""
    from molmo_envs.tabletop import TabletopPointingEnv

    size = TABLETOP_IMAGE_SIZES[seed % len(TABLETOP_IMAGE_SIZES)]
    env = _cached_env(
        ("tabletop", size, max_objects), lambda: TabletopPointingEnv(image_size=size, max_objects=max_objects)
    )
    obs, _ = env.reset(seed=seed)
    prompt, answer = tabletop_turn(env, _check_family(family))
    return Example(obs["image"], prompt, answer, "tabletop")


_ENVS: dict[tuple, object] = {}


def supervision_texts(count: int = 200) -> list[str]:
    """Prompts and answers of the generated sources (``count`` training seeds of each, both model families,
    pointing and action turns): the text a tokenizer for models trained on this data should know.

    Why: a byte-level tokenizer spells "yellow" as six tokens, so a tiny model must first assemble the
    word before it can look for the object; a vocabulary learnt from these texts makes every colour, shape
    and format word one token (digits stay one token each: see ``tiny_molmo2``).
    """
    from molmo_envs.synthetic_gui import SyntheticGuiEnv

    texts: list[str] = []
    seeds = range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + count)  # never the held-out evaluation seeds
    for family in ("molmo2", "molmo1"):
        for seed in seeds:
            for example in (
                synthetic_gui_example(seed, family, task=("click", "icon", "multi")[seed % 3]),
                shapes_example(seed, family),
            ):
                texts += [example.prompt, example.answer]
        for seed in seeds[: count // 4]:
            example = tabletop_example(seed, family)
            texts += [example.prompt, example.answer]
    env = SyntheticGuiEnv(task="multi")
    for seed in seeds:
        env.reset(seed=seed)
        labels = synthetic_gui_turns(env, "molmo2")
        texts += [labels["act_prompt"], labels["action_answer"]]
    return texts


def _cached_env(key: tuple, make: Callable[[], object]):
    """One env per configuration per process: data workers reset the same env for every seed."""
    if key not in _ENVS:
        _ENVS[key] = make()
    return _ENVS[key]


# ------------------------------------------------------------------------------------- file sources


def pixmo_points_examples(path: str | Path, family: str = "molmo2") -> list[Example]:
    """Read a PixMo-Points-style JSONL: one object per line, ``{"image": path, "label": str, "points":
    [[x, y], ...]}`` with points in image pixels (an empty list trains "There are none."). Image paths are
    relative to the JSONL's folder unless absolute.
    """
    from ..images import load_image

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no JSONL file at {path}")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
            image_path = Path(record["image"])
            label = str(record["label"]).strip()
            points = [(float(x), float(y)) for x, y in record.get("points", [])]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f'{where}: expected {{"image": path, "label": text, "points": [[x, y], ...]}}: {exc}'
            ) from exc
        if not label:
            raise DataError(f"{where}: the label is empty")
        image_path = image_path if image_path.is_absolute() else path.parent / image_path
        try:
            image = np.asarray(load_image(image_path))
        except MolmoAgentError as exc:
            raise DataError(f"{where}: {exc}") from exc
        height, width = image.shape[:2]
        outside = [p for p in points if not (0 <= p[0] <= width and 0 <= p[1] <= height)]
        if outside:
            raise DataError(f"{where}: point {outside[0]} lies outside the {width}x{height} image")
        normalised = [(x / width, y / height) for x, y in points]
        prompt = point_prompt(label, family, all_occurrences=len(points) != 1)
        examples.append(Example(image, prompt, render_points(normalised, label, family), "pixmo_points"))
    if not examples:
        raise DataError(f"{path} holds no examples")
    return examples


def android_control_examples(
    data_dir: str | Path, split: str | None = "train", *, high_level: bool = False
) -> Iterator[Example]:
    """AndroidControl steps as Molmo action turns: goal (and, low-level, the step instruction) -> the
    ground-truth action as Molmo's action string, in percent of the screen."""
    from molmo_envs.androidcontrol.episodes import iter_episodes

    for episode in iter_episodes(data_dir, split):
        for index in range(episode.num_steps):
            action: Action = episode.action(index)
            step = None if high_level else episode.step_instructions[index]
            yield Example(
                episode.screenshot(index),
                act_prompt(episode.goal, step),
                format_action_molmo(action, episode.screenshot_sizes[index]),
                "android_control",
            )
