"""Where an AndroidControl env gets its episodes: a lazy catalog of shards, or episodes already in memory.

Both answer the same questions (how many, which ids, how many steps, which subsplit) without decoding
screens, and hand out one :class:`Episode` at a time, so the env holds one episode however large the split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from .episodes import Episode
from .tfrecord import CorruptRecord


class EpisodeSource(Protocol):
    corrupt: list[CorruptRecord]

    def __len__(self) -> int: ...
    def episode_ids(self) -> list[int]: ...
    def num_steps(self, index: int) -> int: ...
    def load(self, index: int) -> Episode: ...
    def subsplit_of(self, episode_id: int) -> str | None: ...
    def close(self) -> None: ...


class InMemoryEpisodes:
    """Episodes the caller already holds (tests, small local sets), in the given order."""

    def __init__(self, episodes: Sequence[Episode], subsplits: Mapping[int, str] | None = None) -> None:
        self._episodes = list(episodes)
        self._subsplits = dict(subsplits or {})
        self.corrupt: list[CorruptRecord] = []

    def __len__(self) -> int:
        return len(self._episodes)

    def episode_ids(self) -> list[int]:
        return [e.episode_id for e in self._episodes]

    def num_steps(self, index: int) -> int:
        return self._episodes[index].num_steps

    def load(self, index: int) -> Episode:
        return self._episodes[index]

    def subsplit_of(self, episode_id: int) -> str | None:
        return self._subsplits.get(episode_id)

    def close(self) -> None:
        pass
