"""AndroidControl without holding it in memory: an index of the shards and a catalog that reads one record.

The release is ~15k episodes of PNG screenshots (~50 GB) in 20 GZIP TFRecord shards, so keeping a split in
memory (:func:`~molmo_envs.androidcontrol.episodes.load_episodes`) needs more RAM than an evaluation machine
has. One scan of every shard records where each episode's record starts (an offset in the decompressed
record stream), how long it is and how many steps it has; the scan is cached as JSON beside the data (or
under ``~/.cache/molmo-agent/android_control`` when that folder is read-only) with a fingerprint of the
shards, so later opens cost one small file read. :class:`EpisodeCatalog` then reads exactly one record per
:meth:`EpisodeCatalog.load`, keeping one decompressing stream per GZIP shard so that playing episodes in
dataset order decompresses each shard once.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from google.protobuf.message import DecodeError

from .episodes import Episode, episode_from_example, selected_ids, shard_paths
from .example_pb2 import Example
from .tfrecord import CorruptRecord, TFRecordReader, masked_crc32c

logger = logging.getLogger(__name__)

INDEX_VERSION = 1
"""Bump when the index's contents or meaning change: an index of another version is rebuilt."""
INDEX_NAME = ".molmo_agent_index.json"
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
RECORD_OVERHEAD = _HEADER.size + _FOOTER.size
SKIP_CHUNK = 1 << 18
"""Bytes decompressed and dropped per read while skipping forward in a GZIP shard (bounds that memory)."""

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where one intact episode record lies: ``offset`` counts bytes of the decompressed record stream."""

    episode_id: int
    shard: str
    offset: int
    length: int
    num_steps: int


@dataclass(frozen=True)
class DatasetIndex:
    """Every intact record of every shard in dataset order, and what the scan had to skip.

    ``corrupt`` records name their shard by file name (the index stays valid wherever ``data_dir`` is read
    from); the catalog turns them into full paths.
    """

    fingerprint: Fingerprint
    entries: tuple[IndexEntry, ...]
    corrupt: tuple[CorruptRecord, ...]


class CorruptRecordError(ValueError):
    """A record that cannot be read back as an episode; ``record`` says which shard, offset and why."""

    def __init__(self, record: CorruptRecord) -> None:
        super().__init__(
            f"corrupt AndroidControl record in {record.path} at offset {record.offset}: {record.reason}"
        )
        self.record = record


# --- the index ---------------------------------------------------------------------------------------------


def shard_fingerprint(paths: Sequence[Path]) -> Fingerprint:
    """Names, sizes and modification times: any rewrite of a shard changes at least one of them."""
    return tuple((p.name, (st := p.stat()).st_size, st.st_mtime_ns) for p in paths)


def _entry_from_record(shard: str, offset: int, data: bytes) -> IndexEntry:
    """The index entry of one record, parsing only the episode id and the action count.

    Raises:
        ValueError: the record is not an AndroidControl Example.
    """
    try:
        features = Example.FromString(data).features.feature
    except DecodeError as exc:
        raise ValueError(f"not a tf.train.Example ({exc})") from exc
    ids = features["episode_id"].int64_list.value if "episode_id" in features else []
    if not ids:
        raise ValueError("no episode_id feature")
    steps = len(features["actions"].bytes_list.value) if "actions" in features else 0
    return IndexEntry(int(ids[0]), shard, offset, len(data), steps)


def _scan_shard(path: Path) -> tuple[list[IndexEntry], list[CorruptRecord]]:
    """One pass over a shard; record bytes are dropped as soon as their entry is made."""
    reader, shard = TFRecordReader(path), path.name  # one name string shared by the shard's entries
    entries, corrupt, next_offset = [], [], 0
    for _, offset, data in reader.records():
        try:
            entries.append(_entry_from_record(shard, offset, data))
        except ValueError as exc:
            corrupt.append(CorruptRecord(shard, offset, str(exc)))
        next_offset = offset + RECORD_OVERHEAD + len(data)
    for record in reader.corrupt:
        if record.offset < 0:  # the reader cannot place a broken GZIP stream; it ends after the last record
            record = CorruptRecord(
                record.path, next_offset, f"{record.reason} (after the last intact record)"
            )
        corrupt.append(CorruptRecord(shard, record.offset, record.reason))
    return entries, sorted(corrupt, key=lambda c: c.offset)


def scan_shards(paths: Sequence[Path]) -> DatasetIndex:
    """Index ``paths`` (in the given order) by reading every record once."""
    entries: list[IndexEntry] = []
    corrupt: list[CorruptRecord] = []
    for path in paths:
        shard_entries, shard_corrupt = _scan_shard(path)
        entries += shard_entries
        corrupt += shard_corrupt
    return DatasetIndex(shard_fingerprint(paths), tuple(entries), tuple(corrupt))


def index_to_json(index: DatasetIndex) -> dict[str, Any]:
    """Compact JSON: one ``[id, shard number, offset, length, steps]`` row per episode (~50 bytes each)."""
    numbers = {name: i for i, (name, _, _) in enumerate(index.fingerprint)}
    return {
        "version": INDEX_VERSION,
        "fingerprint": [list(f) for f in index.fingerprint],
        "episodes": [
            [e.episode_id, numbers[e.shard], e.offset, e.length, e.num_steps] for e in index.entries
        ],
        "corrupt": [[c.path, c.offset, c.reason] for c in index.corrupt],
    }


def index_from_json(payload: Mapping[str, Any]) -> DatasetIndex:
    """Inverse of :func:`index_to_json`: ``ValueError`` for another version, ``KeyError`` if malformed."""
    if payload.get("version") != INDEX_VERSION:
        raise ValueError(f"index version {payload.get('version')!r}, this code writes {INDEX_VERSION}")
    fingerprint = tuple((str(n), int(s), int(m)) for n, s, m in payload["fingerprint"])
    names = [name for name, _, _ in fingerprint]
    entries = tuple(
        IndexEntry(int(i), names[s], int(o), int(n), int(k)) for i, s, o, n, k in payload["episodes"]
    )
    corrupt = tuple(CorruptRecord(str(p), int(o), str(r)) for p, o, r in payload["corrupt"])
    return DatasetIndex(fingerprint, entries, corrupt)


def index_locations(data_dir: Path) -> list[Path]:
    """Where the index may live, preferred first: beside the data, else a per-folder file in the cache."""
    data_dir = data_dir.resolve()
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:24]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [data_dir / INDEX_NAME, cache / "molmo-agent" / "android_control" / f"{digest}.json"]


def _read_index(location: Path, fingerprint: Fingerprint) -> tuple[DatasetIndex | None, str]:
    """The cached index at ``location`` if it is current; else ``None`` and why not."""
    try:
        index = index_from_json(json.loads(location.read_text()))
    except FileNotFoundError:
        return None, "no index yet"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable index {location} ({exc})"
    if index.fingerprint != fingerprint:
        return None, f"the shards changed since {location} was written"
    return index, ""


def _write_index(index: DatasetIndex, locations: Sequence[Path]) -> Path | None:
    """Write to the first location that accepts it (atomically: concurrent openers never read half a file)."""
    text = json.dumps(index_to_json(index), separators=(",", ":"))
    for location in locations:
        temporary = location.with_name(f"{location.name}.{os.getpid()}.tmp")
        try:
            location.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(text)
            os.replace(temporary, location)
        except OSError as exc:
            logger.info("cannot write the AndroidControl index to %s (%s)", location, exc)
            temporary.unlink(missing_ok=True)
            continue
        return location
    logger.warning("could not save the AndroidControl index anywhere; it will be rebuilt next time")
    return None


def load_index(data_dir: str | Path, *, rebuild: bool = False) -> tuple[DatasetIndex, Path | None]:
    """The current index of ``data_dir`` and where it is saved, scanning the shards only when needed."""
    data_dir = Path(data_dir)
    paths = shard_paths(data_dir)
    fingerprint = shard_fingerprint(paths)
    locations = index_locations(data_dir)
    reasons = ["rebuild requested"] if rebuild else []
    for location in [] if rebuild else locations:
        index, reason = _read_index(location, fingerprint)
        if index is not None:
            return index, location
        reasons.append(reason)
    stale = [r for r in reasons if r != "no index yet"]
    logger.info(
        "%s AndroidControl index of %d shards in %s%s",
        "rebuilding the" if stale else "building an",
        len(paths),
        data_dir,
        f": {'; '.join(stale)}" if stale else "",
    )
    index = scan_shards(paths)
    return index, _write_index(index, locations)


def read_subsplits(data_dir: Path) -> dict[int, str]:
    """Episode id -> its ``test_subsplits.json`` name (the first that lists it); empty without the file."""
    path = data_dir / "test_subsplits.json"
    if not path.exists():
        return {}
    owners: dict[int, str] = {}
    for name, ids in json.loads(path.read_text()).items():
        for episode_id in ids:
            owners.setdefault(int(episode_id), name)
    return owners


# --- reading one record ------------------------------------------------------------------------------------


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as probe:
        return probe.read(2) == b"\x1f\x8b"


class _ShardStream:
    """One shard read at offsets of its record stream: a plain file seeks; a GZIP one decompresses forward
    (dropping what it skips) and reopens only to go backwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.compressed = _is_gzip(path)
        self.opens = 0
        self._file: BinaryIO | None = None
        self._position = 0

    def _reopen(self) -> BinaryIO:
        self.close()
        # held open across loads on purpose (closed by close()): reopening would decompress from the start
        self._file = gzip.open(self.path, "rb") if self.compressed else self.path.open("rb")  # noqa: SIM115
        self._position = 0
        self.opens += 1
        return self._file

    def seek(self, offset: int) -> None:
        file = self._file
        if file is None or (self.compressed and offset < self._position):
            file = self._reopen()
        if not self.compressed:
            file.seek(offset)
            self._position = offset
            return
        while self._position < offset:
            chunk = file.read(min(SKIP_CHUNK, offset - self._position))
            if not chunk:
                raise EOFError(f"the shard's records end at byte {self._position}, before offset {offset}")
            self._position += len(chunk)

    def read(self, size: int) -> bytes:
        assert self._file is not None, "seek before reading"
        data = self._file.read(size)
        self._position += len(data)
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _read_payload(stream: _ShardStream, entry: IndexEntry) -> bytes:
    """The record at ``entry``, both checksums verified; ``ValueError`` says what is wrong."""
    stream.seek(entry.offset)
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise ValueError("the shard ends inside the record header")
    length, length_crc = _HEADER.unpack(header)
    if masked_crc32c(header[:8]) != length_crc:
        raise ValueError("bad length checksum")
    if length != entry.length:
        raise ValueError(f"record holds {length} bytes, the index says {entry.length}")
    data = stream.read(length)
    footer = stream.read(_FOOTER.size)
    if len(data) < length or len(footer) < _FOOTER.size:
        raise ValueError(f"the shard ends inside the record of {length} bytes")
    if masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
        raise ValueError("bad data checksum")
    return data


