"""Log compaction (``cleanup.policy=compact`` or ``compact,delete``).

Only closed segments are cleaned, and only those whose newest record is at least
``min.compaction.lag.ms`` old. A pass:

1. builds an offset map ``key → latest offset`` over the dirty section (closed segments
   from the cleaner checkpoint on);
2. rewrites every cleanable segment keeping a record only if no newer record with its key
   exists in the dirty section. Offsets never change: a rewritten batch keeps its base
   offset and its original offset range (it may become sparse), batches left empty are
   dropped, untouched batches are copied byte for byte;
3. tombstones (null values) survive until ``delete.retention.ms`` after the pass that
   first cleaned their segment, so consumers that read slowly still see the delete;
4. writes ``<base>.log.cleaned``, fsyncs it, renames it to ``.log.swap`` (the commit
   point) and then over ``.log``; a crash before the swap leaves the old segment (the
   ``.cleaned`` file is discarded at open), after it the open completes the swap and
   rebuilds the indexes.

Control batches and transactional batches are kept as they are for now.

A pass is due when the dirty share of the cleanable bytes reaches
``min.cleanable.dirty.ratio``, when dirty data is older than ``max.compaction.lag.ms``,
or when retained tombstones have expired; :func:`clean` also runs on demand.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from broker.log.partition import Partition
from broker.log.records import LOG_OVERHEAD, BatchHeader, Record, build_batch, decode_records
from broker.log.segment import Segment, segment_name
from broker.log.topic_config import LONG_MAX

__all__ = ["CleanResult", "clean", "should_clean"]

log = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CleanResult:
    segments_rewritten: int
    records_removed: int
    bytes_before: int
    bytes_after: int


def _cleanable(part: Partition, now_ms: int) -> list[Segment]:
    """Closed segments old enough to clean, oldest first."""
    lag = part.config.min_compaction_lag_ms
    out: list[Segment] = []
    for seg in part.segments[:-1]:
        if lag > 0 and seg.size and now_ms - seg.max_timestamp < lag:
            break
        out.append(seg)
    return out


def _segment_end(part: Partition, seg: Segment) -> int:
    """The first offset after ``seg``'s range: the next segment's base."""
    i = part.segments.index(seg)
    return part.segments[i + 1].base_offset if i + 1 < len(part.segments) else seg.next_offset


def should_clean(part: Partition, now_ms: int) -> bool:
    """Whether a compaction pass is due for this partition now."""
    cfg = part.config
    if not cfg.compact:
        return False
    with part.lock:
        segs = _cleanable(part, now_ms)
        if not segs:
            return False
        dirty = [s for s in segs if _segment_end(part, s) > part.cleaner_offset]
        total = sum(s.size for s in segs)
        dirty_bytes = sum(s.size for s in dirty)
        if dirty_bytes and total and dirty_bytes / total >= cfg.min_cleanable_dirty_ratio:
            return True
        if cfg.max_compaction_lag_ms != LONG_MAX and any(
            s.rolling_base_ms >= 0 and now_ms - s.rolling_base_ms > cfg.max_compaction_lag_ms
            for s in dirty
        ):
            return True
        return any(
            now_ms - t > cfg.delete_retention_ms
            for base, t in part.cleaned_ms.items()
            if any(s.base_offset == base for s in segs)
        )


def _batches(seg: Segment) -> Iterator[tuple[BatchHeader, bytes]]:
    """Each batch of a closed segment with its bytes, read in large chunks."""
    pos = 0
    while pos < seg.size:
        chunk = seg.read(pos, min(seg.size, pos + _CHUNK))
        consumed = 0
        for p, h in seg.scan(pos):
            size = h.batch_length + LOG_OVERHEAD
            rel = p - pos
            if rel + size > len(chunk):
                if rel == 0:  # a single batch larger than the chunk
                    yield h, seg.read(p, p + size)
                    consumed = size
                break
            yield h, chunk[rel : rel + size]
            consumed = rel + size
        if consumed == 0:
            return
        pos += consumed


def clean(part: Partition, now_ms: int) -> CleanResult:
    """Run one compaction pass over the cleanable segments of ``part``."""
    cfg = part.config
    with part.lock:
        segs = _cleanable(part, now_ms)
        if not segs:
            return CleanResult(0, 0, 0, 0)
        dirty = [s for s in segs if _segment_end(part, s) > part.cleaner_offset]
        end_of_cleanable = _segment_end(part, segs[-1])
    # 1. offset map over the dirty section
    latest: dict[bytes | None, int] = {}
    for seg in dirty:
        for h, raw in _batches(seg):
            if h.is_control or h.is_transactional:
                continue
            for r in decode_records(raw):
                latest[r.key] = r.offset
    # 2. rewrite
    rewritten = removed = before = after = 0
    for seg in segs:
        first_clean = seg.base_offset not in part.cleaned_ms
        stamp = part.cleaned_ms.get(seg.base_offset, now_ms)
        drop_tombstones = not first_clean and now_ms - stamp > cfg.delete_retention_ms
        n_removed, has_tombstones, new_size = _rewrite(part, seg, latest, drop_tombstones)
        if has_tombstones:
            part.cleaned_ms[seg.base_offset] = stamp
        else:
            part.cleaned_ms.pop(seg.base_offset, None)
        before += seg.size
        after += new_size
        if n_removed:
            rewritten += 1
            removed += n_removed
    with part.lock:
        part.cleaner_offset = max(part.cleaner_offset, end_of_cleanable)
        part.write_checkpoint()
    if removed:
        log.info(
            "%s-%d: compacted %d segments, removed %d records, %d -> %d bytes",
            part.topic,
            part.partition,
            rewritten,
            removed,
            before,
            after,
        )
    return CleanResult(rewritten, removed, before, after)


def _rewrite(
    part: Partition, seg: Segment, latest: dict[bytes | None, int], drop_tombstones: bool
) -> tuple[int, bool, int]:
    """Rewrite one segment; return (records removed, tombstones left, new size)."""
    name = segment_name(seg.base_offset)
    cleaned_path = part.directory / f"{name}.log.cleaned"
    removed = 0
    tombstones = False
    size = 0
    with open(cleaned_path, "wb") as out:
        for h, raw in _batches(seg):
            if h.is_control or h.is_transactional:
                out.write(raw)
                size += len(raw)
                continue
            records = decode_records(raw)
            kept = [r for r in records if _keep(r, latest, drop_tombstones)]
            removed += len(records) - len(kept)
            tombstones = tombstones or any(r.value is None for r in kept)
            if len(kept) == len(records):
                data = bytes(raw)
            elif kept:
                data = build_batch(
                    kept,
                    base_offset=h.base_offset,
                    compression=h.compression,
                    log_append_time=h.log_append_time,
                    producer_id=h.producer_id,
                    producer_epoch=h.producer_epoch,
                    base_sequence=h.base_sequence,
                    partition_leader_epoch=h.partition_leader_epoch,
                    last_offset_delta=h.last_offset_delta,
                    base_timestamp=h.base_timestamp,
                    max_timestamp=h.max_timestamp,
                )
            else:
                continue
            out.write(data)
            size += len(data)
        out.flush()
        os.fsync(out.fileno())
    if not removed:
        cleaned_path.unlink()
        return 0, tombstones, seg.size
    swap_path = part.directory / f"{name}.log.swap"
    os.replace(cleaned_path, swap_path)  # the commit point
    # The old segment keeps serving reads meanwhile: its fd still points at the old file
    # and its indexes are in memory. Index files go first, so a crash from here on
    # leaves a segment whose indexes are rebuilt at open.
    seg.offset_index.file.path.unlink(missing_ok=True)
    seg.time_index.file.path.unlink(missing_ok=True)
    os.replace(swap_path, seg.log_path)
    new = Segment(part.directory, seg.base_offset, part.config.index_interval_bytes)
    new.recover()
    with part.lock:
        part.replace_segment(seg, new)
        seg.close()
    return removed, tombstones, size


def _keep(r: Record, latest: dict[bytes | None, int], drop_tombstones: bool) -> bool:
    if r.key is None:
        return False
    if latest.get(r.key, -1) > r.offset:
        return False
    return not (r.value is None and drop_tombstones)
