"""Transaction metadata and its records in the compacted topic ``__transaction_state``.

One record per transactional id, the last one winning (the topic is compacted):

* key ``int16 0 | string transactional id``;
* value ``int16 0 | int64 producer id | int16 epoch | int32 timeout ms | int8 state
  | int64 start ms | int64 update ms | partitions[string topic, int32[] partitions]
  | pending offsets[string group, entries[string topic, int32 partition, int64 offset,
  int32 leader epoch, string metadata]]``.

Unlike Kafka, the offsets a transaction commits (TxnOffsetCommit) travel in the
transaction's own record until the commit, so an open transaction's offsets survive a
broker restart without transactional records in ``__consumer_offsets``.

>>> m = TxnMetadata("t", 5, 0, 60000, TxnState.ONGOING, partitions={("a", 0)})
>>> decode_value("t", encode_value(m)).partitions
{('a', 0)}
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from broker.internal_topic import Reader, put_str

__all__ = [
    "TXN_TOPIC",
    "PendingOffset",
    "TxnMetadata",
    "TxnState",
    "decode_key",
    "decode_value",
    "encode_key",
    "encode_value",
]

TXN_TOPIC = "__transaction_state"

_H = struct.Struct(">h")
_I = struct.Struct(">i")
_Q = struct.Struct(">q")
_B = struct.Struct(">b")


class TxnState(enum.IntEnum):
    """Kafka's transaction states (the names DescribeTransactions reports)."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6

    @property
    def kafka_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


@dataclass(frozen=True, slots=True)
class PendingOffset:
    offset: int
    leader_epoch: int
    metadata: str


@dataclass(slots=True)
class TxnMetadata:
    """The coordinator's view of one transactional id."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    start_ms: int = -1
    update_ms: int = -1
    partitions: set[tuple[str, int]] = field(default_factory=set)
    offsets: dict[str, dict[tuple[str, int], PendingOffset]] = field(default_factory=dict)
    """group id -> (topic, partition) -> offset committed inside the open transaction."""


def encode_key(transactional_id: str) -> bytes:
    out = bytearray(_H.pack(0))
    put_str(out, transactional_id)
    return bytes(out)


def decode_key(key: bytes) -> str:
    r = Reader(key)
    version = r.i16()
    if version != 0:
        raise ValueError(f"unknown {TXN_TOPIC} key version {version}")
    return r.str()


def encode_value(m: TxnMetadata) -> bytes:
    out = bytearray(_H.pack(0))
    out += _Q.pack(m.producer_id)
    out += _H.pack(m.producer_epoch)
    out += _I.pack(m.timeout_ms)
    out += _B.pack(int(m.state))
    out += _Q.pack(m.start_ms)
    out += _Q.pack(m.update_ms)
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(m.partitions):
        by_topic.setdefault(topic, []).append(partition)
    out += _I.pack(len(by_topic))
    for topic, parts in by_topic.items():
        put_str(out, topic)
        out += _I.pack(len(parts))
        for p in parts:
            out += _I.pack(p)
    out += _I.pack(len(m.offsets))
    for group, entries in m.offsets.items():
        put_str(out, group)
        out += _I.pack(len(entries))
        for (topic, partition), e in entries.items():
            put_str(out, topic)
            out += _I.pack(partition)
            out += _Q.pack(e.offset)
            out += _I.pack(e.leader_epoch)
            put_str(out, e.metadata)
    return bytes(out)


def decode_value(transactional_id: str, value: bytes) -> TxnMetadata:
    r = Reader(value)
    r.i16()
    m = TxnMetadata(
        transactional_id,
        producer_id=r.i64(),
        producer_epoch=r.i16(),
        timeout_ms=r.i32(),
        state=TxnState(r.i8()),
        start_ms=r.i64(),
        update_ms=r.i64(),
    )
    for _ in range(r.i32()):
        topic = r.str()
        for _p in range(r.i32()):
            m.partitions.add((topic, r.i32()))
    for _ in range(r.i32()):
        group = r.str()
        entries = m.offsets.setdefault(group, {})
        for _e in range(r.i32()):
            topic = r.str()
            partition = r.i32()
            entries[(topic, partition)] = PendingOffset(r.i64(), r.i32(), r.str())
    return m
