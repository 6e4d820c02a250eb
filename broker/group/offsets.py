"""Committed offsets and group metadata in the compacted topic ``__consumer_offsets``.

The records are laid out like Kafka's, so the topic reads the same to anyone who knows
Kafka's (keys decide compaction; a record with no value is a tombstone):

* offset commit: key ``int16 1 | string group | string topic | int32 partition``, value
  ``int16 3 | int64 offset | int32 leader epoch | string metadata | int64 commit time``;
* group metadata: key ``int16 2 | string group``, value ``int16 3 | string protocol type
  | int32 generation | nullable string protocol | nullable string leader | int64 state
  time | members[member id, nullable instance id, client id, client host, int32 rebalance
  timeout, int32 session timeout, bytes subscription, bytes assignment]``.

A group lives in partition ``abs(java_hash(group)) % offsets.topic.num.partitions``, as in
Kafka. The broker writes with the log's batch writer and reads the whole topic back at
start, so offsets and groups survive a restart.

>>> key = offset_key("g", "t", 3)
>>> decode_key(key)
('offset', 'g', 't', 3)
>>> decode_offset_value(offset_value(OffsetEntry(42, -1, "meta", 1000)))
OffsetEntry(offset=42, leader_epoch=-1, metadata='meta', commit_timestamp_ms=1000)
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from broker.errors import ErrorCode, KafkaError
from broker.group.state import Group, GroupState, Member, OffsetEntry
from broker.internal_topic import (
    Reader,
    coordinator_partition,
    java_string_hash,
    put_bytes,
    put_str,
    read_keyed,
)
from broker.log.interface import LogManager
from broker.log.records import Record, build_batch

__all__ = [
    "OFFSETS_TOPIC",
    "OffsetStore",
    "decode_group_value",
    "decode_key",
    "decode_offset_value",
    "group_key",
    "group_value",
    "java_string_hash",
    "offset_key",
    "offset_value",
]

OFFSETS_TOPIC = "__consumer_offsets"

_H = struct.Struct(">h")
_I = struct.Struct(">i")
_Q = struct.Struct(">q")


# -- keys and values -------------------------------------------------------------------


def offset_key(group: str, topic: str, partition: int) -> bytes:
    out = bytearray(_H.pack(1))
    put_str(out, group)
    put_str(out, topic)
    out += _I.pack(partition)
    return bytes(out)


def group_key(group: str) -> bytes:
    out = bytearray(_H.pack(2))
    put_str(out, group)
    return bytes(out)


def decode_key(key: bytes) -> tuple[str, str, str, int]:
    """``("offset", group, topic, partition)`` or ``("group", group, "", -1)``."""
    r = Reader(key)
    version = r.i16()
    if version in (0, 1):
        group, topic, partition = r.str(), r.str(), r.i32()
        return "offset", group, topic, partition
    if version == 2:
        return "group", r.str(), "", -1
    raise ValueError(f"unknown {OFFSETS_TOPIC} key version {version}")


def offset_value(entry: OffsetEntry) -> bytes:
    out = bytearray(_H.pack(3))
    out += _Q.pack(entry.offset)
    out += _I.pack(entry.leader_epoch)
    put_str(out, entry.metadata)
    out += _Q.pack(entry.commit_timestamp_ms)
    return bytes(out)


def decode_offset_value(value: bytes) -> OffsetEntry:
    r = Reader(value)
    version = r.i16()
    offset = r.i64()
    epoch = r.i32() if version >= 3 else -1
    metadata = r.str()
    commit_ts = r.i64()
    return OffsetEntry(offset, epoch, metadata, commit_ts)


def group_value(group: Group) -> bytes:
    out = bytearray(_H.pack(3))
    put_str(out, group.protocol_type or "")
    out += _I.pack(group.generation_id)
    put_str(out, group.protocol_name)
    put_str(out, group.leader_id)
    out += _Q.pack(group.state_timestamp_ms)
    members = list(group.members.values())
    out += _I.pack(len(members))
    for m in members:
        put_str(out, m.member_id)
        put_str(out, m.group_instance_id)
        put_str(out, m.client_id)
        put_str(out, m.client_host)
        out += _I.pack(m.rebalance_timeout_ms)
        out += _I.pack(m.session_timeout_ms)
        put_bytes(out, m.metadata_for(group.protocol_name or ""))
        put_bytes(out, m.assignment)
    return bytes(out)


def decode_group_value(group_id: str, value: bytes, now_ms: int) -> Group:
    """A group as persisted; members (if any) are Stable and must heartbeat from ``now_ms``."""
    r = Reader(value)
    r.i16()
    group = Group(group_id)
    group.protocol_type = r.str() or None
    group.generation_id = r.i32()
    group.protocol_name = r.nstr()
    group.leader_id = r.nstr()
    group.state_timestamp_ms = r.i64()
    for _ in range(r.i32()):
        member_id, instance_id = r.str(), r.nstr()
        client_id, client_host = r.str(), r.str()
        rebalance_timeout, session_timeout = r.i32(), r.i32()
        subscription, assignment = r.bytes(), r.bytes()
        group.members[member_id] = Member(
            member_id=member_id,
            group_instance_id=instance_id,
            client_id=client_id,
            client_host=client_host,
            session_timeout_ms=session_timeout,
            rebalance_timeout_ms=rebalance_timeout,
            protocol_type=group.protocol_type or "",
            protocols=[(group.protocol_name or "", subscription)],
            assignment=assignment,
            last_heartbeat_ms=now_ms,
        )
        if instance_id is not None:
            group.static_members[instance_id] = member_id
    group.state = GroupState.STABLE if group.members else GroupState.EMPTY
    return group


# -- the store -------------------------------------------------------------------------


class OffsetStore:
    """Reads and writes ``__consumer_offsets`` through the broker's :class:`LogManager`."""

    def __init__(self, logs: LogManager, num_partitions: int, topic_configs: dict[str, str]):
        self.logs = logs
        self.num_partitions = num_partitions
        self.topic_configs = topic_configs

    def ensure_topic(self) -> None:
        """Create the topic when missing; an existing one keeps its partition count."""
        info = self.logs.topics().get(OFFSETS_TOPIC)
        if info is None:
            self.logs.create_topic(OFFSETS_TOPIC, self.num_partitions, self.topic_configs)
        else:
            self.num_partitions = info.partitions

    def partition_for(self, group_id: str) -> int:
        return coordinator_partition(group_id, self.num_partitions)

    def append(
        self, group_id: str, records: Iterable[tuple[bytes, bytes | None]], now_ms: int
    ) -> None:
        """Append (key, value) records of one group as one batch; value None is a tombstone."""
        batch = [
            Record(offset=i, timestamp=now_ms, key=k, value=v) for i, (k, v) in enumerate(records)
        ]
        if not batch:
            return
        log = self.logs.partition(OFFSETS_TOPIC, self.partition_for(group_id))
        try:
            log.append(build_batch(batch, base_offset=0), now_ms=now_ms)
        except KafkaError as exc:
            raise KafkaError(
                ErrorCode.coordinator_not_available,
                f"cannot write {OFFSETS_TOPIC}: {exc.message}",
            ) from exc

    def flush(self) -> None:
        for p in range(self.num_partitions):
            self.logs.partition(OFFSETS_TOPIC, p).flush()

    def load(self, now_ms: int) -> dict[str, Group]:
        """Replay the whole topic: the last record per key wins, tombstones delete."""
        offsets: dict[tuple[str, str, int], OffsetEntry] = {}
        groups: dict[str, bytes] = {}
        for key, value in read_keyed(self.logs, OFFSETS_TOPIC, self.num_partitions):
            try:
                kind, group_id, topic, partition = decode_key(key)
            except (ValueError, struct.error):
                continue
            if kind == "offset":
                if value is None:
                    offsets.pop((group_id, topic, partition), None)
                else:
                    offsets[(group_id, topic, partition)] = decode_offset_value(value)
            elif value is None:
                groups.pop(group_id, None)
            else:
                groups[group_id] = value
        result = {gid: decode_group_value(gid, raw, now_ms) for gid, raw in groups.items()}
        for (group_id, topic, partition), entry in offsets.items():
            group = result.get(group_id)
            if group is None:
                group = result[group_id] = Group(group_id, state_timestamp_ms=now_ms)
            group.offsets[(topic, partition)] = entry
        return result
