"""Transactional state of a partition: producers, markers, the LSO, aborted transactions.

The producer table (idempotence and open transactions) lives in memory, is snapshotted at
each roll and at close, and is rebuilt at open from the snapshot plus the batch headers
written after it. Commit and abort markers are control batches appended through the normal
append path; each abort also goes into the aborted-transaction index that fetches at
``read_committed`` consult.
"""

from __future__ import annotations

import struct

from broker.log.interface import AppendInfo
from broker.log.partition_base import PartitionBase
from broker.log.partition_durability import write_atomically
from broker.log.producer_state import (
    PRODUCER_ID_EXPIRATION_MS,
    SNAPSHOT_FILE,
    ProducerStateManager,
    next_sequence,
)
from broker.log.records import Record, build_batch, decode_records
from broker.log.txn_index import TxnIndex

__all__ = ["ABORT_MARKER", "COMMIT_MARKER", "TransactionsMixin", "control_type"]

_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")
ABORT_MARKER = 0
COMMIT_MARKER = 1


def control_type(batch: bytes | bytearray | memoryview) -> int:
    """The marker type of a control batch: 0 abort, 1 commit (-1 when unreadable)."""
    records = decode_records(batch)
    if not records or records[0].key is None or len(records[0].key) < 4:
        return -1
    return int(_CONTROL_KEY.unpack_from(records[0].key)[1])


class TransactionsMixin(PartitionBase):
    """Producer-state hooks, control batches, last stable offset, aborted transactions."""

    def _load_producer_state(self) -> None:
        """Snapshot plus the batch headers after it; rebuilds the aborted index's tail too."""
        self.producer_state = ProducerStateManager()
        self.txn_index = TxnIndex(self.directory)
        end = self.log_end_offset
        self.txn_index.truncate_to(end)
        start = self.producer_state.load(self.directory / SNAPSHOT_FILE)
        if start is None or start > end:
            self.producer_state.truncate()
            start = self._log_start_offset
        state = self.producer_state
        for seg in self.segments:
            if seg.next_offset <= start or not seg.size:
                continue
            for pos, h in seg.scan(0):
                if h.last_offset < start or h.producer_id < 0:
                    continue
                if h.is_control:
                    kind = control_type(seg.read(pos, pos + h.size))
                    self._record_marker(h.producer_id, h.producer_epoch, kind, -1, h.base_offset, 0)
                else:
                    last_seq = (
                        next_sequence(h.base_sequence, h.last_offset_delta)
                        if h.base_sequence >= 0
                        else -1
                    )
                    state.update(
                        h.producer_id,
                        h.producer_epoch,
                        h.base_sequence,
                        last_seq,
                        h.base_offset,
                        h.last_offset,
                        transactional=h.is_transactional,
                        now_ms=h.max_timestamp,
                    )

    def _record_marker(
        self, pid: int, epoch: int, kind: int, coordinator_epoch: int, offset: int, now_ms: int
    ) -> None:
        first = self.producer_state.complete_txn(pid, epoch, coordinator_epoch, now_ms)
        if kind == ABORT_MARKER and offset > self.txn_index.last_marker_offset:
            lso = self.producer_state.first_unstable_offset()
            self.txn_index.append(
                pid, first if first >= 0 else offset, offset, offset if lso is None else lso
            )

    def write_producer_snapshot(self) -> None:
        """Persist the producer table as of the log end (at roll and close)."""
        with self.lock:
            data = self.producer_state.to_json(self.log_end_offset)
            write_atomically(self.directory / SNAPSHOT_FILE, data)

    @property
    def last_stable_offset(self) -> int:
        with self.lock:
            first = self.producer_state.first_unstable_offset()
            return self.log_end_offset if first is None else first

    def aborted_transactions(self, start: int, end: int) -> list[tuple[int, int]]:
        """``(producer id, first offset)`` of aborted transactions touching ``[start, end)``."""
        with self.lock:
            return [(e[0], e[1]) for e in self.txn_index.overlapping(start, end)]

    def append_control(
        self, pid: int, epoch: int, commit: bool, coordinator_epoch: int, *, now_ms: int
    ) -> AppendInfo:
        """Write a commit or abort marker for ``pid`` (the transaction coordinator's call)."""
        kind = COMMIT_MARKER if commit else ABORT_MARKER
        batch = build_batch(
            [
                Record(
                    offset=0,
                    timestamp=now_ms,
                    key=_CONTROL_KEY.pack(0, kind),
                    value=_CONTROL_VALUE.pack(0, coordinator_epoch),
                )
            ],
            base_offset=0,
            is_transactional=True,
            is_control=True,
            producer_id=pid,
            producer_epoch=epoch,
        )
        return self._append(batch, now_ms, (pid, epoch, kind, coordinator_epoch))

    def expire_producers(self, now_ms: int, max_idle_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        """Forget idle producers so the table (and snapshot) does not grow forever."""
        with self.lock:
            self.producer_state.expire(now_ms, max_idle_ms)
