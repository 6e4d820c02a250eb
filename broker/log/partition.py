"""One partition's log: a directory ``<topic>-<partition>/`` of segments.

Append path (no per-record work unless the topic is compacted): parse each batch header,
check size and CRC-32C on the request's bytes, build a small patched header per batch
(base offset and leader epoch; for LogAppendTime topics also the timestamp and CRC), then
one ``writev`` of [patched header, view of the unchanged rest] pieces to the active
segment, so the payload is never copied. Read path: locate the batch holding the offset
through the sparse index, then one ``pread`` per segment of whole batches.

Durability follows Kafka's topic configs:

* default (``flush.messages`` and ``flush.ms`` unset): no forced fsync; the OS writes
  pages back. A process crash loses nothing; a machine crash may lose the last seconds.
* ``flush.messages=N``: fsync after every N appended messages. ``flush.messages=1``
  means *durable*: ``append`` returns only after the data reached the disk.
* ``flush.ms=T``: :meth:`maintain` fsyncs when the oldest unflushed data is T ms old.

Rolling a segment does not wait for the disk: the sealed segment is fsynced by a
background thread (the :class:`LogManager`'s executor), and the recovery point moves past
it only once that fsync is done. :meth:`Partition.flush` and ``close`` wait for them.

Recovery: ``close`` writes a clean-shutdown marker; without it, opening rescans every
segment from the last flushed one (the recovery point), checks each batch's length and
CRC, truncates a torn or corrupt tail (logged) and rebuilds that segment's indexes.
``log_start_offset``, the recovery point and the cleaner's progress live in a small
checkpoint file written atomically, so they survive restarts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from crc32c import crc32c

from broker.errors import ErrorCode, KafkaError
from broker.log.interface import AppendInfo
from broker.log.producer_state import (
    PRODUCER_ID_EXPIRATION_MS,
    SNAPSHOT_FILE,
    ProducerStateManager,
    next_sequence,
)
from broker.log.records import (
    ATTRIBUTES_OFFSET,
    CONTROL_BIT,
    CRC_OFFSET,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAX_TIMESTAMP_OFFSET,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
    BatchHeader,
    RawHeader,
    Record,
    build_batch,
    check_crc,
    decode_records,
    iter_keys,
    split_batches,
)
from broker.log.segment import Segment
from broker.log.topic_config import LONG_MAX, TopicConfig
from broker.log.txn_index import TxnIndex

__all__ = ["CHECKPOINT_FILE", "CLEAN_SHUTDOWN_FILE", "Partition", "control_type"]

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "partition.checkpoint"
CLEAN_SHUTDOWN_FILE = ".clean_shutdown"
_MAX_RELATIVE = 2**31 - 1
_INDEX_ENTRY_BYTES = 8


_offset_epoch = struct.Struct(">qii")
"""baseOffset, batchLength (unchanged), partitionLeaderEpoch: the patched head of a batch."""
_pack_offset_epoch = _offset_epoch.pack
_pack_offset_epoch_into = _offset_epoch.pack_into
_PATCHED_HEAD = _offset_epoch.size
_pack_attributes = struct.Struct(">h").pack_into
_pack_timestamp = struct.Struct(">q").pack_into
_pack_crc = struct.Struct(">I").pack_into

_fallback_lock = threading.Lock()
_fallback_executor: ThreadPoolExecutor | None = None


def _default_executor() -> Executor:
    """Roll fsyncs of partitions opened without a :class:`LogManager` (tools, tests)."""
    global _fallback_executor
    with _fallback_lock:
        if _fallback_executor is None:
            _fallback_executor = ThreadPoolExecutor(2, thread_name_prefix="log-roll-fsync")
        return _fallback_executor


def _fsync_and_close(fds: list[int]) -> None:
    """The background half of a roll: make the sealed segment durable."""
    try:
        for fd in fds:
            os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)


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


def _log_append_time_head(
    mv: memoryview, pos: int, size: int, offset: int, epoch: int, now_ms: int
) -> tuple[bytearray, memoryview]:
    """The batch at ``pos`` as a patched copy of its header plus a view of its records.

    Base offset and leader epoch as for any batch; then LogAppendTime (attributes bit and
    ``now_ms`` as max timestamp) and the CRC, computed over the patched header tail and
    the unchanged records, so only the 61 header bytes are copied.
    """
    head = bytearray(mv[pos : pos + HEADER_SIZE])
    attributes = struct.unpack_from(">h", head, ATTRIBUTES_OFFSET)[0]
    _pack_offset_epoch_into(head, 0, offset, size - LOG_OVERHEAD, epoch)
    _pack_attributes(head, ATTRIBUTES_OFFSET, attributes | TIMESTAMP_TYPE_BIT)
    _pack_timestamp(head, MAX_TIMESTAMP_OFFSET, now_ms)
    body = mv[pos + HEADER_SIZE : pos + size]
    crc = crc32c(body, crc32c(memoryview(head)[ATTRIBUTES_OFFSET:]))
    _pack_crc(head, CRC_OFFSET, crc)
    return head, body


class _RollSync:
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


class Partition:
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
        self._executor = executor if executor is not None else _default_executor()
        """Runs the data fsync of each sealed segment (see :meth:`roll`)."""
        self._pending_syncs: deque[_RollSync] = deque()
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

    # --- open / recovery -------------------------------------------------------------

    def _open(self) -> None:
        d = self.directory
        marker = d / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        state = self._read_checkpoint()
        recovery_point = int(state.get("recovery_point", 0))
        self.cleaner_offset = int(state.get("cleaner_offset", 0))
        self.cleaned_ms = {int(k): int(v) for k, v in state.get("cleaned_ms", {}).items()}
        self.marker_ms = {int(k): int(v) for k, v in state.get("marker_ms", {}).items()}
        for tmp in d.glob("*.cleaned"):
            tmp.unlink()
        must_recover: set[int] = set()
        for swap in d.glob("*.log.swap"):
            base = int(swap.name.split(".")[0])
            for ext in (".index", ".timeindex"):
                (d / f"{swap.name.split('.')[0]}{ext}").unlink(missing_ok=True)
            os.replace(swap, d / f"{swap.name.split('.')[0]}.log")
            must_recover.add(base)
        bases = sorted(int(p.name.split(".")[0]) for p in d.glob("*.log"))
        if not bases:
            bases = [int(state.get("log_start_offset", 0))]
        truncated = False
        for i, base in enumerate(bases):
            if truncated:
                log.warning("%s: deleting segment %d after a truncated one", d, base)
                Segment(d, base, 1).delete()
                continue
            nxt = bases[i + 1] if i + 1 < len(bases) else None
            recover = base in must_recover or (not clean and (nxt is None or nxt > recovery_point))
            seg = Segment(d, base, self.config.index_interval_bytes)
            if recover or not (seg.offset_index.load() and seg.time_index.load()):
                if seg.recover():
                    truncated = True
            elif not seg.load_tail():
                log.warning("%s: segment %d is damaged despite a clean shutdown", d, base)
                if seg.recover():
                    truncated = True
            self.segments.append(seg)
        self._bases = [s.base_offset for s in self.segments]
        if self.segments[-1].size:
            self.segments[-1].created_ms = self._last_flush_ms  # the open time, as in Kafka
        if clean:
            marker.unlink()
        self._log_start_offset = min(
            max(int(state.get("log_start_offset", 0)), self.segments[0].base_offset),
            self.log_end_offset,
        )
        if self.cleaner_offset < self._log_start_offset:
            self.cleaner_offset = self._log_start_offset
        self._recovery_point = self.segments[-1].base_offset
        self.write_checkpoint()
        self._load_producer_state()

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

    def _read_checkpoint(self) -> dict[str, Any]:
        path = self.directory / CHECKPOINT_FILE
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
            return data
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("%s: unreadable checkpoint, recovering all segments", path)
            return {"recovery_point": 0}

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

    # --- offsets ---------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def last_stable_offset(self) -> int:
        with self.lock:
            first = self.producer_state.first_unstable_offset()
            return self.log_end_offset if first is None else first

    def aborted_transactions(self, start: int, end: int) -> list[tuple[int, int]]:
        """``(producer id, first offset)`` of aborted transactions touching ``[start, end)``."""
        with self.lock:
            return [(e[0], e[1]) for e in self.txn_index.overlapping(start, end)]

    @property
    def recovery_point(self) -> int:
        """Offset below which the data is known fsynced: a crash rescans from here."""
        return self._recovery_point

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def active(self) -> Segment:
        return self.segments[-1]

    # --- append ----------------------------------------------------------------------

    def append(self, records: bytes, *, now_ms: int) -> AppendInfo:
        return self._append(records, now_ms, None)

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

    def _check_producers(
        self, batches: list[tuple[int, RawHeader]], now_ms: int
    ) -> tuple[int, int] | None:
        """Idempotence checks, per batch; the original offsets when the request is a retry."""
        state = self.producer_state
        seen: dict[int, tuple[int, int]] = {}
        dup: tuple[int, int] | None = None
        for _pos, h in batches:
            pid = h[9]
            if pid < 0:
                if h[5] & TRANSACTIONAL_BIT:
                    raise KafkaError(
                        ErrorCode.invalid_record,
                        f"transactional batch for {self.topic}-{self.partition} has no producer id",
                    )
                continue
            first_seq = h[11]
            last_seq = next_sequence(first_seq, h[6]) if first_seq >= 0 else -1
            prev = seen.get(pid)
            if prev is not None:
                if h[10] != prev[0] or first_seq != next_sequence(prev[1], 1):
                    raise KafkaError(
                        ErrorCode.out_of_order_sequence_number,
                        f"producer {pid}: batches of one request to {self.topic}-"
                        f"{self.partition} are not in sequence",
                    )
            elif first_seq >= 0:
                found = state.check(pid, h[10], first_seq, last_seq, now_ms=now_ms)
                if found is not None:
                    if len(batches) != 1:
                        raise KafkaError(
                            ErrorCode.duplicate_sequence_number,
                            f"producer {pid} resent a batch to {self.topic}-{self.partition} "
                            "together with new ones",
                        )
                    dup = found
            else:
                state.check_marker_epoch(pid, h[10])
            seen[pid] = (h[10], last_seq)
        return dup

    def _append(
        self, records: bytes, now_ms: int, marker: tuple[int, int, int, int] | None
    ) -> AppendInfo:
        cfg = self.config
        batches = split_batches(records)
        if marker is None:
            for _pos, h in batches:
                if h[5] & CONTROL_BIT:
                    raise KafkaError(
                        ErrorCode.invalid_record,
                        f"clients may not write control batches ({self.topic}-{self.partition})",
                    )
        mv = memoryview(records)
        count = 0
        max_size = cfg.max_message_bytes
        check_ts = not cfg.log_append_time and self._timestamp_limits_set
        for pos, h in batches:
            size = h[1] + LOG_OVERHEAD
            if size > max_size:
                raise KafkaError(
                    ErrorCode.message_too_large,
                    f"record batch of {size} bytes exceeds max.message.bytes "
                    f"{max_size} of {self.topic}-{self.partition}",
                )
            if crc32c(mv[pos + ATTRIBUTES_OFFSET : pos + size]) != h[4]:
                check_crc(mv, pos, BatchHeader._make(h))  # raises with the details
            if check_ts:
                self._check_timestamps(BatchHeader._make(h), now_ms)
            if cfg.compact and not h[5] & CONTROL_BIT:
                for key in iter_keys(mv[pos : pos + size]):
                    if key is None:
                        raise KafkaError(
                            ErrorCode(87),
                            f"compacted topic {self.topic} requires a key on every record "
                            f"(partition {self.partition})",
                        )
            count += h[12]
        log_append_ms = now_ms if cfg.log_append_time else -1
        with self.lock:
            if marker is not None:
                self.producer_state.check_marker_epoch(marker[0], marker[1])
            else:
                dup = self._check_producers(batches, now_ms)
                if dup is not None:
                    return AppendInfo(
                        base_offset=dup[0],
                        last_offset=dup[1],
                        log_append_time_ms=-1,
                        log_start_offset=self._log_start_offset,
                        record_count=count,
                    )
            seg = self._maybe_roll(len(mv), batches, now_ms)
            offset = self.log_end_offset
            first = offset
            epoch = self.leader_epoch
            entries: list[tuple[int, int, int, int]] = []
            pieces: list[bytes | memoryview] = []
            append_time = cfg.log_append_time
            for pos, h in batches:
                size = h[1] + LOG_OVERHEAD
                if append_time:
                    head, body = _log_append_time_head(mv, pos, size, offset, epoch, now_ms)
                    pieces.append(memoryview(head))
                    pieces.append(body)
                    entries.append((pos, offset, now_ms, size))
                else:
                    pieces.append(_pack_offset_epoch(offset, h[1], epoch))
                    pieces.append(mv[pos + _PATCHED_HEAD : pos + size])
                    entries.append((pos, offset, h[8], size))
                if h[9] >= 0 and marker is None:
                    self.producer_state.update(
                        h[9],
                        h[10],
                        h[11],
                        next_sequence(h[11], h[6]) if h[11] >= 0 else -1,
                        offset,
                        offset + h[6],
                        transactional=bool(h[5] & TRANSACTIONAL_BIT),
                        now_ms=now_ms,
                    )
                offset += h[6] + 1
            if seg.created_ms < 0:
                seg.created_ms = now_ms
            seg.append(pieces, len(mv), entries, offset)
            if marker is not None:
                self._record_marker(marker[0], marker[1], marker[2], marker[3], first, now_ms)
            self._unflushed_messages += count
            must_flush = self._unflushed_messages >= cfg.flush_messages and not (
                self.caller_syncs_durable and cfg.flush_messages == 1
            )
            info = AppendInfo(
                base_offset=first,
                last_offset=offset - 1,
                log_append_time_ms=log_append_ms,
                log_start_offset=self._log_start_offset,
                record_count=count,
            )
        if must_flush:
            self.flush(now_ms)
        if self.notify is not None:
            self.notify(self.topic, self.partition)
        return info

    @property
    def _timestamp_limits_set(self) -> bool:
        cfg = self.config
        return (
            cfg.timestamp_difference_max_ms != LONG_MAX
            or cfg.timestamp_before_max_ms != LONG_MAX
            or cfg.timestamp_after_max_ms != LONG_MAX
        )

    def _check_timestamps(self, h: BatchHeader, now_ms: int) -> None:
        cfg = self.config
        before = min(cfg.timestamp_difference_max_ms, cfg.timestamp_before_max_ms)
        after = min(cfg.timestamp_difference_max_ms, cfg.timestamp_after_max_ms)
        if before == LONG_MAX and after == LONG_MAX:
            return
        for ts in (h.base_timestamp, h.max_timestamp):
            if now_ms - ts > before or ts - now_ms > after:
                raise KafkaError(
                    ErrorCode.invalid_timestamp,
                    f"timestamp {ts} of batch for {self.topic}-{self.partition} is too far "
                    f"from the broker's time {now_ms} (message.timestamp.*.max.ms)",
                )

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
        entry = _RollSync(recovery_point)
        self._pending_syncs.append(entry)
        try:
            entry.future = self._executor.submit(self._finish_roll, fds, entry)
        except RuntimeError:  # the executor is shut down: sync here instead
            self._finish_roll(fds, entry)

    def _finish_roll(self, fds: list[int], entry: _RollSync) -> None:
        """fsync a sealed segment (off the caller's thread), then advance the recovery point."""
        if entry.cancelled:
            for fd in fds:
                os.close(fd)
            return
        try:
            _fsync_and_close(fds)
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

    # --- read ------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, *, upper_bound: int | None = None) -> bytes:
        with self.lock:
            end_offset = self.log_end_offset
            if offset < self._log_start_offset or offset > end_offset:
                raise KafkaError(
                    ErrorCode.offset_out_of_range,
                    f"offset {offset} is outside {self.topic}-{self.partition}'s range "
                    f"[{self._log_start_offset}, {end_offset}]",
                )
            if offset == end_offset or (upper_bound is not None and offset >= upper_bound):
                return b""
            parts: list[bytes] = []
            remaining = max_bytes
            i = max(bisect_right(self._bases, offset) - 1, 0)
            while i < len(self.segments):
                seg = self.segments[i]
                i += 1
                loc = seg.locate(offset)
                if loc is None:
                    continue
                start = loc[0]
                if parts:
                    end = seg.end_position(start, remaining)
                    if end == start or end - start > remaining:
                        break
                else:
                    end = seg.end_position(start, max(remaining, 0))
                stop = False
                if upper_bound is not None and upper_bound < seg.next_offset:
                    ub = seg.locate(upper_bound)
                    if ub is not None:
                        p, h = ub
                        ub_end = p if h.base_offset >= upper_bound else p + h.size
                        if ub_end < end:
                            end, stop = ub_end, True
                if end <= start:
                    break
                parts.append(seg.read(start, end))
                remaining -= end - start
                if stop or end < seg.size or remaining <= 0:
                    break
                offset = seg.next_offset
            return b"".join(parts)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        with self.lock:
            lso = self._log_start_offset
            for seg in self.segments:
                if seg.max_timestamp < timestamp_ms or seg.next_offset <= lso:
                    continue
                _r, pos = seg.offset_index.floor(seg.time_index.below(timestamp_ms))
                for p, h in seg.scan(pos):
                    if h.max_timestamp < timestamp_ms or h.last_offset < lso:
                        continue
                    if h.log_append_time:
                        return max(h.base_offset, lso), h.max_timestamp
                    for r in decode_records(seg.read(p, p + h.size)):
                        if r.timestamp >= timestamp_ms and r.offset >= lso:
                            return r.offset, r.timestamp
            return None

    def max_timestamp_entry(self) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the record with the largest timestamp (ListOffsets -3)."""
        with self.lock:
            live = [s for s in self.segments if s.size and s.next_offset > self._log_start_offset]
            if not live:
                return None
            seg = max(live, key=lambda s: s.max_timestamp)
            loc = seg.locate(max(seg.offset_of_max_timestamp, self._log_start_offset))
            if loc is None:
                return None
            p, h = loc
            if h.log_append_time:
                return h.last_offset, h.max_timestamp
            best: tuple[int, int] | None = None
            for r in decode_records(seg.read(p, p + h.size)):
                if r.offset >= self._log_start_offset and (best is None or r.timestamp > best[1]):
                    best = (r.offset, r.timestamp)
            return best

    # --- flush / maintenance ---------------------------------------------------------

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

    def expire_producers(self, now_ms: int, max_idle_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        """Forget idle producers so the table (and snapshot) does not grow forever."""
        with self.lock:
            self.producer_state.expire(now_ms, max_idle_ms)

    def maintain_roll(self, now_ms: int) -> None:
        """``segment.ms``: roll an old active segment even when no append arrives."""
        with self.lock:
            if self._time_to_roll(self.segments[-1], now_ms, None):
                self.roll(now_ms)

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
            _fsync_and_close(self.segments[-1].seal())
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
