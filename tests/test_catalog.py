"""The lazy AndroidControl catalog: the eager loader's episodes, a cached index, corrupt records skipped, and
memory that does not grow with the number of episodes."""

from __future__ import annotations

import gzip
import json
import os
import random
import tracemalloc
from pathlib import Path

import pytest

from molmo_envs.androidcontrol.catalog import (
    INDEX_NAME,
    CorruptRecordError,
    EpisodeCatalog,
    open_catalog,
)
from molmo_envs.androidcontrol.episodes import Episode, iter_episodes, load_episodes
from molmo_envs.androidcontrol.synthetic import make_episodes
from molmo_envs.androidcontrol.tfrecord import TFRecordReader, write_tfrecord
from molmo_envs.androidcontrol.writer import episode_to_example, write_dataset

SIZE = (270, 600)
SPLITS = {"train": [100, 101, 102], "validation": [103], "test": [104, 105, 106, 107]}
SUBSPLITS = {"IDD": [104, 105], "app_unseen": [106], "task_unseen": [107], "category_unseen": []}


def _write(data_dir: Path, count: int = 8, num_shards: int = 3) -> list[Path]:
    episodes = make_episodes(count, first_id=100, sizes=(SIZE,))
    return write_dataset(data_dir, episodes, num_shards=num_shards, splits=SPLITS, subsplits=SUBSPLITS)


def _decompress(path: Path) -> None:
    """Rewrite a GZIP shard as a plain TFRecord file (the same records)."""
    path.write_bytes(gzip.decompress(path.read_bytes()))


def _offsets(path: Path) -> list[int]:
    return [offset for _, offset, _ in TFRecordReader(path).records()]


def _same(a: Episode, b: Episode) -> bool:
    fields = ("episode_id", "goal", "screenshots", "screenshot_sizes", "accessibility_trees", "actions")
    return all(getattr(a, f) == getattr(b, f) for f in (*fields, "step_instructions"))


def _all(catalog: EpisodeCatalog) -> list[Episode]:
    return [catalog.load(i) for i in range(len(catalog))]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("android_control")
    _write(data_dir)
    return data_dir


@pytest.fixture
def fresh(tmp_path) -> Path:
    """A dataset this test may damage or rewrite."""
    _write(tmp_path)
    return tmp_path


# --- the same episodes as the eager loader ------------------------------------------------------------------


def test_catalog_equals_eager_load_in_dataset_order(dataset):
    eager = load_episodes(dataset, None)
    with open_catalog(dataset, None) as catalog:
        assert catalog.episode_ids() == [e.episode_id for e in eager]
        loaded = _all(catalog)
        assert [catalog.num_steps(i) for i in range(len(catalog))] == [e.num_steps for e in eager]
        assert catalog.corrupt == []
    assert len(loaded) == 8
    assert all(_same(a, b) for a, b in zip(loaded, eager, strict=True))


@pytest.mark.parametrize(
    ("split", "subsplit"),
    [("train", None), ("validation", None), ("test", None), ("test", "IDD"), ("test", "app_unseen"),
     (None, "task_unseen"), ("test", "category_unseen"), (None, None)],
)  # fmt: skip
def test_split_and_subsplit_selection(dataset, split, subsplit):
    expected = [e.episode_id for e in iter_episodes(dataset, split, subsplit)]
    with open_catalog(dataset, split, subsplit) as catalog:
        assert catalog.episode_ids() == expected
        assert [catalog.load(i).episode_id for i in range(len(catalog))] == expected


def test_unknown_split_names_the_known_ones(dataset):
    with pytest.raises(ValueError, match="IDD"):
        open_catalog(dataset, "test", "unseen")


def test_subsplit_of_and_index_of(dataset):
    with open_catalog(dataset, None) as catalog:
        assert [catalog.subsplit_of(i) for i in (100, 104, 105, 106, 107)] == [
            None,
            "IDD",
            "IDD",
            "app_unseen",
            "task_unseen",
        ]
        assert catalog.subsplit_of(999) is None
        position = catalog.index_of(106)
        assert catalog.episode_ids()[position] == 106 and catalog.load(position).episode_id == 106
    with open_catalog(dataset, "train") as train, pytest.raises(ValueError, match=r"episode 104 .*not in"):
        train.index_of(104)


