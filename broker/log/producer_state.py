"""Per-partition producer state: idempotent dedupe, epoch fencing and open transactions.

Kafka's rules, checked once per batch from header fields only (producer id, epoch, base
sequence, record count), never per record:

* a batch whose (epoch, first sequence, last sequence) equals one of the producer's last
  five batches is a retry: it is answered with the offsets it got the first time and
  not appended again;
* otherwise its first sequence must follow the last one (``last + 1``, wrapping at
  2**31-1 to 0); a gap is OUT_OF_ORDER_SEQUENCE_NUMBER;
* an epoch below the producer's current one is a zombie: INVALID_PRODUCER_EPOCH;
  a higher epoch must start again at sequence 0;
* a producer id this partition has never seen must start at sequence 0, else
  UNKNOWN_PRODUCER_ID (its state may have been lost to retention).

Transactions: the first transactional batch of a producer opens a transaction at its
base offset; a control batch (commit or abort marker) closes it. The last stable offset
is the first offset of the earliest open transaction.

The state survives restarts through ``producer.snapshot`` (written atomically at roll
and close, tagged with the log end offset it describes) plus a rebuild from the batch
headers after that offset when the partition opens.

>>> s = ProducerStateManager()
>>> s.check(7, 0, 0, 4, now_ms=0) is None
True
>>> s.update(7, 0, 0, 4, 100, 104, transactional=False, now_ms=0)
>>> s.check(7, 0, 0, 4, now_ms=0)
(100, 104)
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.errors import ErrorCode, KafkaError

__all__ = [
    "PRODUCER_ID_EXPIRATION_MS",
    "SNAPSHOT_FILE",
    "ProducerEntry",
    "ProducerStateManager",
    "next_sequence",
]

SNAPSHOT_FILE = "producer.snapshot"
PRODUCER_ID_EXPIRATION_MS = 86_400_000
"""Kafka's default ``producer.id.expiration.ms``: one day."""
CACHED_BATCHES = 5
_INT32_MAX = 2**31 - 1


def next_sequence(last_seq: int, count: int) -> int:
    """Sequence after ``count`` records following ``last_seq`` (wraps like Kafka)."""
    return (last_seq + count) % (_INT32_MAX + 1)


@dataclass(slots=True)
class ProducerEntry:
    """What one partition remembers of one producer id."""

    epoch: int
    batches: deque[tuple[int, int, int, int]] = field(
        default_factory=lambda: deque(maxlen=CACHED_BATCHES)
    )
    """(first seq, last seq, first offset, last offset) of the last batches, oldest first."""
    txn_first_offset: int = -1
    """First offset of this producer's open transaction here, or -1."""
    coordinator_epoch: int = -1
    last_timestamp_ms: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1][1] if self.batches else -1


