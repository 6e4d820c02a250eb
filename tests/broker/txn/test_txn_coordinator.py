"""The transaction coordinator on a real file-backed log, with a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from broker.config import BrokerConfig
from broker.group import GroupCoordinator
from broker.log.manager import LogManager
from broker.log.records import Record, build_batch
from broker.txn import TXN_TOPIC, PendingOffset, TransactionCoordinator, TxnState
from broker.txn.state import TxnMetadata, decode_value, encode_value


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


class Node:
    """A log, a group coordinator and a transaction coordinator that can be restarted."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self.config = BrokerConfig(
            {
                "offsets.topic.num.partitions": "1",
                "transaction.state.log.num.partitions": "2",
                "transaction.max.timeout.ms": "60000",
            }
        )

    async def start(self) -> TransactionCoordinator:
        self.logs = LogManager([self.path], {})
        if "t" not in self.logs.topics():
            self.logs.create_topic("t", 2, {})
        self.groups = GroupCoordinator(self.logs, self.config, clock=self.clock)
        await self.groups.start()
        self.txns = TransactionCoordinator(self.logs, self.config, self.groups, clock=self.clock)
        self.txns.load()
        return self.txns

    async def stop(self) -> None:
        await self.txns.close()
        await self.groups.stop()
        self.logs.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def node(tmp_path: Path, clock: Clock) -> AsyncIterator[Node]:
    n = Node(tmp_path, clock)
    await n.start()
    yield n
    await n.stop()


def txn_batch(pid: int, epoch: int, seq: int = 0) -> bytes:
    recs = [Record(offset=0, timestamp=1, key=b"k", value=b"v")]
    return build_batch(
        recs,
        base_offset=0,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        is_transactional=True,
    )


def test_state_record_round_trip() -> None:
    m = TxnMetadata("tx", 4, 2, 5000, TxnState.ONGOING, 10, 11, {("a", 0), ("a", 3), ("b", 1)})
    m.offsets["g"] = {("a", 0): PendingOffset(42, 3, "meta")}
    back = decode_value("tx", encode_value(m))
    assert back == m


async def test_idempotent_producers_get_distinct_ids(node: Node) -> None:
    ids = {node.txns.init_producer_id(None, 0)[1] for _ in range(3)}
    assert len(ids) == 3
    await node.stop()
    txns = await node.start()
    code, pid, epoch = txns.init_producer_id(None, 0)
    assert code == ErrorCode.none and pid not in ids and epoch == 0


async def test_timeout_limits(node: Node) -> None:
    assert node.txns.init_producer_id("tx", 60001)[0] == ErrorCode.invalid_transaction_timeout
    assert node.txns.init_producer_id("tx", 0)[0] == ErrorCode.invalid_transaction_timeout
    assert node.txns.init_producer_id("tx", 60000)[0] == ErrorCode.none


async def test_commit_writes_markers_and_offsets(node: Node) -> None:
    txns = node.txns
    _c, pid, epoch = txns.init_producer_id("tx", 10000)
    assert txns.add_partitions("tx", pid, epoch, [("t", 0)]) == {("t", 0): ErrorCode.none}
    part = node.logs.partition("t", 0)
    part.append(txn_batch(pid, epoch), now_ms=0)
    assert part.last_stable_offset == 0
    assert txns.add_offsets("tx", pid, epoch, "g") == ErrorCode.none
    offsets = {("t", 1): PendingOffset(7, -1, "")}
    assert txns.txn_offset_commit("tx", "g", pid, epoch, offsets) == {("t", 1): ErrorCode.none}
    assert txns.has_pending_offsets("g", "t", 1)
    assert node.groups.fetch_offsets("g", [("t", 1)]) == [("t", 1, None)]
    assert txns.end_txn("tx", pid, epoch, True) == ErrorCode.none
    assert part.last_stable_offset == part.log_end_offset == 2
    assert part.aborted_transactions(0, 2) == []
    assert not txns.has_pending_offsets("g", "t", 1)
    entry = node.groups.fetch_offsets("g", [("t", 1)])[0][2]
    assert entry is not None and entry.offset == 7
    assert txns.end_txn("tx", pid, epoch, True) == ErrorCode.none  # a retry
    assert txns.end_txn("tx", pid, epoch, False) == ErrorCode.invalid_txn_state


