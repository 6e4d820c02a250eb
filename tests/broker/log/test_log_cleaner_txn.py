"""Transaction-aware compaction: aborted data goes, committed data compacts, open
transactions stay untouched, markers outlive their data by ``delete.retention.ms``, and
each producer's last batch survives so its state rebuilds after a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from broker.errors import KafkaError
from broker.log.cleaner import clean, should_clean
from broker.log.partition import ABORT_MARKER, CHECKPOINT_FILE, Partition, control_type
from broker.log.producer_state import SNAPSHOT_FILE
from broker.log.records import BatchHeader, Record, build_batch, decode_records, iter_batches
from broker.log.txn_index import TXN_INDEX_FILE

Open = Callable[..., Partition]
DAY = 86_400_000
View = list[tuple[int, bytes | None, bytes | None]]


def pbatch(pid: int, epoch: int, seq: int, *kvs: tuple[bytes, bytes], txn: bool = False) -> bytes:
    """One producer batch of ``(key, value)`` records (``pid`` -1: a plain batch)."""
    recs = [Record(offset=i, timestamp=100 + i, key=k, value=v) for i, (k, v) in enumerate(kvs)]
    return build_batch(
        recs,
        base_offset=0,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        is_transactional=txn,
    )


def headers(part: Partition) -> list[BatchHeader]:
    data = part.read(part.log_start_offset, 1 << 20)
    return [h for _p, h in iter_batches(data)]


def view(part: Partition) -> View:
    """Every record (data and markers) as ``(offset, key, value)``; markers as ``"C"``/``"A"``."""
    data = part.read(part.log_start_offset, 1 << 20)
    out: View = []
    for pos, h in iter_batches(data):
        batch = data[pos : pos + h.size]
        if h.is_control:
            out.append((h.base_offset, b"A" if control_type(batch) == ABORT_MARKER else b"C", None))
        else:
            out.extend((r.offset, r.key, r.value) for r in decode_records(batch))
    return out


def read_committed(part: Partition) -> dict[bytes | None, bytes | None]:
    """What a read_committed consumer sees (the rules of Kafka's Java consumer): data up
    to the LSO, skipping batches of producers listed as aborted until their abort marker."""
    lso = part.last_stable_offset
    start = part.log_start_offset
    data = part.read(start, 1 << 20, upper_bound=lso)
    pending = sorted(part.aborted_transactions(start, lso), key=lambda e: e[1])
    aborted: set[int] = set()
    out: dict[bytes | None, bytes | None] = {}
    for pos, h in iter_batches(data):
        while pending and pending[0][1] <= h.last_offset:
            aborted.add(pending.pop(0)[0])
        batch = data[pos : pos + h.size]
        if h.is_control:
            if control_type(batch) == ABORT_MARKER:
                aborted.discard(h.producer_id)
            continue
        if h.is_transactional and h.producer_id in aborted:
            continue
        out.update((r.key, r.value) for r in decode_records(batch) if r.offset < lso)
    return out


def build(open_part: Open) -> Partition:
    """A compacted log of idempotent, committed, aborted and open-transaction batches.

    segment 0:  0-1 p1 a=a0 b=b0 | 2-3 p2 txn a=a1 c=c1 | 4-5 p3 txn b=bx d=dx
                6 commit p2 | 7 abort p3
    segment 8:  8 p2 txn a=a2 | 9 commit p2 | 10 p3 txn d=d1 | 11 commit p3 | 12 p1 b=b1
    segment 13: 13 p4 txn c=co (open) | 14 a=a3
    active 15:  15 z=z0
    """
    part = open_part(cleanup_policy="compact")
    part.append(pbatch(1, 0, 0, (b"a", b"a0"), (b"b", b"b0")), now_ms=100)
    part.append(pbatch(2, 0, 0, (b"a", b"a1"), (b"c", b"c1"), txn=True), now_ms=100)
    part.append(pbatch(3, 0, 0, (b"b", b"bx"), (b"d", b"dx"), txn=True), now_ms=100)
    part.append_control(2, 0, True, 0, now_ms=100)
    part.append_control(3, 0, False, 0, now_ms=100)
    part.roll(100)
    part.append(pbatch(2, 0, 2, (b"a", b"a2"), txn=True), now_ms=100)
    part.append_control(2, 0, True, 0, now_ms=100)
    part.append(pbatch(3, 0, 2, (b"d", b"d1"), txn=True), now_ms=100)
    part.append_control(3, 0, True, 0, now_ms=100)
    part.append(pbatch(1, 0, 2, (b"b", b"b1")), now_ms=100)
    part.roll(100)
    part.append(pbatch(4, 0, 0, (b"c", b"co"), txn=True), now_ms=100)
    part.append(pbatch(-1, -1, -1, (b"a", b"a3")), now_ms=100)
    part.roll(100)
    part.append(pbatch(-1, -1, -1, (b"z", b"z0")), now_ms=100)
    assert [s.base_offset for s in part.segments] == [0, 8, 13, 15]
    assert part.last_stable_offset == 13
    return part


AFTER_FIRST_PASS: View = [
    (3, b"c", b"c1"), (6, b"C", None), (7, b"A", None),
    (8, b"a", b"a2"), (9, b"C", None), (10, b"d", b"d1"), (11, b"C", None), (12, b"b", b"b1"),
    (13, b"c", b"co"), (14, b"a", b"a3"), (15, b"z", b"z0"),
]  # fmt: skip


def test_cleaning_below_the_lso(open_part: Open, tmp_path: Path) -> None:
    part = build(open_part)
    open_bytes = (tmp_path / "t-0" / f"{13:020d}.log").read_bytes()
    assert read_committed(part) == {b"a": b"a2", b"b": b"b1", b"c": b"c1", b"d": b"d1"}
    assert should_clean(part, now_ms=1000)
    result = clean(part, now_ms=1000)
    # aborted b=bx d=dx are gone and never shadowed b0/d1; a0 b0 a1 compacted away
    assert result.records_removed == 5
    assert view(part) == AFTER_FIRST_PASS
    # the open transaction's segment (above the LSO) is byte for byte the same
    assert (tmp_path / "t-0" / f"{13:020d}.log").read_bytes() == open_bytes
    assert part.cleaner_offset == 13
    # offsets, attributes and producer fields are unchanged
    h = {h.base_offset: h for h in headers(part)}
    assert sorted(h) == [2, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert (h[2].last_offset, h[2].record_count, h[2].is_transactional) == (3, 1, True)
    assert (h[2].producer_id, h[2].producer_epoch, h[2].base_sequence) == (2, 0, 0)
    assert part.log_end_offset == 16 and part.last_stable_offset == 13
    # the abort marker of p3's first transaction has no data left: its clock started
    assert part.marker_ms == {7: 1000}
    assert part.aborted_transactions(0, 13) == [(3, 4)]
    assert clean(part, now_ms=1001).segments_rewritten == 0
    assert read_committed(part) == {b"a": b"a2", b"b": b"b1", b"c": b"c1", b"d": b"d1"}


def test_markers_outlive_their_data_by_delete_retention(open_part: Open) -> None:
    part = build(open_part)
    clean(part, now_ms=1000)
    part.append_control(4, 0, True, 0, now_ms=1000)  # 16: p4 commits
    part.roll(1000)
    assert part.last_stable_offset == part.log_end_offset == 17
    # c1 is shadowed by the now committed c=co, so p2's first transaction is gone and its
    # commit marker 6 starts its clock; a2 is shadowed by a3 but batch 8 is p2's last
    # batch: kept as an empty header, and with it its commit marker 9
    clean(part, now_ms=1000 + DAY)
    assert (7, b"A", None) in view(part)  # not yet: exactly delete.retention.ms
    assert part.marker_ms == {6: 1000 + DAY, 7: 1000}
    assert should_clean(part, now_ms=1001 + DAY)
    clean(part, now_ms=1001 + DAY)
    # marker 7 and its index entry went
    assert view(part) == [
        (6, b"C", None), (9, b"C", None), (10, b"d", b"d1"), (11, b"C", None),
        (12, b"b", b"b1"), (13, b"c", b"co"), (14, b"a", b"a3"), (15, b"z", b"z0"),
        (16, b"C", None),
    ]  # fmt: skip
    assert part.aborted_transactions(0, 17) == []
    assert part.marker_ms == {6: 1000 + DAY}
    h = {h.base_offset: h for h in headers(part)}
    assert (h[8].record_count, h[8].last_offset, h[8].is_transactional) == (0, 8, True)
    assert (h[8].producer_id, h[8].producer_epoch, h[8].base_sequence) == (2, 0, 2)
    assert h[13].is_transactional and h[13].producer_id == 4
    assert read_committed(part) == {b"a": b"a3", b"b": b"b1", b"c": b"co", b"d": b"d1", b"z": b"z0"}
    assert not should_clean(part, now_ms=1002 + DAY)
    # the clock survives a restart (checkpoint), then marker 6 goes too
    part.close()
    part = open_part(cleanup_policy="compact")
    assert part.marker_ms == {6: 1000 + DAY}
    assert not should_clean(part, now_ms=1000 + 2 * DAY)
    assert should_clean(part, now_ms=1001 + 2 * DAY)
    clean(part, now_ms=1001 + 2 * DAY)
    assert [o for o, k, _v in view(part) if k == b"C"] == [9, 11, 16]
    assert part.marker_ms == {}
    part.close()


@pytest.mark.parametrize("how", ["clean", "snapshot and index lost", "crash"])
def test_restart_after_cleaning_rebuilds_producers_and_lso(
    open_part: Open, tmp_path: Path, how: str
) -> None:
    part = build(open_part)
    clean(part, now_ms=1000)
    if how == "crash":
        part.flush()  # no close: the snapshot of the last roll plus the headers after it
    else:
        part.close()
        if how != "clean":
            (tmp_path / "t-0" / SNAPSHOT_FILE).unlink()
            (tmp_path / "t-0" / TXN_INDEX_FILE).unlink()
    part = open_part(cleanup_policy="compact")
    assert view(part) == AFTER_FIRST_PASS
    assert part.last_stable_offset == 13  # p4's transaction is still open
    # p1's and p2's last batches survived: retries are duplicates, sequences go on
    assert part.append(pbatch(1, 0, 2, (b"b", b"b1")), now_ms=2000).base_offset == 12
    with pytest.raises(KafkaError) as info:
        part.append(pbatch(2, 0, 5, (b"a", b"x"), txn=True), now_ms=2000)
    assert info.value.code == ErrorCode.out_of_order_sequence_number
    assert part.append(pbatch(1, 0, 3, (b"e", b"e1")), now_ms=2000).base_offset == 16
    part.append_control(4, 0, False, 0, now_ms=2000)  # 17: p4 aborts
    assert part.last_stable_offset == part.log_end_offset == 18
    assert (4, 13) in part.aborted_transactions(13, 18)
    assert read_committed(part) == {
        b"a": b"a3",
        b"b": b"b1",
        b"c": b"c1",
        b"d": b"d1",
        b"z": b"z0",
        b"e": b"e1",
    }
    part.close()


def test_idempotent_producer_keeps_its_last_batch(open_part: Open, tmp_path: Path) -> None:
    part = open_part(cleanup_policy="compact")
    part.append(pbatch(7, 0, 0, (b"k", b"1"), (b"k", b"2")), now_ms=1)
    part.append(pbatch(8, 0, 0, (b"k", b"3")), now_ms=1)
    part.roll(1)
    part.append(pbatch(-1, -1, -1, (b"k", b"4")), now_ms=1)
    part.roll(1)
    clean(part, now_ms=10)
    # every record but k=4 is compacted away; both producers' batches were their last:
    # their headers stay (empty, same offsets and sequences)
    assert view(part) == [(3, b"k", b"4")]
    assert [
        (h.base_offset, h.last_offset, h.record_count, h.producer_id, h.base_sequence)
        for h in headers(part)
    ] == [(0, 1, 0, 7, 0), (2, 2, 0, 8, 0), (3, 3, 1, -1, -1)]
    part.append(pbatch(7, 0, 2, (b"k", b"5")), now_ms=10)  # 4: p7's batch 0 is no longer last
    part.roll(10)
    clean(part, now_ms=20)
    assert [h.base_offset for h in headers(part)] == [2, 4]
    part.close()
    (tmp_path / "t-0" / SNAPSHOT_FILE).unlink()
    part = open_part(cleanup_policy="compact")
    # rebuilt from the log alone: retries are still recognised, sequences go on
    assert part.append(pbatch(7, 0, 2, (b"k", b"5")), now_ms=20).base_offset == 4
    assert part.append(pbatch(8, 0, 0, (b"k", b"3")), now_ms=20).base_offset == 2
    assert part.append(pbatch(8, 0, 1, (b"k", b"6")), now_ms=20).base_offset == 5
    part.close()


def test_open_transaction_holds_cleaning_back(open_part: Open) -> None:
    part = open_part(cleanup_policy="compact")
    part.append(pbatch(-1, -1, -1, (b"a", b"1")), now_ms=1)
    part.roll(1)
    part.append(pbatch(5, 0, 0, (b"a", b"2"), txn=True), now_ms=1)  # 1, open
    part.roll(1)
    part.append(pbatch(-1, -1, -1, (b"a", b"3")), now_ms=1)  # 2
    part.roll(1)
    part.append(pbatch(-1, -1, -1, (b"b", b"1")), now_ms=1)  # 3: active
    clean(part, now_ms=10)
    # only segment 0 lies below the LSO (1); nothing above it shadows anything there
    assert view(part) == [(0, b"a", b"1"), (1, b"a", b"2"), (2, b"a", b"3"), (3, b"b", b"1")]
    assert part.cleaner_offset == 1
    part.append_control(5, 0, False, 0, now_ms=10)  # 4: abort
    part.roll(10)
    clean(part, now_ms=20)
    # a=2 is aborted: it neither survives nor shadows; a=3 wins; p5's aborted batch is its
    # last, so its header stays (empty), and with it the abort marker and its index entry
    assert view(part) == [(2, b"a", b"3"), (3, b"b", b"1"), (4, b"A", None)]
    assert [(h.base_offset, h.record_count) for h in headers(part)][:2] == [(1, 0), (2, 1)]
    assert part.aborted_transactions(0, 5) == [(5, 1)]
    assert read_committed(part) == {b"a": b"3", b"b": b"1"}
    assert clean(part, now_ms=30).segments_rewritten == 0  # kept headers are stable


def test_unreadable_marker_clock_is_ignored(open_part: Open, tmp_path: Path) -> None:
    part = build(open_part)
    clean(part, now_ms=1000)
    part.close()
    path = tmp_path / "t-0" / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes().replace(b'"marker_ms"', b'"other"'))
    part = open_part(cleanup_policy="compact")
    assert part.marker_ms == {}  # an older checkpoint: the clock restarts at the next pass
    clean(part, now_ms=5000)
    assert part.marker_ms == {7: 5000}
    part.close()


def test_aborted_records_never_shadow_committed_ones(open_part: Open) -> None:
    part = open_part(cleanup_policy="compact")
    part.append(pbatch(6, 0, 0, (b"k", b"good"), txn=True), now_ms=1)  # 0
    part.append_control(6, 0, True, 0, now_ms=1)  # 1
    part.append(pbatch(6, 0, 1, (b"k", b"bad"), txn=True), now_ms=1)  # 2
    part.append_control(6, 0, False, 0, now_ms=1)  # 3
    part.append(pbatch(6, 0, 2, (b"x", b"1"), txn=True), now_ms=1)  # 4: p6's last batch
    part.append_control(6, 0, True, 0, now_ms=1)  # 5
    part.roll(1)
    clean(part, now_ms=10)
    assert view(part) == [
        (0, b"k", b"good"), (1, b"C", None), (3, b"A", None), (4, b"x", b"1"), (5, b"C", None),
    ]  # fmt: skip
    assert read_committed(part) == {b"k": b"good", b"x": b"1"}
    assert part.marker_ms == {3: 10}