class ProducerStateManager:
    """The producer table of one partition (the partition's lock guards every call)."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}
        self.ongoing: dict[int, int] = {}
        """producer id -> first offset of its open transaction (few; the LSO reads it)."""

    # --- checks ----------------------------------------------------------------------

    def check(
        self, pid: int, epoch: int, first_seq: int, last_seq: int, *, now_ms: int
    ) -> tuple[int, int] | None:
        """Validate one client batch; return the original offsets of a duplicate.

        Raises ``KafkaError`` for a fenced epoch, a sequence gap or an unknown producer.
        """
        entry = self.producers.get(pid)
        if entry is None:
            if first_seq != 0:
                raise KafkaError(
                    ErrorCode.unknown_producer_id,
                    f"producer {pid} is unknown to this partition and its batch starts at "
                    f"sequence {first_seq}, not 0",
                )
            return None
        if epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.invalid_producer_epoch,
                f"producer {pid} epoch {epoch} is fenced: a newer producer has epoch {entry.epoch}",
            )
        if epoch > entry.epoch:
            if first_seq != 0:
                raise KafkaError(
                    ErrorCode.out_of_order_sequence_number,
                    f"producer {pid} started epoch {epoch} at sequence {first_seq}, not 0",
                )
            return None
        for b_first, b_last, o_first, o_last in entry.batches:
            if b_first == first_seq and b_last == last_seq:
                return o_first, o_last
        last = entry.last_seq
        if last == -1:
            # Epoch known only from a transaction marker: a fresh sequence is expected.
            if first_seq != 0:
                raise KafkaError(
                    ErrorCode.out_of_order_sequence_number,
                    f"producer {pid} epoch {epoch}: expected sequence 0, got {first_seq}",
                )
            return None
        if first_seq != next_sequence(last, 1):
            raise KafkaError(
                ErrorCode.out_of_order_sequence_number,
                f"producer {pid} epoch {epoch}: expected sequence {next_sequence(last, 1)}, "
                f"got {first_seq}",
            )
        return None

    # --- updates ---------------------------------------------------------------------

    def update(
        self,
        pid: int,
        epoch: int,
        first_seq: int,
        last_seq: int,
        first_offset: int,
        last_offset: int,
        *,
        transactional: bool,
        now_ms: int,
    ) -> None:
        """Record an appended data batch (also used when rebuilding from the log)."""
        entry = self.producers.get(pid)
        if entry is None:
            entry = self.producers[pid] = ProducerEntry(epoch)
        elif epoch != entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()
        if first_seq >= 0:
            entry.batches.append((first_seq, last_seq, first_offset, last_offset))
        if transactional and entry.txn_first_offset < 0:
            entry.txn_first_offset = first_offset
            self.ongoing[pid] = first_offset
        entry.last_timestamp_ms = now_ms

    def complete_txn(self, pid: int, epoch: int, coordinator_epoch: int, now_ms: int) -> int:
        """Record a commit/abort marker; return the closed transaction's first offset or -1."""
        entry = self.producers.get(pid)
        if entry is None:
            entry = self.producers[pid] = ProducerEntry(epoch)
        if epoch != entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()
        first = entry.txn_first_offset
        entry.txn_first_offset = -1
        self.ongoing.pop(pid, None)
        entry.coordinator_epoch = coordinator_epoch
        entry.last_timestamp_ms = now_ms
        return first

    def check_marker_epoch(self, pid: int, epoch: int) -> None:
        """A marker from a coordinator with an older producer epoch is refused."""
        entry = self.producers.get(pid)
        if entry is not None and epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.invalid_producer_epoch,
                f"transaction marker for producer {pid} has epoch {epoch} below {entry.epoch}",
            )

    def first_unstable_offset(self) -> int | None:
        """First offset of the earliest open transaction, or None."""
        return min(self.ongoing.values()) if self.ongoing else None

    def expire(self, now_ms: int, max_idle_ms: int) -> int:
        """Forget producers idle for ``max_idle_ms`` with no open transaction (Kafka's
        ``producer.id.expiration.ms``); returns how many went."""
        doomed = [
            pid
            for pid, e in self.producers.items()
            if e.txn_first_offset < 0 and now_ms - e.last_timestamp_ms > max_idle_ms
        ]
        for pid in doomed:
            del self.producers[pid]
        return len(doomed)

    def truncate(self) -> None:
        self.producers.clear()
        self.ongoing.clear()

    # --- snapshot --------------------------------------------------------------------

    def to_json(self, offset: int) -> bytes:
        producers = {
            str(pid): {
                "epoch": e.epoch,
                "batches": [list(b) for b in e.batches],
                "txn_first_offset": e.txn_first_offset,
                "coordinator_epoch": e.coordinator_epoch,
                "last_timestamp_ms": e.last_timestamp_ms,
            }
            for pid, e in self.producers.items()
        }
        return json.dumps({"version": 1, "offset": offset, "producers": producers}).encode()

    def load(self, path: Path) -> int | None:
        """Load a snapshot; return the log offset it is valid up to, or None if unusable."""
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
            producers = {
                int(pid): ProducerEntry(
                    epoch=int(v["epoch"]),
                    batches=deque(
                        (tuple(int(x) for x in b) for b in v["batches"]),  # type: ignore[misc]
                        maxlen=CACHED_BATCHES,
                    ),
                    txn_first_offset=int(v["txn_first_offset"]),
                    coordinator_epoch=int(v["coordinator_epoch"]),
                    last_timestamp_ms=int(v["last_timestamp_ms"]),
                )
                for pid, v in data["producers"].items()
            }
            offset = int(data["offset"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None
        self.producers = producers
        self.ongoing = {
            pid: e.txn_first_offset for pid, e in producers.items() if e.txn_first_offset >= 0
        }
        return offset
