"""The transaction coordinator of one node: producer ids, transactions and their markers.

:class:`TransactionCoordinator` is what handlers reach as ``ctx.node.txns``. It

* hands out producer ids (blocks of :data:`ID_BLOCK` reserved in a small file before use,
  so ids are never reused across restarts);
* keeps one :class:`TxnMetadata` per transactional id, persisted to the compacted topic
  ``__transaction_state`` on every state change and read back at start;
* fences: a new InitProducerId for a transactional id bumps the epoch, and an open
  transaction of the previous epoch is aborted with markers carrying the new epoch, so
  the partitions refuse the old producer from then on;
* ends transactions by writing a commit or abort marker to every partition in them
  (PrepareCommit/PrepareAbort is logged first, so a crash in between is finished at
  start), and on commit materializes the offsets of TxnOffsetCommit through the group
  coordinator;
* aborts transactions open longer than their ``transaction.timeout.ms`` (periodic check
  every ``transaction.abort.timed.out.transaction.cleanup.interval.ms``).

Everything here is synchronous and quick (in-process appends), so handlers call it
directly from the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from broker.errors import ErrorCode, KafkaError
from broker.internal_topic import coordinator_partition, read_keyed
from broker.log.partition import write_atomically
from broker.log.records import Record, build_batch
from broker.txn.state import (
    TXN_TOPIC,
    PendingOffset,
    TxnMetadata,
    TxnState,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)

__all__ = ["ID_BLOCK", "TransactionCoordinator"]

log = logging.getLogger(__name__)

ID_BLOCK = 1000
ID_FILE = "producer_id_block.json"
MAX_EPOCH = 32767
COORDINATOR_EPOCH = 0


def _wall_ms() -> int:
    return int(time.time() * 1000)


class _Config(Protocol):
    def get_int(self, name: str, default: int | None = None) -> int: ...


class _Groups(Protocol):
    def materialize_txn_offsets(
        self, group_id: str, offsets: Mapping[tuple[str, int], tuple[int, int, str]]
    ) -> None: ...


class TransactionCoordinator:
    """Every transactional id of this node; see the module docstring."""

    def __init__(
        self,
        logs: Any,
        config: _Config,
        groups: _Groups | None = None,
        *,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.logs = logs
        self.groups = groups
        self.clock = clock or _wall_ms
        self.max_timeout_ms = config.get_int("transaction.max.timeout.ms", 900000)
        self.check_interval_ms = config.get_int(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms", 10000
        )
        self.num_partitions = max(1, config.get_int("transaction.state.log.num.partitions", 50))
        self.txns: dict[str, TxnMetadata] = {}
        self._id_path = Path(logs.log_dirs[0]) / ID_FILE
        self._next_id = 0
        self._block_end = 0
        self._task: asyncio.Task[None] | None = None
        self.ready = False

    # -- lifecycle ---------------------------------------------------------------------

    def load(self) -> None:
        """Read the id block and ``__transaction_state``; finish half-ended transactions."""
        try:
            self._next_id = int(json.loads(self._id_path.read_bytes())["block_end"])
        except (FileNotFoundError, ValueError, KeyError):
            self._next_id = 0
        self._block_end = self._next_id
        info = self.logs.topics().get(TXN_TOPIC)
        if info is not None:
            self.num_partitions = info.partitions
            for key, value in read_keyed(self.logs, TXN_TOPIC, info.partitions):
                try:
                    txn_id = decode_key(key)
                    if value is None:
                        self.txns.pop(txn_id, None)
                    else:
                        self.txns[txn_id] = decode_value(txn_id, value)
                except (ValueError, IndexError):
                    log.warning("skipping an unreadable %s record", TXN_TOPIC)
        for meta in self.txns.values():
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                self._write_markers(meta, meta.state is TxnState.PREPARE_COMMIT)
        self.ready = True

    async def start(self) -> None:
        self.load()
        self._task = asyncio.create_task(self._run(), name="txn-coordinator-timeouts")

    async def close(self) -> None:
        self.ready = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(self.check_interval_ms, 10) / 1000)
            try:
                self.abort_timed_out()
            except Exception:  # our bug: log it, keep the timer alive
                log.exception("transaction timeout check failed")

    def _check_ready(self) -> None:
        if not self.ready:
            raise KafkaError(ErrorCode.coordinator_load_in_progress, "txn coordinator starting")

    # -- producer ids ------------------------------------------------------------------

    def _new_producer_id(self) -> int:
        if self._next_id >= self._block_end:
            self._block_end = self._next_id + ID_BLOCK
            write_atomically(self._id_path, json.dumps({"block_end": self._block_end}).encode())
        pid = self._next_id
        self._next_id += 1
        return pid

    # -- the APIs ----------------------------------------------------------------------

    def init_producer_id(
        self, txn_id: str | None, timeout_ms: int, pid: int = -1, epoch: int = -1
    ) -> tuple[ErrorCode, int, int]:
        """InitProducerId: a fresh id for idempotent producers, fencing for transactional."""
        self._check_ready()
        if not txn_id:
            return ErrorCode.none, self._new_producer_id(), 0
        if timeout_ms <= 0 or timeout_ms > self.max_timeout_ms:
            return ErrorCode.invalid_transaction_timeout, -1, -1
        now = self.clock()
        meta = self.txns.get(txn_id)
        if meta is None:
            meta = TxnMetadata(txn_id, self._new_producer_id(), 0, timeout_ms, update_ms=now)
            self.txns[txn_id] = meta
            self._persist(meta)
            return ErrorCode.none, meta.producer_id, 0
        if pid >= 0:
            if pid != meta.producer_id:
                return ErrorCode.invalid_producer_id_mapping, -1, -1
            if epoch not in (meta.producer_epoch, meta.producer_epoch - 1):
                return ErrorCode.producer_fenced, -1, -1
        if meta.state is TxnState.ONGOING:
            self._abort_with_bump(meta, "a new producer with the same transactional id started")
        if meta.producer_epoch >= MAX_EPOCH - 1:
            meta.producer_id, meta.producer_epoch = self._new_producer_id(), 0
        else:
            meta.producer_epoch += 1
        meta.timeout_ms = timeout_ms
        meta.state = TxnState.EMPTY
        meta.update_ms = now
        self._persist(meta)
        return ErrorCode.none, meta.producer_id, meta.producer_epoch

    def _validate(self, txn_id: str, pid: int, epoch: int) -> tuple[ErrorCode, TxnMetadata | None]:
        self._check_ready()
        meta = self.txns.get(txn_id)
        if meta is None or meta.producer_id != pid:
            return ErrorCode.invalid_producer_id_mapping, None
        if epoch != meta.producer_epoch:
            return ErrorCode.producer_fenced, None
        if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            return ErrorCode.concurrent_transactions, None
        return ErrorCode.none, meta

    def add_partitions(
        self, txn_id: str, pid: int, epoch: int, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], ErrorCode]:
        """AddPartitionsToTxn: one code per partition (all the same for a producer error)."""
        wanted = list(partitions)
        code, meta = self._validate(txn_id, pid, epoch)
        if meta is None:
            return dict.fromkeys(wanted, code)
        topics = self.logs.topics()
        unknown = {
            (t, p) for t, p in wanted if t not in topics or not 0 <= p < topics[t].partitions
        }
        if unknown:
            return {
                tp: ErrorCode.unknown_topic_or_partition
                if tp in unknown
                else ErrorCode.operation_not_attempted
                for tp in wanted
            }
        self._begin(meta)
        meta.partitions.update(wanted)
        self._persist(meta)
        return dict.fromkeys(wanted, ErrorCode.none)

    def add_offsets(self, txn_id: str, pid: int, epoch: int, group_id: str) -> ErrorCode:
        """AddOffsetsToTxn: the group's offsets will be committed with the transaction."""
        code, meta = self._validate(txn_id, pid, epoch)
        if meta is None:
            return code
        if not group_id:
            return ErrorCode.invalid_group_id
        self._begin(meta)
        meta.offsets.setdefault(group_id, {})
        self._persist(meta)
        return ErrorCode.none

    def txn_offset_commit(
        self,
        txn_id: str,
        group_id: str,
        pid: int,
        epoch: int,
        offsets: Mapping[tuple[str, int], PendingOffset],
    ) -> dict[tuple[str, int], ErrorCode]:
        """TxnOffsetCommit: keep the offsets pending until the transaction ends."""
        code, meta = self._validate(txn_id, pid, epoch)
        if meta is None:
            return dict.fromkeys(offsets, code)
        if group_id not in meta.offsets or meta.state is not TxnState.ONGOING:
            # Kafka requires AddOffsetsToTxn first.
            return dict.fromkeys(offsets, ErrorCode.invalid_txn_state)
        topics = self.logs.topics()
        result: dict[tuple[str, int], ErrorCode] = {}
        for (t, p), entry in offsets.items():
            if t not in topics or not 0 <= p < topics[t].partitions:
                result[(t, p)] = ErrorCode.unknown_topic_or_partition
            else:
                meta.offsets[group_id][(t, p)] = entry
                result[(t, p)] = ErrorCode.none
        self._persist(meta)
        return result

    def end_txn(self, txn_id: str, pid: int, epoch: int, commit: bool) -> ErrorCode:
        """EndTxn: write the markers and complete; a retried EndTxn answers success."""
        self._check_ready()
        meta = self.txns.get(txn_id)
        if meta is None or meta.producer_id != pid:
            return ErrorCode.invalid_producer_id_mapping
        done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        if epoch != meta.producer_epoch:
            # A retry after the coordinator aborted it on timeout answers fenced too.
            return ErrorCode.producer_fenced
        if meta.state is done:
            return ErrorCode.none  # a retry
        if meta.state is TxnState.EMPTY:
            return ErrorCode.none  # nothing was added: nothing to end
        if meta.state is not TxnState.ONGOING:
            return ErrorCode.invalid_txn_state
        self._end(meta, commit)
        return ErrorCode.none

    # -- timeouts ----------------------------------------------------------------------

    def abort_timed_out(self) -> list[str]:
        """Abort every transaction open longer than its timeout; returns their ids."""
        now = self.clock()
        expired = [
            m
            for m in self.txns.values()
            if m.state is TxnState.ONGOING and m.start_ms + m.timeout_ms < now
        ]
        for meta in expired:
            self._abort_with_bump(meta, f"it exceeded its timeout of {meta.timeout_ms} ms")
        return [m.transactional_id for m in expired]

    # -- queries -----------------------------------------------------------------------

    def has_pending_offsets(self, group_id: str, topic: str, partition: int) -> bool:
        """Whether an open transaction holds an uncommitted offset (OffsetFetch stable)."""
        for meta in self.txns.values():
            if meta.state is TxnState.ONGOING and (topic, partition) in meta.offsets.get(
                group_id, {}
            ):
                return True
        return False

    # -- internals ---------------------------------------------------------------------

    def _begin(self, meta: TxnMetadata) -> None:
        now = self.clock()
        if meta.state is not TxnState.ONGOING:
            meta.state = TxnState.ONGOING
            meta.start_ms = now
            meta.partitions.clear()
            meta.offsets.clear()
        meta.update_ms = now

    def _abort_with_bump(self, meta: TxnMetadata, why: str) -> None:
        log.info(
            "aborting transaction of %s (producer %d epoch %d): %s",
            meta.transactional_id,
            meta.producer_id,
            meta.producer_epoch,
            why,
        )
        meta.producer_epoch += 1
        self._end(meta, False)

    def _end(self, meta: TxnMetadata, commit: bool) -> None:
        meta.state = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        meta.update_ms = self.clock()
        self._persist(meta)
        self._write_markers(meta, commit)

    def _write_markers(self, meta: TxnMetadata, commit: bool) -> None:
        now = self.clock()
        for topic, partition in sorted(meta.partitions):
            try:
                part = self.logs.partition(topic, partition)
                part.append_control(
                    meta.producer_id, meta.producer_epoch, commit, COORDINATOR_EPOCH, now_ms=now
                )
            except KafkaError as exc:
                log.warning(
                    "transaction %s: no marker for %s-%d: %s",
                    meta.transactional_id,
                    topic,
                    partition,
                    exc.message,
                )
        if commit and self.groups is not None:
            for group_id, entries in meta.offsets.items():
                if entries:
                    self.groups.materialize_txn_offsets(
                        group_id,
                        {tp: (e.offset, e.leader_epoch, e.metadata) for tp, e in entries.items()},
                    )
        meta.state = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        meta.partitions.clear()
        meta.offsets.clear()
        meta.update_ms = now
        self._persist(meta)

    def _partition_for(self, txn_id: str) -> int:
        return coordinator_partition(txn_id, self.num_partitions)

    def _persist(self, meta: TxnMetadata) -> None:
        info = self.logs.topics().get(TXN_TOPIC)
        if info is None:
            self.logs.create_topic(
                TXN_TOPIC,
                self.num_partitions,
                {"cleanup.policy": "compact", "compression.type": "producer"},
            )
        else:
            self.num_partitions = info.partitions
        now = self.clock()
        batch = build_batch(
            [
                Record(
                    offset=0,
                    timestamp=now,
                    key=encode_key(meta.transactional_id),
                    value=encode_value(meta),
                )
            ],
            base_offset=0,
        )
        part = self.logs.partition(TXN_TOPIC, self._partition_for(meta.transactional_id))
        try:
            part.append(batch, now_ms=now)
        except KafkaError as exc:
            raise KafkaError(
                ErrorCode.coordinator_not_available, f"cannot write {TXN_TOPIC}: {exc.message}"
            ) from exc
