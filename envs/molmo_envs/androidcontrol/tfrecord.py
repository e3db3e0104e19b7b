"""TFRecord files and ``tf.train.Example`` protos without TensorFlow.

A TFRecord file is a sequence of records, each ``uint64 length | uint32 masked_crc32c(length bytes) | data |
uint32 masked_crc32c(data)`` (little-endian), optionally inside one GZIP stream. AndroidControl ships as 20
GZIP shards of this format with one ``tf.train.Example`` per episode.

A corrupt record (a checksum that does not match, or a file that ends mid-record) is never returned as
data: it is logged, appended to :attr:`TFRecordReader.corrupt` with its file and byte offset (offsets
count bytes of the decompressed record stream), and skipped. After a bad data checksum the length is
still trusted (its own checksum matched) so reading goes on at the next record; after a bad length
checksum the reader scans forward byte by byte to the next header whose checksums match.

CRC32C comes from the ``google-crc32c`` package when it is installed (C speed); otherwise from the
table-driven pure-Python :func:`crc32c_python` (correct but slow on multi-megabyte records).
"""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from .example_pb2 import Example

logger = logging.getLogger(__name__)

Compression = Literal["auto", "gzip", "none"]
FeatureValue = list[bytes] | list[float] | list[int]

_CASTAGNOLI = 0x82F63B78  # the reflected CRC-32C polynomial
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_GZIP_MAGIC = b"\x1f\x8b"
MAX_RECORD_BYTES = 1 << 34
"""A length above this (16 GiB) is treated as corrupt even when its checksum matches."""


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CASTAGNOLI if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()


def crc32c_python(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, table-driven, in pure Python."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # the C implementation is ~1000x faster; the pure-Python one keeps the dependency optional
    import google_crc32c as _google_crc32c

    def crc32c(data: bytes) -> int:
        """CRC-32C (Castagnoli) of ``data`` (``google-crc32c``)."""
        return _google_crc32c.value(bytes(data))

except ImportError:  # pragma: no cover - depends on the environment
    crc32c = crc32c_python


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked checksum: CRC-32C rotated right by 15 bits plus a constant, mod 2**32."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass(frozen=True)
class CorruptRecord:
    """A record that was skipped: where it started and why."""

    path: str
    offset: int
    reason: str


class _PushbackStream:
    """A byte stream that can un-read bytes (for resynchronising after a corrupt header)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pending = b""

    def read(self, size: int) -> bytes:
        head, self._pending = self._pending[:size], self._pending[size:]
        if len(head) < size:
            head += self._raw.read(size - len(head))
        return head

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending


def _open(path: Path, compression: Compression) -> BinaryIO:
    if compression == "auto":
        with path.open("rb") as probe:
            compression = "gzip" if probe.read(2) == _GZIP_MAGIC else "none"
    return gzip.open(path, "rb") if compression == "gzip" else path.open("rb")


class TFRecordReader:
    """Iterate the records of one or more TFRecord files, skipping (and reporting) corrupt ones.

    Args:
        paths: One file or several, read in the given order.
        compression: ``"gzip"``, ``"none"``, or ``"auto"`` (by the GZIP magic bytes).

    Iterating yields the record payloads; :meth:`records` also yields each one's file and offset. Skipped
    records accumulate in :attr:`corrupt`.
    """

    def __init__(self, paths: str | Path | Sequence[str | Path], compression: Compression = "auto") -> None:
        if isinstance(paths, str | Path):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        self.compression = compression
        self.corrupt: list[CorruptRecord] = []

    def __iter__(self) -> Iterator[bytes]:
        for _, _, data in self.records():
            yield data

    def records(self) -> Iterator[tuple[str, int, bytes]]:
        """``(path, offset, data)`` for every intact record of every file."""
        for path in self.paths:
            with _open(path, self.compression) as raw:
                try:
                    for offset, data in self._read_file(str(path), _PushbackStream(raw)):
                        yield str(path), offset, data
                except (EOFError, OSError, zlib.error) as exc:  # a broken GZIP stream ends this file
                    self._report(str(path), -1, f"unreadable compressed stream: {exc}")

    def _report(self, path: str, offset: int, reason: str) -> None:
        logger.warning("skipping corrupt TFRecord data in %s at offset %d: %s", path, offset, reason)
        self.corrupt.append(CorruptRecord(path, offset, reason))

    def _read_file(self, path: str, stream: _PushbackStream) -> Iterator[tuple[int, bytes]]:
        offset, scanning_from = 0, None  # scanning_from: where a bad header was met, while resynchronising
        while True:
            header = stream.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                if scanning_from is None:
                    self._report(path, offset, f"file ends inside a record header ({len(header)} bytes)")
                return
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc or length > MAX_RECORD_BYTES:
                if scanning_from is None:
                    self._report(path, offset, "bad length checksum; scanning for the next record")
                    scanning_from = offset
                stream.unread(header[1:])
                offset += 1
                continue
            data = stream.read(length)
            footer = stream.read(_FOOTER.size)
            intact = len(data) == length and len(footer) == _FOOTER.size
            if intact and masked_crc32c(data) == _FOOTER.unpack(footer)[0]:
                if scanning_from is not None:
                    logger.warning(
                        "%s: resynchronised at offset %d after %d bytes", path, offset, offset - scanning_from
                    )
                    scanning_from = None
                yield offset, data
                offset += _HEADER.size + length + _FOOTER.size
            elif scanning_from is not None:  # a false header match while scanning: keep scanning
                stream.unread(header[1:] + data + footer)
                offset += 1
            elif not intact:
                self._report(path, offset, f"file ends inside a record of {length} bytes")
                return
            else:
                self._report(path, offset, "bad data checksum")
                offset += _HEADER.size + length + _FOOTER.size


def encode_record(data: bytes) -> bytes:
    """One record with both checksums, as a TFRecord file stores it."""
    length = struct.pack("<Q", len(data))
    return length + _FOOTER.pack(masked_crc32c(length)) + data + _FOOTER.pack(masked_crc32c(data))


def write_tfrecord(path: str | Path, records: Iterable[bytes], *, compression: Compression = "gzip") -> Path:
    """Write ``records`` to ``path`` (GZIP by default, as AndroidControl's shards are)."""
    path = Path(path)
    opener = gzip.open if compression == "gzip" else open
    with opener(path, "wb") as out:
        for data in records:
            out.write(encode_record(data))
    return path


def parse_example(data: bytes) -> dict[str, FeatureValue]:
    """A serialized ``tf.train.Example`` as ``{name: list of values}`` (bytes, floats or ints)."""
    example = Example.FromString(data)
    out: dict[str, FeatureValue] = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = list(getattr(feature, kind).value) if kind else []
    return out


def build_example(features: Mapping[str, Sequence[bytes] | Sequence[float] | Sequence[int]]) -> bytes:
    """Serialize ``{name: values}`` as a ``tf.train.Example``; the value type picks the list kind.

    Empty sequences become empty ``BytesList``s (TensorFlow cannot tell an empty list's kind either).
    """
    example = Example()
    for name, values in features.items():
        feature = example.features.feature[name]
        values = list(values)
        if all(isinstance(v, bytes | bytearray | str) for v in values):
            feature.bytes_list.value.extend(v.encode() if isinstance(v, str) else bytes(v) for v in values)
        elif all(isinstance(v, int) for v in values):
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.value.extend(float(v) for v in values)
    return example.SerializeToString()
