"""Appends, segment rolls, indexes, reads and timestamp lookups of one partition."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from broker.errors import ErrorCode, KafkaError
from broker.log.partition import Partition
from broker.log.records import Record, iter_batches, parse_header

Batch = Callable[..., bytes]
Open = Callable[..., Partition]
RecordsOf = Callable[[bytes], list[Record]]


def fill(part: Partition, batch: Batch, n: int, per: int = 3, ts0: int = 1000) -> None:
    """n batches of ``per`` records; record i of the log has key k<i>, timestamp ts0+i."""
    for b in range(n):
        first = b * per
        items = [(b"k%d" % (first + i), b"v%d" % (first + i), ts0 + first + i) for i in range(per)]
        part.append(batch(items), now_ms=ts0 + first)


def test_append_assigns_offsets(open_part: Open, batch: Batch) -> None:
    part = open_part()
    one = batch([(b"a", b"1", 10), (b"b", b"2", 11)])
    info = part.append(one + one, now_ms=50)
    assert (info.base_offset, info.last_offset, info.record_count) == (0, 3, 4)
    assert info.log_append_time_ms == -1 and info.log_start_offset == 0
    info = part.append(one, now_ms=60)
    assert (info.base_offset, info.last_offset) == (4, 5)
    assert part.log_end_offset == part.last_stable_offset == 6
    data = part.read(0, 1 << 20)
    assert [parse_header(data, p).base_offset for p, _ in iter_batches(data)] == [0, 2, 4]
    assert part.size_bytes == 3 * len(one)


def test_log_append_time(open_part: Open, batch: Batch, records_of: RecordsOf) -> None:
    part = open_part(message_timestamp_type="LogAppendTime")
    info = part.append(batch([(b"a", b"1", 10)]), now_ms=777)
    assert info.log_append_time_ms == 777
    h = parse_header(part.read(0, 1000))
    assert h.log_append_time and h.max_timestamp == 777
    assert part.offset_for_timestamp(700) == (0, 777)


def test_bad_batches_are_refused(open_part: Open, batch: Batch) -> None:
    part = open_part(max_message_bytes="200")
    good = batch([(b"a", b"1", 10)])
    corrupt = bytearray(good)
    corrupt[-1] ^= 1
    with pytest.raises(KafkaError) as e:
        part.append(bytes(corrupt), now_ms=0)
    assert e.value.code == ErrorCode.corrupt_message
    with pytest.raises(KafkaError) as e:
        part.append(batch([(b"a", b"x" * 300, 10)]), now_ms=0)
    assert e.value.code == ErrorCode.message_too_large
    with pytest.raises(KafkaError) as e:
        part.append(good[:-5], now_ms=0)
    assert e.value.code == ErrorCode.corrupt_message
    bad_magic = bytearray(good)
    bad_magic[16] = 0
    with pytest.raises(KafkaError) as e:
        part.append(bytes(bad_magic), now_ms=0)
    assert e.value.code == ErrorCode.unsupported_for_message_format
    # a refused request writes nothing, even when its first batch was fine
    with pytest.raises(KafkaError):
        part.append(good + bytes(corrupt), now_ms=0)
    assert part.log_end_offset == 0 and part.size_bytes == 0


def test_timestamp_difference(open_part: Open, batch: Batch) -> None:
    part = open_part(message_timestamp_difference_max_ms="1000")
    part.append(batch([(b"a", b"1", 10_000)]), now_ms=10_500)
    with pytest.raises(KafkaError) as e:
        part.append(batch([(b"a", b"1", 1)]), now_ms=10_500)
    assert e.value.code == ErrorCode.invalid_timestamp


def test_roll_by_size(open_part: Open, batch: Batch, tmp_path: Path) -> None:
    one = batch([(b"k", b"v" * 100, 1)])
    part = open_part(segment_bytes=str(len(one) * 3))
    for _ in range(10):
        part.append(one, now_ms=1)
    logs = sorted(p.name for p in (tmp_path / "t-0").glob("*.log"))
    assert logs == [f"{b:020d}.log" for b in (0, 3, 6, 9)]
    assert [s.base_offset for s in part.segments] == [0, 3, 6, 9]
    assert (tmp_path / "t-0" / "00000000000000000003.index").exists()
    assert (tmp_path / "t-0" / "00000000000000000003.timeindex").exists()


def test_roll_by_time(open_part: Open, batch: Batch) -> None:
    part = open_part(segment_ms="1000")
    part.append(batch([(b"k", b"v", 5000)]), now_ms=5000)
    part.append(batch([(b"k", b"v", 5500)]), now_ms=5900)
    assert len(part.segments) == 1
    part.append(batch([(b"k", b"v", 6500)]), now_ms=6500)
    assert [s.base_offset for s in part.segments] == [0, 2]
    part.maintain_roll(7000)  # not due yet
    assert len(part.segments) == 2
    part.maintain_roll(7600)  # due: an idle active segment is rolled by time too
    assert [s.base_offset for s in part.segments] == [0, 2, 3]
    part.maintain_roll(100_000)  # an empty active segment is never rolled
    assert len(part.segments) == 3


def test_read_inside_batch_returns_that_batch(open_part: Open, batch: Batch) -> None:
    part = open_part()
    fill(part, batch, 4, per=5)
    data = part.read(7, 1)
    ((_p, h),) = list(iter_batches(data))  # one whole batch although max_bytes is 1
    assert (h.base_offset, h.last_offset) == (5, 9)
    assert part.read(20, 100) == b""


def test_read_max_bytes_whole_batches(open_part: Open, batch: Batch) -> None:
    part = open_part()
    fill(part, batch, 10, per=1)
    size = part.size_bytes // 10
    data = part.read(0, size * 3 + size // 2)
    assert [h.base_offset for _p, h in iter_batches(data)] == [0, 1, 2]
    data = part.read(4, 1 << 30)
    assert [h.base_offset for _p, h in iter_batches(data)] == [4, 5, 6, 7, 8, 9]


def test_read_across_segments_and_sparse_index(open_part: Open, batch: Batch) -> None:
    part = open_part(segment_bytes="1000", index_interval_bytes="100")
    fill(part, batch, 60, per=2)
    assert len(part.segments) > 3
    assert len(part.segments[0].offset_index) > 2
    for offset in range(0, 120, 7):
        data = part.read(offset, 1)
        h = parse_header(data)
        assert h.base_offset <= offset <= h.last_offset
        assert len(data) == h.size
    data = part.read(0, 1 << 20)
    assert [h.base_offset for _p, h in iter_batches(data)] == list(range(0, 120, 2))
    data = part.read(10, 700)
    offs = [h.base_offset for _p, h in iter_batches(data)]
    assert offs[0] == 10 and offs == list(range(10, 10 + 2 * len(offs), 2))
    assert len(data) <= 700


def test_read_upper_bound(open_part: Open, batch: Batch) -> None:
    part = open_part()
    fill(part, batch, 5, per=2)
    data = part.read(0, 1 << 20, upper_bound=4)
    assert [h.base_offset for _p, h in iter_batches(data)] == [0, 2]
    data = part.read(0, 1 << 20, upper_bound=5)
    assert [h.base_offset for _p, h in iter_batches(data)] == [0, 2, 4]
    assert part.read(6, 1 << 20, upper_bound=6) == b""


def test_read_out_of_range(open_part: Open, batch: Batch) -> None:
    part = open_part()
    fill(part, batch, 1)
    assert part.read(3, 100) == b""
    for bad in (-1, 4):
        with pytest.raises(KafkaError) as e:
            part.read(bad, 100)
        assert e.value.code == ErrorCode.offset_out_of_range


def test_offset_for_timestamp(open_part: Open, batch: Batch) -> None:
    part = open_part(segment_bytes="600", index_interval_bytes="64")
    fill(part, batch, 20, per=3)  # record i has timestamp 1000 + i
    assert len(part.segments) > 2
    assert part.offset_for_timestamp(0) == (0, 1000)
    assert part.offset_for_timestamp(1000) == (0, 1000)
    assert part.offset_for_timestamp(1031) == (31, 1031)
    assert part.offset_for_timestamp(1059) == (59, 1059)
    assert part.offset_for_timestamp(1060) is None


def test_offset_for_timestamp_out_of_order(open_part: Open, batch: Batch) -> None:
    part = open_part()
    part.append(batch([(b"a", b"", 50), (b"b", b"", 10), (b"c", b"", 70)]), now_ms=0)
    part.append(batch([(b"d", b"", 60)]), now_ms=0)
    assert part.offset_for_timestamp(55) == (2, 70)
    assert part.offset_for_timestamp(20) == (0, 50)
    assert part.offset_for_timestamp(71) is None


def test_flush_messages_durable(open_part: Open, batch: Batch) -> None:
    part = open_part(flush_messages="1")
    part.append(batch([(b"a", b"1", 1)]), now_ms=1)
    assert not part.active.unflushed  # fsync'd before append returned


def test_flush_ms(open_part: Open, batch: Batch) -> None:
    part = open_part(flush_ms="1000")
    part.maintain_flush(0)
    part.append(batch([(b"a", b"1", 1)]), now_ms=100)
    part.maintain_flush(500)
    assert part.active.unflushed
    part.maintain_flush(1000)
    assert not part.active.unflushed


def test_default_does_not_fsync(open_part: Open, batch: Batch) -> None:
    part = open_part()
    part.append(batch([(b"a", b"1", 1)]), now_ms=1)
    assert part.active.unflushed
    part.flush()
    assert not part.active.unflushed


def test_notify_after_append(tmp_path: Path, batch: Batch) -> None:
    from broker.log.topic_config import TopicConfig

    seen: list[tuple[str, int]] = []
    part = Partition(
        tmp_path / "x-3", "x", 3, TopicConfig.resolve({}), notify=lambda t, p: seen.append((t, p))
    )
    part.append(batch([(b"a", b"1", 1)]), now_ms=1)
    with pytest.raises(KafkaError):
        part.append(b"junk", now_ms=1)
    assert seen == [("x", 3)]


def test_max_timestamp_entry(open_part: Open, batch: Batch) -> None:
    part = open_part(segment_bytes="300")
    assert part.max_timestamp_entry() is None
    part.append(batch([(b"a", b"", 50), (b"b", b"", 90), (b"c", b"", 70)]), now_ms=0)
    part.append(batch([(b"d", b"", 60)]), now_ms=0)
    part.append(batch([(b"e", b"", 80)]), now_ms=0)
    assert part.max_timestamp_entry() == (1, 90)


def test_group_commit_defers_durable_fsync(tmp_path: Path, batch: Batch) -> None:
    from broker.log import LogManager

    logs = LogManager([tmp_path], {})
    logs.create_topic("d", 1, {"flush.messages": "1"})
    part = logs.partition("d", 0)
    part.append(batch([(b"a", b"1", 1)]), now_ms=1)
    assert not part.active.unflushed
    logs.group_commit = True
    part.append(batch([(b"a", b"1", 1)]), now_ms=1)
    assert part.active.unflushed  # the caller's flush makes it durable
    part.flush()
    assert not part.active.unflushed
    logs.close()


def test_replaying_old_timestamps_does_not_roll_each_append(open_part: Open, batch: Batch) -> None:
    part = open_part(segment_ms="1000")
    for i in range(5):  # data from long ago, appended now
        part.append(batch([(b"k", b"v", 100 + i)]), now_ms=10_000_000)
    assert len(part.segments) == 1
