"""The storage contract between the broker's handlers and its log.

Handlers code against these protocols; :mod:`broker.log` implements them with Kafka-like
segment files. The log is synchronous and knows nothing of asyncio or sockets: the
network layer decides what runs in a thread (fsync) and what waits (fetch long-poll,
through :attr:`LogManager.on_append`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AppendInfo:
    """Where an appended set of batches landed."""

    base_offset: int
    last_offset: int
    log_append_time_ms: int
    """The broker's time when the topic uses LogAppendTime, else -1."""
    log_start_offset: int
    record_count: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    topic_id: bytes
    """16 bytes (a UUID), stable across restarts."""
    configs: Mapping[str, str]
    """Topic-level overrides only (what was set at create or alter time)."""
    internal: bool = False


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str | None
    is_default: bool
    read_only: bool = False
    sensitive: bool = False
    source: int = 5
    """DescribeConfigs source: 1 topic override, 4 static broker config, 5 default."""


class PartitionLog(Protocol):
    topic: str
    partition: int

    @property
    def log_start_offset(self) -> int: ...

    @property
    def log_end_offset(self) -> int:
        """The next offset to assign; on one node also the high watermark."""

    @property
    def last_stable_offset(self) -> int:
        """Offsets below this hold no open transaction (equals the end offset without one)."""

    @property
    def size_bytes(self) -> int: ...

    def append(self, records: bytes, *, now_ms: int) -> AppendInfo:
        """Validate and append one or more RecordBatch v2 as received (base offsets patched).

        Raises ``KafkaError`` with CORRUPT_MESSAGE, MESSAGE_TOO_LARGE,
        INVALID_RECORD (87, keyless record on a compacted topic), UNSUPPORTED_FOR_MESSAGE_FORMAT.
        """

    def read(self, offset: int, max_bytes: int, *, upper_bound: int | None = None) -> bytes:
        """Whole batches from the one holding ``offset``; at least one batch when any exists.

        Stops before ``max_bytes`` after the first batch, and before any batch whose base
        offset is at or above ``upper_bound`` (the LSO for read_committed). Raises
        ``KafkaError(OFFSET_OUT_OF_RANGE)`` below the start offset or above the end offset.
        """

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record with timestamp >= ``timestamp_ms``."""

    def flush(self) -> None:
        """fsync everything appended so far."""


class LogManager(Protocol):
    on_append: Callable[[str, int], None] | None
    """Called with (topic, partition) after every successful append."""

    def topics(self) -> Mapping[str, TopicInfo]: ...

    def create_topic(
        self,
        name: str,
        num_partitions: int,
        configs: Mapping[str, str],
        *,
        validate_only: bool = False,
    ) -> TopicInfo: ...

    def delete_topic(self, name: str) -> None: ...

    def create_partitions(self, name: str, total: int, *, validate_only: bool = False) -> None:
        """Grow a topic to ``total`` partitions; a decrease raises INVALID_PARTITIONS."""

    def partition(self, topic: str, partition: int) -> PartitionLog:
        """Raises ``KafkaError(UNKNOWN_TOPIC_OR_PARTITION)`` when absent."""

    def describe_configs(self, topic: str) -> list[ConfigEntry]:
        """Every topic config Kafka has, with its effective value and whether it is a default."""

    def alter_configs(
        self,
        topic: str,
        set_: Mapping[str, str],
        delete: Iterable[str] = (),
        *,
        replace_all: bool = False,
        validate_only: bool = False,
    ) -> None:
        """AlterConfigs (``replace_all=True``) and IncrementalAlterConfigs semantics."""

    def maintain(self, now_ms: int) -> None:
        """Time-driven work: segment roll by time, flush.ms, retention, compaction."""

    def flush_all(self) -> None: ...

    def close(self) -> None: ...
