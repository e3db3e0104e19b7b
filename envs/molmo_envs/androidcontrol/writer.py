"""Write AndroidControl-format data: the same features, encodings and file layout as the released shards.

Used by the tests and by anyone who wants a small local stand-in for the 47 GB release: GZIP TFRecord
shards named ``android_control-XXXXX-of-YYYYY`` holding one ``tf.train.Example`` per episode, accessibility
forests built with android-env's own proto classes, plus ``splits.json`` and ``test_subsplits.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .episodes import SPLITS, SUBSPLITS, Element, Episode, import_a11y_protos
from .tfrecord import build_example, write_tfrecord


def build_forest(elements: Sequence[Element], *, hidden: Sequence[Element] = ()) -> bytes:
    """A serialized one-window ``AndroidAccessibilityForest`` holding ``elements`` (visible) and ``hidden``
    (``is_visible_to_user`` false), in that order."""
    forest = import_a11y_protos().AndroidAccessibilityForest()
    window = forest.windows.add()
    window.id = 1
    nodes = [(e, True) for e in elements] + [(e, False) for e in hidden]
    for unique_id, (element, visible) in enumerate(nodes):
        node = window.tree.nodes.add()
        node.unique_id = unique_id
        left, top, right, bottom = (round(v) for v in element.bounds)
        rect = node.bounds_in_screen
        rect.left, rect.top, rect.right, rect.bottom = left, top, right, bottom
        node.text = element.text
        node.content_description = element.content_description
        node.class_name = element.class_name
        node.package_name = element.package_name
        node.view_id_resource_name = element.resource_id
        node.is_clickable = element.clickable
        node.is_visible_to_user = visible
        node.window_id = window.id
    return forest.SerializeToString()


def episode_to_example(episode: Episode) -> bytes:
    """An episode as the serialized ``tf.train.Example`` the release stores."""
    return build_example(
        {
            "episode_id": [episode.episode_id],
            "goal": [episode.goal.encode()],
            "screenshots": list(episode.screenshots),
            "screenshot_widths": [w for w, _ in episode.screenshot_sizes],
            "screenshot_heights": [h for _, h in episode.screenshot_sizes],
            "accessibility_trees": list(episode.accessibility_trees),
            "actions": [json.dumps(a).encode() for a in episode.actions],
            "step_instructions": [s.encode() for s in episode.step_instructions],
        }
    )


def shard_name(index: int, count: int) -> str:
    return f"android_control-{index:05d}-of-{count:05d}"


def write_dataset(
    data_dir: str | Path,
    episodes: Sequence[Episode],
    *,
    num_shards: int = 2,
    splits: Mapping[str, Sequence[int]] | None = None,
    subsplits: Mapping[str, Sequence[int]] | None = None,
) -> list[Path]:
    """Write ``episodes`` round-robin into ``num_shards`` GZIP shards plus the split files.

    By default every episode is in the test split and in its IDD subsplit.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    ids = [e.episode_id for e in episodes]
    splits = dict(splits) if splits is not None else {"train": [], "validation": [], "test": ids}
    subsplits = dict(subsplits) if subsplits is not None else {"IDD": list(splits.get("test", []))}
    for name in SPLITS:
        splits.setdefault(name, [])
    for name in SUBSPLITS:
        subsplits.setdefault(name, [])
    (data_dir / "splits.json").write_text(json.dumps({k: list(v) for k, v in splits.items()}))
    (data_dir / "test_subsplits.json").write_text(json.dumps({k: list(v) for k, v in subsplits.items()}))
    return [
        write_tfrecord(
            data_dir / shard_name(i, num_shards),
            (episode_to_example(e) for e in episodes[i::num_shards]),
        )
        for i in range(num_shards)
    ]
