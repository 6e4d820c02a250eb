"""Rolling, flushing and the checkpoint: when a partition's data is known to be on disk.

Durability follows Kafka's topic configs:

* default (``flush.messages`` and ``flush.ms`` unset): no forced fsync; the OS writes
  pages back. A process crash loses nothing; a machine crash may lose the last seconds.
* ``flush.messages=N``: fsync after every N appended messages. ``flush.messages=1``
  means *durable*: ``append`` returns only after the data reached the disk.
* ``flush.ms=T``: :meth:`DurabilityMixin.maintain_flush` fsyncs when the oldest unflushed
  data is T ms old.

Rolling a segment does not wait for the disk: the sealed segment is fsynced by a
background thread (the :class:`LogManager`'s executor), and the recovery point moves past
it only once that fsync is done. :meth:`DurabilityMixin.flush` and ``close`` wait for them.
``log_start_offset``, the recovery point and the cleaner's progress live in a small
checkpoint file written atomically, so they survive restarts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

from broker.errors import ErrorCode, KafkaError
from broker.log.partition_base import PartitionBase
from broker.log.records import RawHeader
from broker.log.segment import Segment
from broker.log.topic_config import LONG_MAX

__all__ = [
    "CHECKPOINT_FILE",
    "DurabilityMixin",
    "RollSync",
    "default_executor",
    "fsync_and_close",
    "write_atomically",
]

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "partition.checkpoint"
_MAX_RELATIVE = 2**31 - 1
_INDEX_ENTRY_BYTES = 8

_fallback_lock = threading.Lock()
_fallback_executor: ThreadPoolExecutor | None = None


def default_executor() -> Executor:
    """Roll fsyncs of partitions opened without a :class:`LogManager` (tools, tests)."""
    global _fallback_executor
    with _fallback_lock:
        if _fallback_executor is None:
            _fallback_executor = ThreadPoolExecutor(2, thread_name_prefix="log-roll-fsync")
        return _fallback_executor


def fsync_and_close(fds: list[int]) -> None:
    """The background half of a roll: make the sealed segment durable."""
    try:
        for fd in fds:
            os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file, fsync, rename: a reader sees the old or the new file."""
    # One temporary name per thread: a roll's background checkpoint and a foreground
    # write never share (and truncate) one temporary file.
    tmp = path.with_name(f"{path.name}.{threading.get_native_id()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RollSync:
    """One sealed segment's pending background fsync."""

    __slots__ = ("cancelled", "done", "error", "future", "recovery_point")

    def __init__(self, recovery_point: int) -> None:
        self.recovery_point = recovery_point
        """Where the recovery point may move once this and every earlier one is done."""
        self.future: Future[None] | None = None
        self.done = False
        self.error: OSError | None = None
        self.cancelled = False
        """Set when the partition is deleted first: the fsync is skipped, fds closed."""


class DurabilityMixin(PartitionBase):
    """Segment rolls with their background fsync, flush policy, recovery point, checkpoint."""

    @property
    def recovery_point(self) -> int:
        """Offset below which the data is known fsynced: a crash rescans from here."""
        return self._recovery_point

    def write_checkpoint(self, recovery_point: int | None = None) -> None:
        """Persist log start, recovery point and cleaner progress.

        ``recovery_point`` sets the recovery point explicitly (moving it back makes the
        next unclean open rescan more); it first waits for pending roll fsyncs, which
        would move it forward again, so that form must not be called under the lock.
        """
        if recovery_point is not None:
            self.wait_for_roll_syncs()
        with self.lock:
            if recovery_point is not None:
                self._recovery_point = recovery_point
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        state = {
            "log_start_offset": self._log_start_offset,
            "recovery_point": self._recovery_point,
            "cleaner_offset": self.cleaner_offset,
            "cleaned_ms": {str(k): v for k, v in self.cleaned_ms.items()},
            "marker_ms": {str(k): v for k, v in self.marker_ms.items()},
        }
        write_atomically(self.directory / CHECKPOINT_FILE, json.dumps(state).encode())

    def _maybe_roll(self, size: int, batches: list[tuple[int, RawHeader]], now_ms: int) -> Segment:
        seg = self.segments[-1]
        if seg.size == 0:
            return seg
        cfg = self.config
        last = self.log_end_offset + sum(h[6] + 1 for _p, h in batches) - 1
        msg_ts = now_ms if cfg.log_append_time else max(h[8] for _p, h in batches)
        if (
            seg.size + size > cfg.segment_bytes
            or self._time_to_roll(seg, now_ms, msg_ts)
            or last - seg.base_offset > _MAX_RELATIVE
            or (len(seg.offset_index) + 1) * _INDEX_ENTRY_BYTES >= self.config.segment_index_bytes
        ):
            return self.roll(now_ms)
        return seg

    def _time_to_roll(self, seg: Segment, now_ms: int, msg_ts: int | None) -> bool:
        """``segment.ms`` as in Kafka: on append, the incoming batch's timestamp minus the
        first batch's (so replaying old data does not roll on every append); without an
        append (:meth:`maintain_roll`), the wall-clock age of the segment."""
        if seg.size == 0:
            return False
        if msg_ts is not None and seg.rolling_base_ms >= 0:
            waited = msg_ts - seg.rolling_base_ms
        else:
            waited = now_ms - (seg.created_ms if seg.created_ms >= 0 else now_ms)
        return waited > self.config.segment_ms - self.config.segment_jitter_ms

    def roll(self, now_ms: int = 0) -> Segment:
        """Seal the active segment and start a new one, without waiting for the disk.

        The sealed segment's fsync runs in the background (Kafka's "flush on roll,
        asynchronously"): a roll costs the caller no disk wait however large the segment.
        The recovery point moves to the new segment's base only once that fsync (and
        every earlier roll's) is done; until then a crash rescans the sealed segment.
        """
        with self.lock:
            old = self.segments[-1]
            if old.size == 0:
                return old
            fds = old.seal()
            self._unflushed_messages = 0
            self._last_flush_ms = now_ms
            try:
                seg = Segment(self.directory, self.log_end_offset, self.config.index_interval_bytes)
            except OSError:
                for fd in fds:
                    os.close(fd)
                raise
            self.segments.append(seg)
            self._bases.append(seg.base_offset)
            self._sync_in_background(fds, seg.base_offset)
            self.write_producer_snapshot()
            self.txn_index.flush()
            return seg

    def _sync_in_background(self, fds: list[int], recovery_point: int) -> None:
        entry = RollSync(recovery_point)
        self._pending_syncs.append(entry)
        try:
            entry.future = self._executor.submit(self._finish_roll, fds, entry)
        except RuntimeError:  # the executor is shut down: sync here instead
            self._finish_roll(fds, entry)

    def _finish_roll(self, fds: list[int], entry: RollSync) -> None:
        """fsync a sealed segment (off the caller's thread), then advance the recovery point."""
        if entry.cancelled:
            for fd in fds:
                os.close(fd)
            return
        try:
            fsync_and_close(fds)
        except OSError as e:
            log.error(
                "%s-%d: fsync of the segment before offset %d failed: %s",
                self.topic,
                self.partition,
                entry.recovery_point,
                e,
            )
            with self.lock:
                entry.error = e
                entry.done = True
            return
        with self.lock:
            entry.done = True
            point = None
            pending = self._pending_syncs
            while pending and pending[0].done and pending[0].error is None:
                point = pending.popleft().recovery_point
            if point is not None and point > self._recovery_point and not self._closed:
                self._recovery_point = point
                self.write_checkpoint()

    def wait_for_roll_syncs(self) -> None:
        """Block until the fsyncs of sealed segments started so far are done.

        Raises ``KAFKA_STORAGE_ERROR`` when one of them failed: that data is not known
        to be on disk.
        """
        while True:
            with self.lock:
                waiting = [e.future for e in self._pending_syncs if not e.done and e.future]
                failed = [e for e in self._pending_syncs if e.error is not None]
            if failed:
                raise KafkaError(
                    ErrorCode.kafka_storage_error,
                    f"fsync of {self.topic}-{self.partition} before offset "
                    f"{failed[0].recovery_point} failed: {failed[0].error}",
                )
            if not waiting:
                return
            for future in waiting:
                future.exception()  # waits; the outcome is read from the entry

    def flush(self, now_ms: int | None = None) -> None:
        """fsync every segment with unflushed appends (waiting for pending roll fsyncs).

        The fsync runs outside the partition lock on duplicated fds, so appends and
        reads in other threads go on while the disk syncs (group commit relies on it).
        """
        self.wait_for_roll_syncs()
        fds: list[int] = []
        with self.lock:
            try:
                for seg in self.segments:
                    if seg.unflushed:
                        fds.extend(seg.dup_fds())
                        seg.unflushed = False
            except OSError:
                for fd in fds:
                    os.close(fd)
                raise
            self._unflushed_messages = 0
            if now_ms is not None:
                self._last_flush_ms = now_ms
        try:
            for fd in fds:
                os.fsync(fd)
        finally:
            for fd in fds:
                os.close(fd)

    def maintain_flush(self, now_ms: int) -> None:
        """``flush.ms``: fsync when unflushed data waited that long."""
        if self.config.flush_ms == LONG_MAX:
            return
        with self.lock:
            unflushed = self.segments[-1].unflushed
            due = unflushed and now_ms - self._last_flush_ms >= self.config.flush_ms
            if not unflushed:
                self._last_flush_ms = now_ms
        if due:
            self.flush(now_ms)

    def maintain_roll(self, now_ms: int) -> None:
        """``segment.ms``: roll an old active segment even when no append arrives."""
        with self.lock:
            if self._time_to_roll(self.segments[-1], now_ms, None):
                self.roll(now_ms)
