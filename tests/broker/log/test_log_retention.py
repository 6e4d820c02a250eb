"""Delete-policy retention by time, by size and below the log start offset."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from broker.errors import ErrorCode, KafkaError
from broker.log.partition import Partition
from broker.log.records import Record
from broker.log.retention import apply_retention

Batch = Callable[..., bytes]
Open = Callable[..., Partition]
RecordsOf = Callable[[bytes], list[Record]]


def fill(part: Partition, batch: Batch, timestamps: list[int]) -> None:
    for i, ts in enumerate(timestamps):
        part.append(batch([(b"k%d" % i, b"v%d" % i, ts)]), now_ms=ts)


def keys(part: Partition, records_of: RecordsOf) -> list[bytes | None]:
    return [r.key for r in records_of(part.read(part.log_start_offset, 1 << 20))]


def seg_bytes(batch: Batch, n: int) -> str:
    return str(len(batch([(b"k0", b"v0", 0)])) * n)


def test_retention_by_time(open_part: Open, batch: Batch, records_of: RecordsOf) -> None:
    part = open_part(segment_bytes=seg_bytes(batch, 2), retention_ms="1000")
    fill(part, batch, [100, 200, 300, 400, 1500, 1600])  # segments [0,1] [2,3] [4,5]
    assert [s.base_offset for s in part.segments] == [0, 2, 4]
    assert apply_retention(part, now_ms=1300) == 1  # segment 0 max ts 200: 1100 old
    assert part.log_start_offset == 2
    assert keys(part, records_of) == [b"k2", b"k3", b"k4", b"k5"]
    with pytest.raises(KafkaError) as e:
        part.read(1, 100)
    assert e.value.code == ErrorCode.offset_out_of_range
    assert apply_retention(part, now_ms=1400) == 0  # exactly retention.ms old: kept
    assert apply_retention(part, now_ms=1401) == 1
    assert part.log_start_offset == 4
    # the active segment goes too once it is all expired: rolled first, never half-deleted
    assert apply_retention(part, now_ms=2601) == 1
    assert part.log_start_offset == part.log_end_offset == 6
    assert part.read(6, 100) == b""
    assert part.append(batch([(b"n", b"n", 3000)]), now_ms=3000).base_offset == 6


def test_retention_by_size(open_part: Open, batch: Batch, records_of: RecordsOf) -> None:
    one = int(seg_bytes(batch, 1))
    part = open_part(segment_bytes=str(one * 2), retention_bytes=str(one * 3))
    fill(part, batch, [1, 2, 3, 4, 5, 6, 7])  # segments [0,1] [2,3] [4,5] [6]
    assert apply_retention(part, now_ms=10) == 2
    assert part.log_start_offset == 4
    assert keys(part, records_of) == [b"k4", b"k5", b"k6"]
    assert part.size_bytes == one * 3


def test_minus_one_disables(open_part: Open, batch: Batch) -> None:
    part = open_part(segment_bytes=seg_bytes(batch, 1), retention_ms="-1", retention_bytes="-1")
    fill(part, batch, [1, 2, 3])
    assert apply_retention(part, now_ms=10**12) == 0
    assert part.log_start_offset == 0


def test_compact_policy_keeps_old_segments(open_part: Open, batch: Batch) -> None:
    part = open_part(segment_bytes=seg_bytes(batch, 1), retention_ms="1", cleanup_policy="compact")
    fill(part, batch, [1, 2, 3])
    assert apply_retention(part, now_ms=10**12) == 0


def test_delete_records_then_segments_below_start(
    open_part: Open, batch: Batch, records_of: RecordsOf
) -> None:
    part = open_part(segment_bytes=seg_bytes(batch, 2), retention_ms="-1")
    fill(part, batch, [1, 2, 3, 4, 5])
    assert part.delete_records_before(3) == 3
    assert keys(part, records_of) == [b"k3", b"k4"]
    # a read of the batch holding the start offset still begins at the start offset's batch
    assert records_of(part.read(3, 1))[0].offset == 3
    assert apply_retention(part, now_ms=10) == 1  # segment [0,1] lies wholly below 3
    assert [s.base_offset for s in part.segments] == [2, 4]
    assert part.log_start_offset == 3
    assert part.offset_for_timestamp(0) == (3, 4)
    with pytest.raises(KafkaError) as e:
        part.delete_records_before(99)
    assert e.value.code == ErrorCode.offset_out_of_range
