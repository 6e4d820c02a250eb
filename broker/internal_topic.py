"""What the broker's two internal compacted topics (``__consumer_offsets`` and
``__transaction_state``) share: Kafka's choice of partition for a coordinator key, and the
big-endian primitives their record keys and values are made of.

Both topics are laid out like Kafka's, so the same key lands in the same partition and the
bytes read the same to anyone who knows Kafka's format; keeping one copy of these pieces
keeps the two topics from drifting apart.

>>> java_string_hash("hello")
99162322
>>> out = bytearray()
>>> put_str(out, "g")
>>> Reader(bytes(out)).str()
'g'
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from broker.log.interface import LogManager
from broker.log.records import decode_records, iter_batches

__all__ = [
    "Reader",
    "coordinator_partition",
    "java_string_hash",
    "put_bytes",
    "put_str",
    "read_keyed",
]

_B = struct.Struct(">b")
_H = struct.Struct(">h")
_I = struct.Struct(">i")
_Q = struct.Struct(">q")


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (UTF-16 code units), so partitioning matches Kafka's."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def coordinator_partition(key: str, num_partitions: int) -> int:
    """The partition of an internal topic that owns ``key`` (a group or transactional id):
    ``abs(hash) % partitions`` with Kafka's ``abs`` (which maps the minimum int to 0)."""
    h = java_string_hash(key)
    return (0 if h == -(2**31) else abs(h)) % num_partitions


def read_keyed(
    logs: LogManager, topic: str, num_partitions: int
) -> Iterator[tuple[bytes, bytes | None]]:
    """Every keyed record of ``topic`` as ``(key, value | None)``, partition by partition in
    log order (what a coordinator replays at start; later records win)."""
    for p in range(num_partitions):
        part = logs.partition(topic, p)
        offset, end = part.log_start_offset, part.log_end_offset
        while offset < end:
            data = part.read(offset, 1 << 20)
            if not data:
                break
            view = memoryview(data)
            last = offset
            for pos, header in iter_batches(data):
                for rec in decode_records(view[pos : pos + header.size]):
                    if rec.offset >= offset and rec.key is not None:
                        yield rec.key, rec.value
                last = header.last_offset
            offset = max(last + 1, offset + 1)


def put_str(out: bytearray, value: str | None) -> None:
    """Append an int16-length-prefixed UTF-8 string (length -1 for None)."""
    if value is None:
        out += _H.pack(-1)
        return
    raw = value.encode()
    out += _H.pack(len(raw))
    out += raw


def put_bytes(out: bytearray, value: bytes) -> None:
    """Append int32-length-prefixed bytes."""
    out += _I.pack(len(value))
    out += value


class Reader:
    """Reads the primitives back from one record key or value, front to back."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, s: struct.Struct) -> int:
        (v,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return int(v)

    def i8(self) -> int:
        return self._take(_B)

    def i16(self) -> int:
        return self._take(_H)

    def i32(self) -> int:
        return self._take(_I)

    def i64(self) -> int:
        return self._take(_Q)

    def nstr(self) -> str | None:
        n = self.i16()
        if n < 0:
            return None
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode()

    def str(self) -> str:
        """A string where a null one reads as empty."""
        return self.nstr() or ""

    def bytes(self) -> bytes:
        n = self.i32()
        if n < 0:
            return b""
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(raw)