class EpisodeCatalog:
    """The episodes of a split in dataset order (shard, then offset), read from disk one at a time.

    Memory is one episode's bytes plus the index (~100 bytes per episode): nothing is cached across
    :meth:`load` calls, so a caller that keeps episodes around decides how many. Playing episodes in
    dataset order decompresses each GZIP shard once (and closes it after its last selected episode, so
    one stream is open at a time); going backwards within a shard restarts its decompression from the
    beginning. Order by position here, not by episode id, when the order is yours to choose.

    Not thread-safe by design (each shard has one stream with a current position): every worker, process
    or environment opens its own catalog with :func:`open_catalog`, which reuses the cached index.

    Attributes:
        data_dir: The dataset folder.
        corrupt: Records skipped while indexing plus those that failed in :meth:`load`, with the shard's
            path and the record's offset (a record broken at indexing time never became an episode, so
            these cover the whole dataset, not just the selected split).
        index_path: Where the index is cached (``None`` if it could not be saved).
    """

    def __init__(
        self,
        data_dir: str | Path,
        entries: Sequence[IndexEntry],
        *,
        corrupt: Sequence[CorruptRecord] = (),
        subsplits: Mapping[int, str] | None = None,
        index_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.corrupt = list(corrupt)
        self.index_path = index_path
        self._entries = tuple(entries)
        self._positions: dict[int, int] = {}
        for position, entry in enumerate(self._entries):
            self._positions.setdefault(entry.episode_id, position)
        last_of_shard = {entry.shard: position for position, entry in enumerate(self._entries)}
        self._last_of_shard = set(last_of_shard.values())
        self._subsplits = dict(subsplits or {})
        self._streams: dict[str, _ShardStream] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def episode_ids(self) -> list[int]:
        """Episode ids in dataset order (position ``i`` is what ``load(i)`` returns)."""
        return [entry.episode_id for entry in self._entries]

    def num_steps(self, index: int) -> int:
        """Actions of episode ``index``, from the index (no record is read)."""
        return self._entries[index].num_steps

    def index_of(self, episode_id: int) -> int:
        """Position of ``episode_id`` (its first record, if the data holds it twice)."""
        try:
            return self._positions[episode_id]
        except KeyError:
            raise ValueError(
                f"episode {episode_id} is not in this catalog of {len(self)} episodes from {self.data_dir} "
                "(another split, or its record is corrupt)"
            ) from None

    def subsplit_of(self, episode_id: int) -> str | None:
        """The ``test_subsplits.json`` name listing ``episode_id`` (IDD, app_unseen, ...), else ``None``."""
        return self._subsplits.get(episode_id)

    @property
    def stream_opens(self) -> int:
        """How many times shards were opened (a diagnostic: in-order play opens each shard once)."""
        return sum(stream.opens for stream in self._streams.values())

    def load(self, index: int) -> Episode:
        """Read and decode episode ``index`` (only its record).

        Raises:
            CorruptRecordError: the record no longer reads back (checksum, truncation, decoding); it is also
                appended to :attr:`corrupt`, and the caller is expected to skip the episode.
        """
        entry = self._entries[index]
        try:
            stream = self._stream(entry.shard)
            data = _read_payload(stream, entry)
            if index in self._last_of_shard:  # any later read of this shard goes backwards: reopens anyway
                stream.close()
            return self._decode(entry, data)
        except (EOFError, OSError, zlib.error) as exc:  # the compressed stream broke: start over next time
            broken = self._streams.pop(entry.shard, None)
            if broken is not None:
                broken.close()
            problem = f"unreadable shard ({type(exc).__name__}: {exc})"
        except ValueError as exc:
            problem = str(exc)
        record = CorruptRecord(str(self.data_dir / entry.shard), entry.offset, problem)
        self.corrupt.append(record)
        logger.warning("skipping corrupt record in %s at offset %d: %s", record.path, record.offset, problem)
        raise CorruptRecordError(record)

    def _stream(self, shard: str) -> _ShardStream:
        if shard not in self._streams:
            self._streams[shard] = _ShardStream(self.data_dir / shard)
        return self._streams[shard]

    @staticmethod
    def _decode(entry: IndexEntry, data: bytes) -> Episode:
        try:
            episode = episode_from_example(data)
        except (DecodeError, KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"not a readable episode ({type(exc).__name__}: {exc})") from exc
        if episode.episode_id != entry.episode_id:
            raise ValueError(f"holds episode {episode.episode_id}, the index says {entry.episode_id}")
        return episode

    def close(self) -> None:
        """Close every open shard (the catalog stays usable: the next load reopens)."""
        for stream in self._streams.values():
            stream.close()

    def __enter__(self) -> EpisodeCatalog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_catalog(
    data_dir: str | Path,
    split: str | None = "test",
    subsplit: str | None = None,
    *,
    rebuild: bool = False,
) -> EpisodeCatalog:
    """The episodes of ``split`` (and ``subsplit``; ``None`` for both means every episode), lazily.

    The first open of a dataset scans every shard (minutes for the full release) and caches the index;
    later opens read the cache unless the shards changed or ``rebuild`` is set.
    """
    data_dir = Path(data_dir)
    index, index_path = load_index(data_dir, rebuild=rebuild)
    wanted = selected_ids(data_dir, split, subsplit)
    entries = [e for e in index.entries if wanted is None or e.episode_id in wanted]
    corrupt = [CorruptRecord(str(data_dir / c.path), c.offset, c.reason) for c in index.corrupt]
    if corrupt:
        logger.warning("%d corrupt records in %s are left out of the catalog", len(corrupt), data_dir)
    return EpisodeCatalog(
        data_dir, entries, corrupt=corrupt, subsplits=read_subsplits(data_dir), index_path=index_path
    )
