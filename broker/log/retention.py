"""Delete-policy retention: whole segments go by age, by total size, or below the start offset.

As in Kafka, only a prefix of the log is ever deleted (oldest segments first) and never
part of a segment; the log start offset then moves to the first remaining segment. A
limit of ``-1`` disables that rule. When the active segment itself is due it is rolled
first, so retention never deletes the segment being written.
"""

from __future__ import annotations

from broker.log.partition import Partition

__all__ = ["apply_retention"]


def apply_retention(part: Partition, now_ms: int) -> int:
    """Delete the segments that retention allows; return how many were deleted."""
    deleted = _below_start(part)
    cfg = part.config
    if not cfg.delete:
        return deleted
    if cfg.retention_ms >= 0:
        deleted += _by_time(part, now_ms, cfg.retention_ms)
    if cfg.retention_bytes >= 0:
        deleted += _by_size(part, cfg.retention_bytes)
    return deleted


def _below_start(part: Partition) -> int:
    """Segments entirely below the log start offset (after DeleteRecords)."""
    with part.lock:
        start = part.log_start_offset
        segs = part.segments
        n = 0
        while n + 1 < len(segs) and segs[n + 1].base_offset <= start:
            n += 1
    return part.delete_oldest_segments(n, "log start offset") if n else 0


def _by_time(part: Partition, now_ms: int, retention_ms: int) -> int:
    with part.lock:
        n = 0
        segs = part.segments
        for i, seg in enumerate(segs):
            if seg.size == 0:
                if i == len(segs) - 1:
                    break  # the empty active segment
            elif now_ms - seg.max_timestamp <= retention_ms:
                break
            n += 1
    return part.delete_oldest_segments(n, f"retention.ms={retention_ms}") if n else 0


def _by_size(part: Partition, retention_bytes: int) -> int:
    with part.lock:
        excess = part.size_bytes - retention_bytes
        n = 0
        for seg in part.segments[:-1]:
            if excess - seg.size < 0:
                break
            excess -= seg.size
            n += 1
    return part.delete_oldest_segments(n, f"retention.bytes={retention_bytes}") if n else 0
