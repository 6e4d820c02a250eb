"""One partition's log: a directory ``<topic>-<partition>/`` of segments.

:class:`Partition` is one object assembled from mixins, one module per job:

* :mod:`broker.log.partition_append`: the append path (checks, offsets, one ``writev``);
* :mod:`broker.log.partition_read`: fetch reads and timestamp lookups;
* :mod:`broker.log.partition_txn`: producer state, control batches, LSO, aborted index;
* :mod:`broker.log.partition_durability`: rolls, fsyncs, recovery point, checkpoint;
* :mod:`broker.log.partition_recovery`: opening the directory after a clean or unclean stop.

This module holds the constructor, the segment list's upkeep (retention, DeleteRecords,
the cleaner's swaps) and the lifecycle (close, remove). It also re-exports the helpers
and file names other modules and tools import from here.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from broker.errors import ErrorCode, KafkaError
from broker.log.partition_append import AppendMixin
from broker.log.partition_durability import (
    CHECKPOINT_FILE,
    DurabilityMixin,
    RollSync,
    default_executor,
    fsync_and_close,
    write_atomically,
)
from broker.log.partition_read import ReadMixin
from broker.log.partition_recovery import CLEAN_SHUTDOWN_FILE, RecoveryMixin
from broker.log.partition_txn import ABORT_MARKER, COMMIT_MARKER, TransactionsMixin, control_type
from broker.log.segment import Segment
from broker.log.topic_config import TopicConfig

__all__ = [
    "ABORT_MARKER",
    "CHECKPOINT_FILE",
    "CLEAN_SHUTDOWN_FILE",
    "COMMIT_MARKER",
    "Partition",
    "control_type",
    "write_atomically",
]

log = logging.getLogger(__name__)


class Partition(AppendMixin, ReadMixin, TransactionsMixin, DurabilityMixin, RecoveryMixin):
    """The file-backed :class:`~broker.log.interface.PartitionLog`."""

    def __init__(
        self,
        directory: Path,
        topic: str,
        partition: int,
        config: TopicConfig,
        *,
        now_ms: int = 0,
        notify: Callable[[str, int], None] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.directory = directory
        self.config = config
        self.leader_epoch = 0
        """Written into each appended batch's partitionLeaderEpoch, as a Kafka leader does."""
        self.notify = notify
        """Called with (topic, partition) after each successful append."""
        self.caller_syncs_durable = False
        """True when the caller fsyncs ``flush.messages=1`` appends itself (group commit):
        ``append`` then skips its own fsync for them and the caller must call :meth:`flush`
        before acknowledging."""
        self.lock = threading.RLock()
        self._executor = executor if executor is not None else default_executor()
        """Runs the data fsync of each sealed segment (see :meth:`roll`)."""
        self._pending_syncs: deque[RollSync] = deque()
        self._recovery_point = 0
        """Offset below which every batch is known fsynced (kept in the checkpoint)."""
        self._closed = False
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self._unflushed_messages = 0
        self._last_flush_ms = now_ms
        self.cleaner_offset = 0
        """First offset the cleaner has not compacted yet (the dirty section's start)."""
        self.cleaned_ms: dict[int, int] = {}
        """Segment base offset → when the cleaner first rewrote it (tombstone clock)."""
        self.marker_ms: dict[int, int] = {}
        """Transaction marker offset → when the cleaner found no data of its transaction
        left (the marker's ``delete.retention.ms`` clock)."""
        directory.mkdir(parents=True, exist_ok=True)
        self._open()

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def active(self) -> Segment:
        return self.segments[-1]

    def delete_oldest_segments(self, count: int, reason: str) -> int:
        """Delete the ``count`` oldest segments (rolling first if that includes the active)."""
        with self.lock:
            if count <= 0:
                return 0
            if count >= len(self.segments):
                self.roll()
                count = min(count, len(self.segments) - 1)
            doomed = self.segments[:count]
            self.segments = self.segments[count:]
            self._bases = self._bases[count:]
            new_start = self.segments[0].base_offset
            if new_start > self._log_start_offset:
                self._log_start_offset = new_start
            self.cleaner_offset = max(self.cleaner_offset, self._log_start_offset)
            self.txn_index.prune_below(self._log_start_offset)
            for seg in doomed:
                self.cleaned_ms.pop(seg.base_offset, None)
                log.info(
                    "%s-%d: deleting segment %d (%d bytes) by %s",
                    self.topic,
                    self.partition,
                    seg.base_offset,
                    seg.size,
                    reason,
                )
                seg.delete()
            self.write_checkpoint()
            return len(doomed)

    def delete_records_before(self, offset: int) -> int:
        """Advance the log start offset (DeleteRecords); whole segments go at retention."""
        with self.lock:
            end = self.log_end_offset
            if offset == -1:
                offset = end
            if offset < 0 or offset > end:
                raise KafkaError(
                    ErrorCode.offset_out_of_range,
                    f"cannot delete records before {offset} of {self.topic}-{self.partition}: "
                    f"the log ends at {end}",
                )
            if offset > self._log_start_offset:
                self._log_start_offset = offset
                self.write_checkpoint()
            return self._log_start_offset

    def replace_segment(self, old: Segment, new: Segment) -> None:
        """Swap in a rewritten segment object (the cleaner renamed the files already)."""
        with self.lock:
            i = self.segments.index(old)
            self.segments[i] = new

    # --- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Flush, record everything as recovered and leave a clean-shutdown marker."""
        self.wait_for_roll_syncs()
        with self.lock:
            self._closed = True
            fsync_and_close(self.segments[-1].seal())
            for seg in self.segments:
                if seg.unflushed:
                    seg.flush()
            self._recovery_point = self.log_end_offset
            self.write_checkpoint()
            self.write_producer_snapshot()
            self.txn_index.flush()
            for seg in self.segments:
                seg.close()
            write_atomically(self.directory / CLEAN_SHUTDOWN_FILE, b"")

    def remove(self) -> None:
        """Delete all files of this partition (topic deletion).

        Roll fsyncs not started yet are skipped (their worker only closes the duplicated
        fds); running ones finish harmlessly on the unlinked files and write no checkpoint.
        """
        with self.lock:
            self._closed = True
            for entry in self._pending_syncs:
                entry.cancelled = True
            self._pending_syncs.clear()
            for seg in self.segments:
                seg.close()
            self.segments = []
            shutil.rmtree(self.directory, ignore_errors=True)
