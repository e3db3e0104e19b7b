"""AndroidControl episodes: the dataset's ``tf.train.Example`` features as typed, lazily decoded records.

One Example per episode with ``episode_id`` (int64), ``goal`` (bytes), ``screenshots`` (PNG bytes),
``screenshot_widths`` / ``screenshot_heights`` (int64), ``accessibility_trees`` (serialized
``AndroidAccessibilityForest`` protos), ``actions`` (JSON strings, one fewer than screenshots: action ``i``
goes from screen ``i`` to ``i + 1``) and ``step_instructions`` (one per action). ``splits.json`` lists the
train/validation/test episode ids, ``test_subsplits.json`` the IDD/app_unseen/task_unseen/category_unseen
ids. Screens and accessibility forests stay encoded until a step asks for them.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from molmo_agent.actions import Action

from .tfrecord import Compression, TFRecordReader, parse_example

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SUBSPLITS = ("IDD", "app_unseen", "task_unseen", "category_unseen")
SHARD_GLOB = "android_control*"
"""How the released shards are named (``android_control-00000-of-00020``)."""

Box = tuple[float, float, float, float]


def import_a11y_protos() -> Any:
    """android-env's compiled accessibility protos (the module holding ``AndroidAccessibilityForest``)."""
    try:
        from android_env.proto.a11y import android_accessibility_forest_pb2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading AndroidControl accessibility trees needs the android-env package "
            "(pip install android-env)"
        ) from exc
    return android_accessibility_forest_pb2


@dataclass(frozen=True)
class Element:
    """One visible accessibility node; ``bounds`` are ``(left, top, right, bottom)`` screen pixels."""

    bounds: Box
    text: str = ""
    content_description: str = ""
    class_name: str = ""
    package_name: str = ""
    resource_id: str = ""
    clickable: bool = False

    @property
    def width(self) -> float:
        return self.bounds[2] - self.bounds[0]

    @property
    def height(self) -> float:
        return self.bounds[3] - self.bounds[1]

    def to_dict(self) -> dict[str, Any]:
        """The element's descriptive fields (the env's ``info["elements"]`` entries)."""
        return {
            "bounds": list(self.bounds),
            "text": self.text,
            "content_description": self.content_description,
            "class_name": self.class_name,
            "package_name": self.package_name,
            "resource_id": self.resource_id,
            "clickable": self.clickable,
        }


def parse_forest(data: bytes) -> list[Element]:
    """The visible elements of a serialized ``AndroidAccessibilityForest``, in window then tree order.

    Nodes without area (zero width or height) are left out: nothing on screen can be pointed at there.
    """
    forest = import_a11y_protos().AndroidAccessibilityForest.FromString(data)
    elements = []
    for window in forest.windows:
        for node in window.tree.nodes:
            rect = node.bounds_in_screen
            if not node.is_visible_to_user or rect.right <= rect.left or rect.bottom <= rect.top:
                continue
            elements.append(
                Element(
                    bounds=(float(rect.left), float(rect.top), float(rect.right), float(rect.bottom)),
                    text=node.text,
                    content_description=node.content_description,
                    class_name=node.class_name,
                    package_name=node.package_name,
                    resource_id=node.view_id_resource_name,
                    clickable=node.is_clickable,
                )
            )
    return elements


