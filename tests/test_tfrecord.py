"""TFRecord framing, CRC32C, tf.train.Example decoding and AndroidControl episodes, without TensorFlow."""

from __future__ import annotations

import gzip
import json
import struct

import pytest

from molmo_agent.actions import ANDROID_CONTROL_TYPES
from molmo_envs.androidcontrol.episodes import (
    Element,
    episode_from_example,
    iter_episodes,
    load_episodes,
    load_splits,
    parse_forest,
)
from molmo_envs.androidcontrol.synthetic import make_episode
from molmo_envs.androidcontrol.tfrecord import (
    TFRecordReader,
    build_example,
    crc32c,
    crc32c_python,
    encode_record,
    masked_crc32c,
    parse_example,
    write_tfrecord,
)
from molmo_envs.androidcontrol.writer import build_forest, episode_to_example, write_dataset

RECORDS = [b"first", b"", b"x" * 1000, bytes(range(256)), b"last record"]


# --- CRC32C -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", [crc32c, crc32c_python])
def test_crc32c_known_vectors(impl):
    assert impl(b"123456789") == 0xE3069283
    assert impl(b"") == 0
    assert impl(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert impl(b"\xff" * 32) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of 0xff


def test_python_and_default_crc_agree_on_random_data():
    import random

    rng = random.Random(0)
    for size in (1, 7, 64, 1000):
        data = rng.randbytes(size)
        assert crc32c_python(data) == crc32c(data)


def test_masked_crc_is_rotate_plus_delta():
    crc = crc32c(b"abc")
    assert masked_crc32c(b"abc") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32


def test_record_layout():
    data = b"hello"
    record = encode_record(data)
    length = struct.pack("<Q", 5)
    assert record[:8] == length
    assert struct.unpack("<I", record[8:12])[0] == masked_crc32c(length)
    assert record[12:17] == data
    assert struct.unpack("<I", record[17:])[0] == masked_crc32c(data)


# --- reading ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_round_trip_and_autodetect(tmp_path, compression):
    path = write_tfrecord(tmp_path / "shard", RECORDS, compression=compression)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (compression == "gzip")
    assert list(TFRecordReader(path)) == RECORDS
    assert list(TFRecordReader(path, compression=compression)) == RECORDS


def test_gzip_file_is_a_plain_gzip_stream(tmp_path):
    path = write_tfrecord(tmp_path / "shard.gz", RECORDS)
    assert gzip.decompress(path.read_bytes()) == b"".join(encode_record(r) for r in RECORDS)


def test_several_shards_in_order_with_offsets(tmp_path):
    a = write_tfrecord(tmp_path / "a", RECORDS[:2])
    b = write_tfrecord(tmp_path / "b", RECORDS[2:])
    records = list(TFRecordReader([a, b]).records())
    assert [r[2] for r in records] == RECORDS
    assert [(r[0], r[1]) for r in records[:3]] == [(str(a), 0), (str(a), 16 + 5), (str(b), 0)]


def _corrupt_file(tmp_path, position: int, name: str = "bad") -> tuple[str, list[int]]:
    """A GZIP shard of RECORDS with one byte flipped at ``position`` of the record stream; record offsets."""
    raw = bytearray(b"".join(encode_record(r) for r in RECORDS))
    offsets, offset = [], 0
    for r in RECORDS:
        offsets.append(offset)
        offset += 16 + len(r)
    raw[position] ^= 0x40
    path = tmp_path / name
    path.write_bytes(gzip.compress(bytes(raw)))
    return str(path), offsets


def test_bad_data_checksum_is_reported_and_skipped(tmp_path, caplog):
    path, offsets = _corrupt_file(tmp_path, 0)
    path, offsets = _corrupt_file(tmp_path, offsets[2] + 12 + 500)  # inside record 2's data
    reader = TFRecordReader(path)
    with caplog.at_level("WARNING"):
        assert list(reader) == RECORDS[:2] + RECORDS[3:]
    assert [(c.path, c.offset) for c in reader.corrupt] == [(path, offsets[2])]
    assert "data checksum" in reader.corrupt[0].reason
    assert path in caplog.text and str(offsets[2]) in caplog.text


def test_bad_length_checksum_resynchronises(tmp_path):
    path, offsets = _corrupt_file(tmp_path, 0)
    path, offsets = _corrupt_file(tmp_path, offsets[2] + 3)  # inside record 2's length
    reader = TFRecordReader(path)
    assert list(reader) == RECORDS[:2] + RECORDS[3:]
    assert [(c.path, c.offset) for c in reader.corrupt] == [(path, offsets[2])]
    assert "length checksum" in reader.corrupt[0].reason


def test_truncated_file_reports_the_partial_record(tmp_path):
    raw = b"".join(encode_record(r) for r in RECORDS)
    offset = len(raw) - 16 - len(RECORDS[-1])
    path = tmp_path / "truncated"
    path.write_bytes(raw[:-3])
    reader = TFRecordReader(path)
    assert list(reader) == RECORDS[:-1]
    assert [(c.path, c.offset) for c in reader.corrupt] == [(str(path), offset)]


def test_broken_gzip_stream_is_reported_then_next_shard_read(tmp_path):
    broken = tmp_path / "a"
    broken.write_bytes(gzip.compress(b"".join(encode_record(r) for r in RECORDS))[:-30])
    good = write_tfrecord(tmp_path / "b", [b"after"])
    reader = TFRecordReader([broken, good])
    records = list(reader)
    assert records[-1] == b"after"
    assert set(records[:-1]) <= set(RECORDS)
    assert reader.corrupt and reader.corrupt[0].path == str(broken)


# --- tf.train.Example ------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_parses_hand_encoded_example_with_tensorflow_field_numbers():
    """Bytes laid out as TensorFlow writes them: Example.features=1, Features.feature (map)=1,
    Feature.bytes_list=1/float_list=2/int64_list=3, each list's value=1 (numbers packed)."""

    def entry(key: str, feature: bytes) -> bytes:
        return _field(1, _field(1, key.encode()) + _field(2, feature))

    ints = _field(3, _field(1, _varint(7) + _varint(300) + _varint(2**64 - 1)))  # -1 as int64
    floats = _field(2, _field(1, struct.pack("<2f", 0.5, -2.0)))
    strings = _field(1, _field(1, b"abc") + _field(1, b"\x89PNG"))
    data = _field(1, entry("i", ints) + entry("f", floats) + entry("s", strings))
    assert parse_example(data) == {"i": [7, 300, -1], "f": [0.5, -2.0], "s": [b"abc", b"\x89PNG"]}


def test_build_example_round_trip():
    features = {"id": [5], "goal": [b"do it"], "shots": [b"a", b"b"], "w": [1080, 720], "f": [0.25]}
    assert parse_example(build_example(features)) == features


# --- AndroidControl episodes -------------------------------------------------------------------------------


def test_forest_keeps_visible_elements_with_area():
    visible = [Element((0, 0, 100, 200), text="root", class_name="FrameLayout"), Element((5, 5, 5, 50))]
    hidden = [Element((1, 1, 2, 2), text="hidden")]
    elements = parse_forest(build_forest(visible, hidden=hidden))
    assert [(e.bounds, e.text, e.class_name) for e in elements] == [((0, 0, 100, 200), "root", "FrameLayout")]


def test_episode_round_trips_through_an_example():
    episode = make_episode(7, (360, 800))
    again = episode_from_example(episode_to_example(episode))
    assert again.episode_id == 7 and again.goal == episode.goal
    assert again.actions == episode.actions and again.step_instructions == episode.step_instructions
    assert again.screenshot_sizes == ((360, 800),) * 9
    assert again.screenshot(0).shape == (800, 360, 3)
    assert {a["action_type"] for a in again.actions} == {t.value for t in ANDROID_CONTROL_TYPES}
    assert [e.bounds for e in again.elements(3)] == [e.bounds for e in episode.elements(3)]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("android_control")
    episodes = [make_episode(i, (180, 400)) for i in range(1, 7)]
    write_dataset(
        data_dir,
        episodes,
        num_shards=3,
        splits={"train": [1, 2], "validation": [3], "test": [4, 5, 6]},
        subsplits={"IDD": [4, 6], "app_unseen": [5], "task_unseen": [], "category_unseen": []},
    )
    return data_dir


def test_dataset_files(small_dataset):
    shards = sorted(p.name for p in small_dataset.glob("android_control-*"))
    assert shards == [f"android_control-0000{i}-of-00003" for i in range(3)]
    assert set(json.loads((small_dataset / "test_subsplits.json").read_text())) == {
        "IDD",
        "app_unseen",
        "task_unseen",
        "category_unseen",
    }
    assert load_splits(small_dataset)["IDD"] == [4, 6]


@pytest.mark.parametrize(
    ("split", "subsplit", "ids"),
    [
        ("train", None, {1, 2}),
        ("validation", None, {3}),
        ("test", None, {4, 5, 6}),
        ("test", "IDD", {4, 6}),
        ("test", "app_unseen", {5}),
        ("test", "task_unseen", set()),
        (None, None, {1, 2, 3, 4, 5, 6}),
    ],
)
def test_split_and_subsplit_filtering(small_dataset, split, subsplit, ids):
    assert {e.episode_id for e in iter_episodes(small_dataset, split, subsplit)} == ids


def test_unknown_split_names_the_known_ones(small_dataset):
    with pytest.raises(ValueError, match="IDD"):
        load_episodes(small_dataset, "test", "unseen")


def test_corrupt_episode_record_is_skipped(tmp_path):
    episodes = [make_episode(i, (90, 200)) for i in range(3)]
    records = [encode_record(episode_to_example(e)) for e in episodes]
    broken = bytearray(records[1])
    broken[len(broken) // 2] ^= 0xFF
    (tmp_path / "android_control-00000-of-00001").write_bytes(gzip.compress(records[0] + broken + records[2]))
    (tmp_path / "splits.json").write_text(json.dumps({"train": [], "validation": [], "test": [0, 1, 2]}))
    reader = TFRecordReader(tmp_path / "android_control-00000-of-00001")
    assert [e.episode_id for e in iter_episodes(tmp_path, "test", reader=reader)] == [0, 2]
    assert [c.offset for c in reader.corrupt] == [len(records[0])]
