"""Idempotent and transactional appends: dedupe, sequence checks, fencing, LSO, aborted index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from broker.errors import KafkaError
from broker.log.partition import Partition
from broker.log.producer_state import SNAPSHOT_FILE
from broker.log.records import Record, build_batch
from broker.log.txn_index import TXN_INDEX_FILE

Open = Callable[..., Partition]


def pbatch(
    pid: int, epoch: int, seq: int, n: int = 3, *, txn: bool = False, control: bool = False
) -> bytes:
    recs = [Record(offset=i, timestamp=1000 + i, key=b"k", value=b"v%d" % i) for i in range(n)]
    return build_batch(
        recs,
        base_offset=0,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        is_transactional=txn,
        is_control=control,
    )


def code_of(part: Partition, data: bytes) -> ErrorCode:
    with pytest.raises(KafkaError) as info:
        part.append(data, now_ms=0)
    return info.value.code


def test_duplicate_returns_original_offsets(open_part: Open) -> None:
    part = open_part()
    part.append(pbatch(-1, -1, -1, 2), now_ms=0)  # plain data first: offsets 0..1
    first = part.append(pbatch(7, 0, 0), now_ms=0)
    second = part.append(pbatch(7, 0, 3), now_ms=0)
    assert (first.base_offset, first.last_offset) == (2, 4)
    retry = part.append(pbatch(7, 0, 0), now_ms=0)
    assert (retry.base_offset, retry.last_offset) == (2, 4)
    retry2 = part.append(pbatch(7, 0, 3), now_ms=0)
    assert retry2.base_offset == second.base_offset
    assert part.log_end_offset == 8  # nothing appended twice


def test_sequence_gap_is_out_of_order(open_part: Open) -> None:
    part = open_part()
    part.append(pbatch(7, 0, 0), now_ms=0)
    assert code_of(part, pbatch(7, 0, 5)) == ErrorCode.out_of_order_sequence_number
    part.append(pbatch(7, 0, 3), now_ms=0)  # the right next sequence still works


def test_old_epoch_is_fenced_and_new_epoch_starts_at_zero(open_part: Open) -> None:
    part = open_part()
    part.append(pbatch(7, 1, 0), now_ms=0)
    assert code_of(part, pbatch(7, 0, 3)) == ErrorCode.invalid_producer_epoch
    assert code_of(part, pbatch(7, 2, 3)) == ErrorCode.out_of_order_sequence_number
    part.append(pbatch(7, 2, 0), now_ms=0)
    assert code_of(part, pbatch(7, 1, 3)) == ErrorCode.invalid_producer_epoch


def test_unknown_producer_must_start_at_zero(open_part: Open) -> None:
    part = open_part()
    assert code_of(part, pbatch(9, 0, 4)) == ErrorCode.unknown_producer_id
    part.append(pbatch(9, 0, 0), now_ms=0)


def test_clients_cannot_write_control_or_unowned_transactional_batches(open_part: Open) -> None:
    part = open_part()
    assert code_of(part, pbatch(7, 0, 0, control=True, txn=True)) == ErrorCode.invalid_record
    assert code_of(part, pbatch(-1, -1, -1, txn=True)) == ErrorCode.invalid_record


def test_several_batches_of_one_request_must_be_in_sequence(open_part: Open) -> None:
    part = open_part()
    info = part.append(pbatch(7, 0, 0) + pbatch(7, 0, 3), now_ms=0)
    assert (info.base_offset, info.last_offset) == (0, 5)
    assert code_of(part, pbatch(7, 0, 6) + pbatch(7, 0, 10)) == (
        ErrorCode.out_of_order_sequence_number
    )


@pytest.mark.parametrize("how", ["clean", "snapshot lost", "crash"])
def test_producer_state_survives_restart(open_part: Open, tmp_path: Path, how: str) -> None:
    part = open_part()
    part.append(pbatch(7, 0, 0), now_ms=0)
    part.append(pbatch(7, 0, 3), now_ms=0)
    if how == "crash":
        part.flush()  # no close: no snapshot, no clean-shutdown marker
    else:
        part.close()
        if how == "snapshot lost":
            (tmp_path / "t-0" / SNAPSHOT_FILE).unlink()
    part = open_part()
    assert part.append(pbatch(7, 0, 3), now_ms=0).base_offset == 3  # still a duplicate
    assert code_of(part, pbatch(7, 0, 9)) == ErrorCode.out_of_order_sequence_number
    assert part.append(pbatch(7, 0, 6), now_ms=0).base_offset == 6
    part.close()


def test_lso_and_aborted_index(open_part: Open, tmp_path: Path) -> None:
    part = open_part()
    part.append(pbatch(-1, -1, -1, 2), now_ms=0)  # 0..1
    part.append(pbatch(5, 0, 0, txn=True), now_ms=0)  # 2..4, open
    part.append(pbatch(6, 0, 0, txn=True), now_ms=0)  # 5..7, open
    assert part.last_stable_offset == 2
    marker = part.append_control(5, 0, False, 0, now_ms=0)  # abort at 8
    assert marker.base_offset == 8
    assert part.last_stable_offset == 5
    part.append_control(6, 0, True, 0, now_ms=0)  # commit at 9
    assert part.last_stable_offset == part.log_end_offset == 10
    assert part.aborted_transactions(0, 10) == [(5, 2)]
    assert part.aborted_transactions(9, 10) == []
    part.close()
    part = open_part()
    assert part.aborted_transactions(0, 10) == [(5, 2)]
    assert part.last_stable_offset == 10
    part.close()
    # Rebuilt from the log alone (index and snapshot gone) the answer is the same.
    (tmp_path / "t-0" / TXN_INDEX_FILE).unlink()
    (tmp_path / "t-0" / SNAPSHOT_FILE).unlink()
    part = open_part()
    assert part.aborted_transactions(0, 10) == [(5, 2)]
    assert part.last_stable_offset == 10
    part.close()


def test_open_transaction_survives_restart(open_part: Open) -> None:
    part = open_part()
    part.append(pbatch(5, 0, 0, txn=True), now_ms=0)
    part.flush()
    part = open_part()  # crash: rebuilt from the headers
    assert part.last_stable_offset == 0
    part.append_control(5, 0, False, 0, now_ms=0)
    assert part.last_stable_offset == part.log_end_offset
    part.close()


def test_marker_with_old_epoch_is_refused(open_part: Open) -> None:
    part = open_part()
    part.append(pbatch(5, 2, 0, txn=True), now_ms=0)
    with pytest.raises(KafkaError) as info:
        part.append_control(5, 1, True, 0, now_ms=0)
    assert info.value.code == ErrorCode.invalid_producer_epoch
    # A marker with a bumped epoch (fencing) closes the transaction and fences the producer.
    part.append_control(5, 3, False, 0, now_ms=0)
    assert code_of(part, pbatch(5, 2, 3, txn=True)) == ErrorCode.invalid_producer_epoch


def test_idle_producers_expire_but_open_transactions_stay(open_part: Open) -> None:
    part = open_part()
    part.append(pbatch(7, 0, 0), now_ms=1000)
    part.append(pbatch(8, 0, 0, txn=True), now_ms=1000)
    part.expire_producers(5000, max_idle_ms=1000)
    assert code_of(part, pbatch(7, 0, 3)) == ErrorCode.unknown_producer_id
    assert part.last_stable_offset == 3  # producer 8's transaction is still open
    part.append(pbatch(7, 0, 0), now_ms=5000)  # a forgotten producer may start over


def test_retention_prunes_the_aborted_index(open_part: Open) -> None:
    part = open_part()
    part.append(pbatch(5, 0, 0, txn=True), now_ms=0)
    part.append_control(5, 0, False, 0, now_ms=0)
    part.roll()
    part.append(pbatch(-1, -1, -1), now_ms=0)
    assert part.aborted_transactions(0, part.log_end_offset) == [(5, 0)]
    part.delete_oldest_segments(1, "test")
    assert part.aborted_transactions(0, part.log_end_offset) == []