def test_random_order_reopens_gzip_shards_to_go_back(dataset):
    eager = {e.episode_id: e for e in load_episodes(dataset, None)}
    with open_catalog(dataset, None) as catalog:
        _all(catalog)
        assert catalog.stream_opens == 3  # in order: each shard decompressed once
        order = list(range(len(catalog)))[::-1] + random.Random(0).sample(range(len(catalog)), len(catalog))
        for i in order:
            episode = catalog.load(i)
            assert _same(episode, eager[catalog.episode_ids()[i]])
    assert catalog.stream_opens > 3
    assert _same(catalog.load(0), eager[catalog.episode_ids()[0]])  # a closed catalog reopens on demand


def test_gzip_and_uncompressed_shards_mixed(fresh):
    eager = load_episodes(fresh, None)
    _decompress(fresh / "android_control-00001-of-00003")
    with open_catalog(fresh, None) as catalog:
        assert catalog.episode_ids() == [e.episode_id for e in eager]
        for i in [*range(len(catalog)), 4, 1, 7, 0]:  # backwards in a plain shard just seeks
            assert _same(catalog.load(i), eager[i])


# --- the cached index ---------------------------------------------------------------------------------------


def test_index_is_written_once_reused_and_rebuilt_when_a_shard_changes(fresh, caplog):
    caplog.set_level("INFO", logger="molmo_envs.androidcontrol.catalog")
    with open_catalog(fresh, None) as catalog:
        assert catalog.index_path == fresh.resolve() / INDEX_NAME
    written = catalog.index_path.stat().st_mtime_ns
    assert "building an AndroidControl index of 3 shards" in caplog.text
    payload = json.loads(catalog.index_path.read_text())
    assert payload["version"] == 1 and len(payload["episodes"]) == 8 and len(payload["fingerprint"]) == 3

    caplog.clear()
    with open_catalog(fresh, "test") as again:
        assert len(again) == 4
    assert catalog.index_path.stat().st_mtime_ns == written
    assert "index" not in caplog.text

    shard = fresh / "android_control-00002-of-00003"
    write_tfrecord(shard, [episode_to_example(e) for e in make_episodes(1, first_id=102, sizes=(SIZE,))])
    with open_catalog(fresh, None) as changed:
        assert changed.episode_ids() == [100, 103, 106, 101, 104, 107, 102]
    assert "rebuilding the AndroidControl index" in caplog.text and "shards changed" in caplog.text
    assert catalog.index_path.stat().st_mtime_ns != written


def test_rebuild_flag_and_other_version_rebuild(fresh, caplog):
    caplog.set_level("INFO", logger="molmo_envs.androidcontrol.catalog")
    index_path = open_catalog(fresh).index_path
    payload = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**payload, "version": 0}))
    caplog.clear()
    assert len(open_catalog(fresh)) == 4
    assert "rebuilding" in caplog.text and "version 0" in caplog.text
    caplog.clear()
    assert len(open_catalog(fresh, rebuild=True)) == 4
    assert "rebuild requested" in caplog.text


