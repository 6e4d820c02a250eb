"""A fake clock and a small in-memory log for driving the group coordinator step by step."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from broker.config import BrokerConfig
from broker.errors import ErrorCode, KafkaError
from broker.log.interface import AppendInfo, TopicInfo
from broker.log.records import iter_batches, patch_base_offset


class FakeClock:
    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class MemoryPartition:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.batches: list[tuple[int, int, bytes]] = []  # (base, last, bytes)
        self.end = 0

    @property
    def log_start_offset(self) -> int:
        return 0

    @property
    def log_end_offset(self) -> int:
        return self.end

    @property
    def last_stable_offset(self) -> int:
        return self.end

    @property
    def size_bytes(self) -> int:
        return sum(len(b) for _, _, b in self.batches)

    def append(self, records: bytes, *, now_ms: int) -> AppendInfo:
        buf = bytearray(records)
        base = self.end
        count = 0
        for pos, h in list(iter_batches(bytes(buf))):
            patch_base_offset(buf, pos, self.end)
            raw = bytes(buf[pos : pos + h.size])
            self.batches.append((self.end, self.end + h.last_offset_delta, raw))
            self.end += h.last_offset_delta + 1
            count += h.record_count
        return AppendInfo(base, self.end - 1, -1, 0, count)

    def read(self, offset: int, max_bytes: int, *, upper_bound: int | None = None) -> bytes:
        if offset < 0 or offset > self.end:
            raise KafkaError(ErrorCode.offset_out_of_range)
        return b"".join(b for _, last, b in self.batches if last >= offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        return None

    def flush(self) -> None:
        pass


class MemoryLogs:
    on_append: Callable[[str, int], None] | None = None

    def __init__(self) -> None:
        self._topics: dict[str, TopicInfo] = {}
        self._parts: dict[tuple[str, int], MemoryPartition] = {}

    def topics(self) -> Mapping[str, TopicInfo]:
        return self._topics

    def create_topic(
        self,
        name: str,
        num_partitions: int,
        configs: Mapping[str, str],
        *,
        validate_only: bool = False,
    ) -> TopicInfo:
        info = TopicInfo(name, num_partitions, b"\0" * 16, dict(configs))
        self._topics[name] = info
        for p in range(num_partitions):
            self._parts[(name, p)] = MemoryPartition(name, p)
        return info

    def partition(self, topic: str, partition: int) -> MemoryPartition:
        try:
            return self._parts[(topic, partition)]
        except KeyError:
            raise KafkaError(ErrorCode.unknown_topic_or_partition) from None

    def delete_topic(self, name: str) -> None: ...
    def create_partitions(self, name: str, total: int, *, validate_only: bool = False) -> None: ...
    def describe_configs(self, topic: str) -> list[Any]:
        return []

    def alter_configs(
        self,
        topic: str,
        set_: Mapping[str, str],
        delete: Iterable[str] = (),
        *,
        replace_all: bool = False,
        validate_only: bool = False,
    ) -> None: ...
    def maintain(self, now_ms: int) -> None: ...
    def flush_all(self) -> None: ...
    def close(self) -> None: ...


def make_config(**overrides: Any) -> BrokerConfig:
    values = {
        "group.initial.rebalance.delay.ms": "3000",
        "offsets.topic.num.partitions": "3",
    }
    values.update({k.replace("_", "."): str(v) for k, v in overrides.items()})
    return BrokerConfig(values)
