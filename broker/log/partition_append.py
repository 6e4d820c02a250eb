"""The append path of a partition's log: validate, assign offsets, write.

No per-record work unless the topic is compacted: parse each batch header, check size and
CRC-32C on the request's bytes, build a small patched header per batch (base offset and
leader epoch; for LogAppendTime topics also the timestamp and CRC), then one ``writev`` of
[patched header, view of the unchanged rest] pieces to the active segment, so the payload
is never copied. Idempotent producers' sequences are checked before anything is written;
a retried batch gets its original offsets back.
"""

from __future__ import annotations

import struct

from crc32c import crc32c

from broker.errors import ErrorCode, KafkaError
from broker.log.interface import AppendInfo
from broker.log.partition_base import PartitionBase
from broker.log.producer_state import next_sequence
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
    check_crc,
    iter_keys,
    split_batches,
)
from broker.log.topic_config import LONG_MAX

__all__ = ["AppendMixin"]

_offset_epoch = struct.Struct(">qii")
"""baseOffset, batchLength (unchanged), partitionLeaderEpoch: the patched head of a batch."""
_pack_offset_epoch = _offset_epoch.pack
_pack_offset_epoch_into = _offset_epoch.pack_into
_PATCHED_HEAD = _offset_epoch.size
_pack_attributes = struct.Struct(">h").pack_into
_pack_timestamp = struct.Struct(">q").pack_into
_pack_crc = struct.Struct(">I").pack_into


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


class AppendMixin(PartitionBase):
    """Client appends: per-batch checks, idempotence, offset assignment, one ``writev``."""

    def append(self, records: bytes, *, now_ms: int) -> AppendInfo:
        return self._append(records, now_ms, None)

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
