"""The ``RecordCollector`` seam between tasks and a producer, and an in-memory one.

Tasks hand encoded records to a collector in batches: ``send(topic, records, partition)``,
where a record is ``(key, value, timestamp_ms, headers)``. ``flush()`` makes everything sent so
far durable; ``offsets()`` then tells the last offset written per ``(topic, partition)``, which is
what a store's changelog checkpoint needs. The worker's collector wraps an aiokafka producer; the
test driver uses :class:`InMemoryCollector`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.partitioner import default_partition

EncodedRecord = tuple[bytes | None, bytes | None, int, Any]
"""``(key, value, timestamp_ms, headers)`` as handed to a collector."""


class RecordCollector(Protocol):
    def send(
        self, topic: str, records: Sequence[EncodedRecord], partition: int | None = None
    ) -> None:
        """Queue ``records`` for ``topic``; ``partition=None`` partitions by key (murmur2)."""

    def flush(self) -> None:
        """Block until everything sent is acknowledged."""

    def offsets(self) -> Mapping[tuple[str, int], int]:
        """The last offset written per ``(topic, partition)`` (valid after ``flush``)."""


@dataclass(slots=True)
class ProducedRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Any
    partition: int
    offset: int


class InMemoryCollector:
    """Keeps every produced record per topic, with offsets, like a broker would."""

    def __init__(self, partitions: Callable[[str], int] | None = None) -> None:
        self._partitions = partitions or (lambda topic: 1)
        self.records: dict[str, list[ProducedRecord]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._last: dict[tuple[str, int], int] = {}
        self._listeners: list[Callable[[str, list[ProducedRecord]], None]] = []

    def subscribe(self, listener: Callable[[str, list[ProducedRecord]], None]) -> None:
        """Call ``listener(topic, records)`` on every send (the driver routes internal topics)."""
        self._listeners.append(listener)

    def send(
        self, topic: str, records: Sequence[EncodedRecord], partition: int | None = None
    ) -> None:
        log = self.records.setdefault(topic, [])
        n = self._partitions(topic)
        produced = []
        for key, value, ts, headers in records:
            p = partition if partition is not None else default_partition(key, n)
            tp = (topic, p)
            offset = self._next.get(tp, 0)
            self._next[tp] = offset + 1
            self._last[tp] = offset
            rec = ProducedRecord(topic, key, value, ts, headers, p, offset)
            log.append(rec)
            produced.append(rec)
        for listener in self._listeners:
            listener(topic, produced)

    def flush(self) -> None:
        return None

    def offsets(self) -> Mapping[tuple[str, int], int]:
        return dict(self._last)


class NullCollector:
    """Counts records and drops them (benchmarks)."""

    def __init__(self) -> None:
        self.count = 0

    def send(
        self, topic: str, records: Sequence[EncodedRecord], partition: int | None = None
    ) -> None:
        self.count += len(records)

    def flush(self) -> None:
        return None

    def offsets(self) -> Mapping[tuple[str, int], int]:
        return {}