@dataclass(frozen=True, eq=False)
class Episode:
    """One AndroidControl episode, fields as the dataset stores them (screens still PNG-encoded)."""

    episode_id: int
    goal: str
    screenshots: tuple[bytes, ...]
    screenshot_sizes: tuple[tuple[int, int], ...]
    accessibility_trees: tuple[bytes, ...]
    actions: tuple[dict[str, Any], ...]
    step_instructions: tuple[str, ...]

    def __post_init__(self) -> None:
        screens = len(self.screenshots)
        if len(self.actions) != screens - 1:
            raise ValueError(
                f"episode {self.episode_id}: {len(self.actions)} actions for {screens} screenshots; "
                "expected one fewer action than screenshots"
            )
        for name in ("screenshot_sizes", "accessibility_trees"):
            if len(getattr(self, name)) != screens:
                raise ValueError(
                    f"episode {self.episode_id}: {name} has {len(getattr(self, name))} "
                    f"entries for {screens} screenshots"
                )
        if len(self.step_instructions) != len(self.actions):
            raise ValueError(
                f"episode {self.episode_id}: {len(self.step_instructions)} step instructions for "
                f"{len(self.actions)} actions"
            )

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    def screenshot(self, index: int) -> np.ndarray:
        """Screen ``index`` as an ``(H, W, 3)`` uint8 RGB array."""
        from PIL import Image

        with Image.open(io.BytesIO(self.screenshots[index])) as image:
            return np.asarray(image.convert("RGB"))

    def elements(self, index: int) -> list[Element]:
        """The visible accessibility elements of screen ``index``."""
        return self._elements[index]

    @cached_property
    def _elements(self) -> list[list[Element]]:
        return [parse_forest(tree) for tree in self.accessibility_trees]

    def action(self, index: int) -> Action:
        """Ground-truth action ``index`` (in the dataset's screen pixels)."""
        return Action.from_android_control(self.actions[index])


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def episode_from_example(data: bytes) -> Episode:
    """Decode one serialized AndroidControl Example."""
    features = parse_example(data)
    widths, heights = features.get("screenshot_widths", []), features.get("screenshot_heights", [])
    return Episode(
        episode_id=int(features["episode_id"][0]),
        goal=_text(features["goal"][0]) if features.get("goal") else "",
        screenshots=tuple(features["screenshots"]),
        screenshot_sizes=tuple((int(w), int(h)) for w, h in zip(widths, heights, strict=True)),
        accessibility_trees=tuple(features["accessibility_trees"]),
        actions=tuple(json.loads(a) for a in features.get("actions", [])),
        step_instructions=tuple(_text(s) for s in features.get("step_instructions", [])),
    )


def load_splits(data_dir: str | Path) -> dict[str, list[int]]:
    """``splits.json`` merged with ``test_subsplits.json`` (when present): name -> episode ids."""
    data_dir = Path(data_dir)
    splits = json.loads((data_dir / "splits.json").read_text())
    subsplits_path = data_dir / "test_subsplits.json"
    if subsplits_path.exists():
        splits.update(json.loads(subsplits_path.read_text()))
    return {name: [int(i) for i in ids] for name, ids in splits.items()}


def shard_paths(data_dir: str | Path, pattern: str = SHARD_GLOB) -> list[Path]:
    """The dataset's TFRecord shards in ``data_dir``, sorted (JSON files excluded)."""
    paths = sorted(p for p in Path(data_dir).glob(pattern) if p.is_file() and p.suffix != ".json")
    if not paths:
        raise FileNotFoundError(f"no AndroidControl shards matching {pattern!r} in {data_dir}")
    return paths


def selected_ids(data_dir: str | Path, split: str | None, subsplit: str | None = None) -> set[int] | None:
    """Episode ids of ``split`` (and, for the test split, ``subsplit``); ``None`` means every episode."""
    if split is None and subsplit is None:
        return None
    splits = load_splits(data_dir)
    ids: set[int] | None = None
    for name in (split, subsplit):
        if name is None:
            continue
        if name not in splits:
            raise ValueError(f"unknown split {name!r}; the data lists {sorted(splits)}")
        ids = set(splits[name]) if ids is None else ids & set(splits[name])
    return ids


def iter_episodes(
    data_dir: str | Path,
    split: str | None = "test",
    subsplit: str | None = None,
    *,
    reader: TFRecordReader | None = None,
    compression: Compression = "auto",
) -> Iterator[Episode]:
    """Stream a split's episodes in shard order; corrupt records are skipped and reported on ``reader``."""
    wanted = selected_ids(data_dir, split, subsplit)
    reader = reader or TFRecordReader(shard_paths(data_dir), compression)
    for data in reader:
        episode = episode_from_example(data)
        if wanted is None or episode.episode_id in wanted:
            yield episode


def load_episodes(
    data_dir: str | Path, split: str | None = "test", subsplit: str | None = None
) -> list[Episode]:
    """Every episode of a split in memory (screens stay PNG-encoded: the full test split is a few GB)."""
    reader = TFRecordReader(shard_paths(data_dir))
    episodes = list(iter_episodes(data_dir, split, subsplit, reader=reader))
    if reader.corrupt:
        logger.warning("%d corrupt records skipped in %s", len(reader.corrupt), data_dir)
    return episodes


def episodes_by_id(episodes: Sequence[Episode]) -> dict[int, Episode]:
    return {episode.episode_id: episode for episode in episodes}