def test_index_goes_to_the_user_cache_when_the_data_folder_refuses_it(fresh, tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    (fresh / INDEX_NAME).mkdir()  # cannot be replaced by a file (chmod would not stop root)
    first = open_catalog(fresh, None)
    assert (
        first.index_path is not None and first.index_path.parent == cache / "molmo-agent" / "android_control"
    )
    written = first.index_path.stat().st_mtime_ns
    second = open_catalog(fresh, None)
    assert second.index_path == first.index_path and first.index_path.stat().st_mtime_ns == written
    assert second.episode_ids() == first.episode_ids()


# --- corrupt records ----------------------------------------------------------------------------------------


def test_corrupt_and_truncated_records_are_reported_and_skipped(fresh):
    flipped, truncated = fresh / "android_control-00000-of-00003", fresh / "android_control-00001-of-00003"
    for path in (flipped, truncated):
        _decompress(path)
    flipped_at, truncated_at = _offsets(flipped)[1], _offsets(truncated)[-1]
    raw = bytearray(flipped.read_bytes())
    raw[flipped_at + 12 + 1000] ^= 0x20  # inside episode 103's data
    flipped.write_bytes(bytes(raw))
    truncated.write_bytes(truncated.read_bytes()[:-100])  # episode 107 loses its end

    with open_catalog(fresh, None) as catalog:
        assert [(c.path, c.offset) for c in catalog.corrupt] == [
            (str(flipped), flipped_at),
            (str(truncated), truncated_at),
        ]
        assert "data checksum" in catalog.corrupt[0].reason and "ends inside" in catalog.corrupt[1].reason
        assert catalog.episode_ids() == [100, 106, 101, 104, 102, 105]
        assert [e.episode_id for e in _all(catalog)] == catalog.episode_ids()
    again = open_catalog(fresh, None)  # the cached index keeps the report
    assert [(c.path, c.offset) for c in again.corrupt] == [
        (str(flipped), flipped_at),
        (str(truncated), truncated_at),
    ]


def test_truncated_gzip_shard_reports_where_its_records_stop(fresh):
    shard = fresh / "android_control-00002-of-00003"
    offsets = _offsets(shard)
    shard.write_bytes(shard.read_bytes()[:-2000])
    with open_catalog(fresh, None) as catalog:
        assert [(c.path, c.offset) for c in catalog.corrupt] == [(str(shard), offsets[1])]
        assert 105 not in catalog.episode_ids() and 102 in catalog.episode_ids()
        assert len(_all(catalog)) == 7


def test_record_damaged_after_indexing_raises_and_is_counted(fresh):
    shard = fresh / "android_control-00000-of-00003"
    _decompress(shard)
    catalog = open_catalog(fresh, None)
    stat, at = shard.stat(), _offsets(shard)[2]
    raw = bytearray(shard.read_bytes())
    raw[at + 12 + 50] ^= 0x01
    shard.write_bytes(bytes(raw))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same fingerprint: the index still trusts it
    assert open_catalog(fresh, None).corrupt == []

    position = catalog.index_of(106)
    with pytest.raises(CorruptRecordError, match=rf"android_control-00000-of-00003 at offset {at}: bad data"):
        catalog.load(position)
    assert [(c.path, c.offset) for c in catalog.corrupt] == [(str(shard), at)]
    loaded = [catalog.load(i).episode_id for i in range(len(catalog)) if i != position]
    assert loaded == [i for i in catalog.episode_ids() if i != 106]


def test_gzip_shard_damaged_after_indexing(fresh):
    shard = fresh / "android_control-00001-of-00003"
    catalog = open_catalog(fresh, None)
    stat = shard.stat()
    shard.write_bytes(shard.read_bytes()[: stat.st_size // 2] + bytes(stat.st_size - stat.st_size // 2))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    last = catalog.index_of(107)
    with pytest.raises(CorruptRecordError, match="android_control-00001-of-00003 at offset"):
        catalog.load(last)
    assert len(catalog.corrupt) == 1
    assert catalog.load(catalog.index_of(100)).episode_id == 100  # other shards unaffected


# --- memory -------------------------------------------------------------------------------------------------


def test_loading_every_episode_in_order_keeps_one_record_in_memory(tmp_path):
    _write(tmp_path, count=16, num_shards=2)
    lengths = [len(data) for data in TFRecordReader(sorted(tmp_path.glob("android_control-*")))]
    with open_catalog(tmp_path, None) as catalog:
        tracemalloc.start()
        try:
            for i in range(len(catalog)):
                episode = catalog.load(i)
                assert episode.num_steps == catalog.num_steps(i)
                del episode
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert sum(lengths) > 8 * max(lengths)
    assert peak < 3 * max(lengths), f"peak {peak} bytes for records of at most {max(lengths)}"
