"""AndroidControl data and scoring without TensorFlow: TFRecord shards, episodes, step accuracy.

The environment itself lives in :mod:`molmo_envs.android_control`; this package holds what it reads and
how it scores, usable on its own for offline evaluation scripts.
"""

from .catalog import CorruptRecordError, EpisodeCatalog, IndexEntry, open_catalog
from .episodes import Element, Episode, iter_episodes, load_episodes, load_splits, parse_forest
from .scoring import PROTOCOLS, StepVerdict, default_max_new_tokens, ground_truth, score_answer
from .tfrecord import CorruptRecord, TFRecordReader, crc32c, masked_crc32c, parse_example, write_tfrecord

__all__ = [
    "PROTOCOLS",
    "CorruptRecord",
    "CorruptRecordError",
    "Element",
    "Episode",
    "EpisodeCatalog",
    "IndexEntry",
    "StepVerdict",
    "TFRecordReader",
    "crc32c",
    "default_max_new_tokens",
    "ground_truth",
    "iter_episodes",
    "load_episodes",
    "load_splits",
    "masked_crc32c",
    "open_catalog",
    "parse_example",
    "parse_forest",
    "score_answer",
    "write_tfrecord",
]
