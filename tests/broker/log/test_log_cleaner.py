"""Log compaction: latest value per key, tombstones, offsets kept, triggers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from broker.errors import ErrorCode, KafkaError
from broker.log.cleaner import clean, should_clean
from broker.log.compression import GZIP, ZSTD
from broker.log.partition import Partition
from broker.log.records import Record, iter_batches, parse_header
from broker.log.retention import apply_retention

Batch = Callable[..., bytes]
Open = Callable[..., Partition]
RecordsOf = Callable[[bytes], list[Record]]
DAY = 86_400_000


def view(part: Partition, records_of: RecordsOf) -> list[tuple[int, bytes | None, bytes | None]]:
    data = part.read(part.log_start_offset, 1 << 20)
    return [(r.offset, r.key, r.value) for r in records_of(data)]


def two_per_segment(open_part: Open, batch: Batch, **cfg: str) -> Partition:
    size = len(batch([(b"a", b"1", 1)]))
    return open_part(segment_bytes=str(size * 2), cleanup_policy="compact", **cfg)


def load(
    part: Partition, batch: Batch, items: list[tuple[bytes, bytes | None]], ts: int = 1
) -> None:
    for k, v in items:
        part.append(batch([(k, v, ts)]), now_ms=ts)


def test_compaction_keeps_latest_and_tombstones(
    open_part: Open, batch: Batch, records_of: RecordsOf
) -> None:
    part = two_per_segment(open_part, batch)
    load(part, batch, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"c", b"1"),
                       (b"b", None), (b"d", b"1"), (b"a", b"3")])  # fmt: skip
    assert [s.base_offset for s in part.segments] == [0, 2, 4, 6]
    assert should_clean(part, now_ms=10)
    result = clean(part, now_ms=1000)
    assert result.records_removed == 2
    # a=2 stays: a=3 is in the active segment, which is never cleaned
    assert view(part, records_of) == [
        (2, b"a", b"2"), (3, b"c", b"1"), (4, b"b", None), (5, b"d", b"1"), (6, b"a", b"3"),
    ]  # fmt: skip
    assert part.log_start_offset == 0 and part.log_end_offset == 7
    assert records_of(part.read(0, 1))[0].offset == 2  # reads skip the emptied range
    assert records_of(part.read(1, 1))[0].offset == 2
    assert not should_clean(part, now_ms=2000)
    # the tombstone survives delete.retention.ms after its first cleaning, then goes
    clean(part, now_ms=1000 + DAY)
    assert (4, b"b", None) in view(part, records_of)
    assert should_clean(part, now_ms=1001 + DAY)
    clean(part, now_ms=1001 + DAY)
    assert view(part, records_of) == [
        (2, b"a", b"2"), (3, b"c", b"1"), (5, b"d", b"1"), (6, b"a", b"3"),
    ]  # fmt: skip
    assert part.append(batch([(b"e", b"1", 5)]), now_ms=5).base_offset == 7


def test_second_pass_uses_new_dirty_section(
    open_part: Open, batch: Batch, records_of: RecordsOf
) -> None:
    part = two_per_segment(open_part, batch)
    load(part, batch, [(b"a", b"1"), (b"b", b"1"), (b"c", b"1")])
    clean(part, now_ms=10)
    assert part.cleaner_offset == 2
    load(part, batch, [(b"a", b"2"), (b"x", b"1"), (b"y", b"1")])
    assert should_clean(part, now_ms=20)
    clean(part, now_ms=20)
    assert view(part, records_of) == [
        (1, b"b", b"1"), (2, b"c", b"1"), (3, b"a", b"2"), (4, b"x", b"1"), (5, b"y", b"1"),
    ]  # fmt: skip


@pytest.mark.parametrize("codec", [GZIP, ZSTD])
def test_compressed_batch_becomes_sparse(
    open_part: Open, batch: Batch, records_of: RecordsOf, codec: int
) -> None:
    part = open_part(cleanup_policy="compact")
    part.append(batch([(b"x", b"1", 1), (b"y", b"1", 2), (b"x", b"2", 3)], codec), now_ms=3)
    part.roll()
    part.append(batch([(b"z", b"1", 4)]), now_ms=4)
    clean(part, now_ms=10)
    data = part.read(0, 1 << 20)
    headers = [h for _p, h in iter_batches(data)]
    assert (headers[0].base_offset, headers[0].last_offset, headers[0].record_count) == (0, 2, 2)
    assert headers[0].compression == codec
    assert view(part, records_of) == [(1, b"y", b"1"), (2, b"x", b"2"), (3, b"z", b"1")]
    assert part.offset_for_timestamp(0) == (1, 2)


def test_min_compaction_lag(open_part: Open, batch: Batch, records_of: RecordsOf) -> None:
    part = two_per_segment(open_part, batch, min_compaction_lag_ms="1000")
    load(part, batch, [(b"a", b"1"), (b"a", b"2")], ts=100)
    load(part, batch, [(b"a", b"3"), (b"b", b"1")], ts=900)
    load(part, batch, [(b"c", b"1")], ts=950)
    clean(part, now_ms=1500)  # only the first segment is 1000 ms old
    assert view(part, records_of)[:3] == [(1, b"a", b"2"), (2, b"a", b"3"), (3, b"b", b"1")]
    clean(part, now_ms=1950)
    assert view(part, records_of) == [(2, b"a", b"3"), (3, b"b", b"1"), (4, b"c", b"1")]


def test_compact_delete(open_part: Open, batch: Batch, records_of: RecordsOf) -> None:
    size = len(batch([(b"a", b"1", 1)]))
    part = open_part(segment_bytes=str(size * 2), cleanup_policy="compact,delete",
                     retention_ms="1000")  # fmt: skip
    load(part, batch, [(b"a", b"1"), (b"b", b"1")], ts=100)
    load(part, batch, [(b"a", b"2"), (b"c", b"1")], ts=2000)
    load(part, batch, [(b"d", b"1")], ts=2000)
    assert apply_retention(part, now_ms=2500) == 1
    assert part.log_start_offset == 2
    clean(part, now_ms=2500)
    assert view(part, records_of) == [(2, b"a", b"2"), (3, b"c", b"1"), (4, b"d", b"1")]


def test_keyless_record_refused(open_part: Open, batch: Batch) -> None:
    part = open_part(cleanup_policy="compact")
    for codec in (0, GZIP):
        with pytest.raises(KafkaError) as e:
            part.append(batch([(b"k", b"v", 1), (None, b"v", 1)], codec), now_ms=1)
        assert e.value.code == ErrorCode(87)
        assert "t" in e.value.message and "key" in e.value.message
    assert part.log_end_offset == 0


def test_compaction_survives_restart(open_part: Open, batch: Batch, records_of: RecordsOf) -> None:
    part = two_per_segment(open_part, batch)
    load(part, batch, [(b"a", b"1"), (b"a", b"2"), (b"b", None), (b"c", b"1"), (b"d", b"1")])
    clean(part, now_ms=50)
    before = view(part, records_of)
    part.close()
    part = two_per_segment(open_part, batch)
    assert view(part, records_of) == before
    assert before == [(1, b"a", b"2"), (2, b"b", None), (3, b"c", b"1"), (4, b"d", b"1")]
    assert part.cleaner_offset == 4 and part.cleaned_ms == {2: 50}
    assert parse_header(part.read(2, 1)).base_offset == 2


def test_compaction_while_appending(open_part: Open, batch: Batch, records_of: RecordsOf) -> None:
    import threading

    size = len(batch([(b"k00", b"0000", 1)]))
    part = open_part(segment_bytes=str(size * 20), cleanup_policy="compact")
    done = threading.Event()

    def writer() -> None:
        for i in range(1500):
            part.append(batch([(b"k%02d" % (i % 50), b"%04d" % i, i)]), now_ms=i)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    while not done.is_set():
        clean(part, now_ms=10**9)
        part.flush()
        part.read(part.log_start_offset, 1 << 16)
    t.join()
    part.roll()
    clean(part, now_ms=10**9)
    got = [(r.offset, r.key, r.value) for r in records_of(part.read(0, 1 << 24))]
    assert [o for o, _k, _v in got] == sorted({o for o, _k, _v in got})
    latest = {k: v for _o, k, v in got}
    assert latest == {b"k%02d" % j: b"%04d" % (1450 + j) for j in range(50)}
    assert len(got) == 50
