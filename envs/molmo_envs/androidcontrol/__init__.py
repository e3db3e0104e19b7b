"""AndroidControl data and scoring without TensorFlow: TFRecord shards, episodes, step accuracy.

The environment itself lives in :mod:`molmo_envs.android_control`; this package holds what it reads and
how it scores, usable on its own for offline evaluation scripts.
"""

from .episodes import Element, Episode, iter_episodes, load_episodes, load_splits, parse_forest
from .scoring import PROTOCOLS, StepVerdict, score_step, target_box, token_f1
from .tfrecord import CorruptRecord, TFRecordReader, crc32c, masked_crc32c, parse_example, write_tfrecord

__all__ = [
    "PROTOCOLS",
    "CorruptRecord",
    "Element",
    "Episode",
    "StepVerdict",
    "TFRecordReader",
    "crc32c",
    "iter_episodes",
    "load_episodes",
    "load_splits",
    "masked_crc32c",
    "parse_example",
    "parse_forest",
    "score_step",
    "target_box",
    "token_f1",
    "write_tfrecord",
]