async def test_abort_discards_offsets_and_indexes_the_data(node: Node) -> None:
    txns = node.txns
    _c, pid, epoch = txns.init_producer_id("tx", 10000)
    txns.add_partitions("tx", pid, epoch, [("t", 0)])
    part = node.logs.partition("t", 0)
    part.append(txn_batch(pid, epoch), now_ms=0)
    txns.add_offsets("tx", pid, epoch, "g")
    txns.txn_offset_commit("tx", "g", pid, epoch, {("t", 1): PendingOffset(7, -1, "")})
    assert txns.end_txn("tx", pid, epoch, False) == ErrorCode.none
    assert part.aborted_transactions(0, part.log_end_offset) == [(pid, 0)]
    assert node.groups.fetch_offsets("g", [("t", 1)]) == [("t", 1, None)]


async def test_new_producer_fences_the_old_and_aborts_its_transaction(node: Node) -> None:
    txns = node.txns
    _c, pid, epoch = txns.init_producer_id("tx", 10000)
    txns.add_partitions("tx", pid, epoch, [("t", 0)])
    part = node.logs.partition("t", 0)
    part.append(txn_batch(pid, epoch), now_ms=0)
    code, pid2, epoch2 = txns.init_producer_id("tx", 10000)
    assert code == ErrorCode.none and pid2 == pid and epoch2 > epoch
    assert part.last_stable_offset == part.log_end_offset
    assert part.aborted_transactions(0, part.log_end_offset) == [(pid, 0)]
    assert txns.end_txn("tx", pid, epoch, True) == ErrorCode.producer_fenced
    assert txns.add_partitions("tx", pid, epoch, [("t", 1)]) == {
        ("t", 1): ErrorCode.producer_fenced
    }
    with pytest.raises(Exception) as info:
        part.append(txn_batch(pid, epoch, 1), now_ms=0)
    assert getattr(info.value, "code", None) == ErrorCode.invalid_producer_epoch


async def test_timeout_aborts_with_a_fake_clock(node: Node, clock: Clock) -> None:
    txns = node.txns
    _c, pid, epoch = txns.init_producer_id("tx", 5000)
    txns.add_partitions("tx", pid, epoch, [("t", 0)])
    part = node.logs.partition("t", 0)
    part.append(txn_batch(pid, epoch), now_ms=0)
    clock.now += 4000
    assert txns.abort_timed_out() == []
    clock.now += 2000
    assert txns.abort_timed_out() == ["tx"]
    assert part.last_stable_offset == part.log_end_offset
    assert txns.end_txn("tx", pid, epoch, True) == ErrorCode.producer_fenced


async def test_bad_requests(node: Node) -> None:
    txns = node.txns
    _c, pid, epoch = txns.init_producer_id("tx", 5000)
    assert txns.end_txn("nope", pid, epoch, True) == ErrorCode.invalid_producer_id_mapping
    assert txns.end_txn("tx", pid + 1, epoch, True) == ErrorCode.invalid_producer_id_mapping
    assert txns.add_partitions("tx", pid, epoch, [("t", 0), ("missing", 0)]) == {
        ("t", 0): ErrorCode.operation_not_attempted,
        ("missing", 0): ErrorCode.unknown_topic_or_partition,
    }
    # TxnOffsetCommit before AddOffsetsToTxn is refused.
    offsets = {("t", 0): PendingOffset(1, -1, "")}
    assert txns.txn_offset_commit("tx", "g", pid, epoch, offsets) == {
        ("t", 0): ErrorCode.invalid_txn_state
    }
    assert txns.init_producer_id("tx", 5000, pid + 5, 0)[0] == ErrorCode.invalid_producer_id_mapping
    assert txns.init_producer_id("tx", 5000, pid, epoch + 3)[0] == ErrorCode.producer_fenced


async def test_open_transaction_survives_coordinator_restart(node: Node, clock: Clock) -> None:
    txns = node.txns
    _c, pid, epoch = txns.init_producer_id("tx", 5000)
    txns.add_partitions("tx", pid, epoch, [("t", 0)])
    txns.add_offsets("tx", pid, epoch, "g")
    txns.txn_offset_commit("tx", "g", pid, epoch, {("t", 1): PendingOffset(9, -1, "")})
    node.logs.partition("t", 0).append(txn_batch(pid, epoch), now_ms=0)
    await node.stop()
    txns = await node.start()
    assert TXN_TOPIC in node.logs.topics()
    assert txns.txns["tx"].state is TxnState.ONGOING
    assert node.logs.partition("t", 0).last_stable_offset == 0
    assert txns.end_txn("tx", pid, epoch, True) == ErrorCode.none
    entry = node.groups.fetch_offsets("g", [("t", 1)])[0][2]
    assert entry is not None and entry.offset == 9
    assert node.logs.partition("t", 0).last_stable_offset == 2
