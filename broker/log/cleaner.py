"""Log compaction (``cleanup.policy=compact`` or ``compact,delete``), transaction-aware.

Only closed segments are cleaned, only those whose newest record is at least
``min.compaction.lag.ms`` old, and only those wholly below the last stable offset: data
of an open transaction (and everything after its first offset) is never touched, as in
Kafka. Below the LSO every transactional batch belongs to a finished transaction, and
the aborted-transaction index (producer id, first offset, marker offset) says which of
them were aborted. A pass:

1. builds an offset map ``key → latest offset`` over the dirty section (closed segments
   from the cleaner checkpoint on), from plain, idempotent and *committed* transactional
   records; aborted records never shadow an older committed value;
2. rewrites every cleanable segment keeping a record only if no newer record with its key
   exists in the dirty section. Offsets never change: a rewritten batch keeps its base
   offset, its original offset range (it may become sparse), its attributes (the
   transactional bit) and its producer id, epoch and base sequence; batches left empty
   are dropped, untouched batches are copied byte for byte;
3. drops every record of an aborted transaction;
4. keeps the last data batch of each producer the partition still tracks, emptied if need
   be (header only), so a rebuild of the producer table from the log after a lost
   snapshot still finds the producer's epoch and last sequence;
5. keeps a commit or abort marker while any batch of its transaction remains; once none
   does, the marker's clock starts (``Partition.marker_ms``) and the marker goes in the
   first pass after ``delete.retention.ms`` — so a consumer that read the data before it
   vanished still finds the marker — together with its aborted-index entry (removed
   first: an entry without its marker would make read_committed clients drop that
   producer's later batches, a marker without its entry is harmless);
6. tombstones (null values) survive until ``delete.retention.ms`` after the pass that
   first cleaned their segment, so consumers that read slowly still see the delete;
7. writes ``<base>.log.cleaned``, fsyncs it, renames it to ``.log.swap`` (the commit
   point) and then over ``.log``; a crash before the swap leaves the old segment (the
   ``.cleaned`` file is discarded at open), after it the open completes the swap and
   rebuilds the indexes.

A pass is due when the dirty share of the cleanable bytes reaches
``min.cleanable.dirty.ratio``, when dirty data is older than ``max.compaction.lag.ms``,
or when retained tombstones or markers have expired; :func:`clean` also runs on demand.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field

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


@dataclass(slots=True)
class _Txns:
    """What one pass knows about producers and transactions (taken under the lock)."""

    aborted: dict[int, tuple[list[int], list[int]]]
    """producer id → (first offsets, marker offsets) of its aborted transactions, sorted."""
    last_batch: dict[int, int]
    """producer id → last offset of its last data batch (kept even when emptied)."""
    now_ms: int
    retention_ms: int
    old_clock: dict[int, int]
    """The partition's marker clocks before this pass."""
    clock: dict[int, int] = field(default_factory=dict)
    """Marker offset → when no data of its transaction was left (this pass's view)."""
    kept: dict[int, bool] = field(default_factory=dict)
    """producer id → a batch of its current transaction was written by this pass."""

    def is_aborted(self, h: BatchHeader) -> bool:
        ranges = self.aborted.get(h.producer_id)
        if ranges is None:
            return False
        i = bisect_right(ranges[0], h.base_offset) - 1
        return i >= 0 and ranges[1][i] >= h.base_offset

    def data(self, h: BatchHeader, written: bool) -> None:
        if h.is_transactional and written:
            self.kept[h.producer_id] = True

    def marker(self, h: BatchHeader) -> bool:
        """Whether the marker ``h`` goes now; starts its clock when its data is gone."""
        if self.kept.pop(h.producer_id, False):
            return False
        since = self.old_clock.get(h.base_offset, self.now_ms)
        if self.now_ms - since > self.retention_ms:
            return True
        self.clock[h.base_offset] = since
        return False


def _cleanable(part: Partition, now_ms: int) -> list[Segment]:
    """Closed segments old enough to clean and wholly below the LSO, oldest first."""
    lag = part.config.min_compaction_lag_ms
    lso = part.last_stable_offset
    out: list[Segment] = []
    segs = part.segments
    for i, seg in enumerate(segs[:-1]):
        if segs[i + 1].base_offset > lso:
            break
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
        if any(now_ms - t > cfg.delete_retention_ms for t in part.marker_ms.values()):
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


def _txns(part: Partition, end: int, now_ms: int) -> _Txns:
    """Aborted ranges below ``end`` and each producer's last data batch (under the lock)."""
    aborted: dict[int, tuple[list[int], list[int]]] = {}
    for pid, first, last, _lso in sorted(part.txn_index.entries, key=lambda e: e[1]):
        if first < end:
            firsts, lasts = aborted.setdefault(pid, ([], []))
            firsts.append(first)
            lasts.append(last)
    last_batch = {
        pid: e.batches[-1][3] for pid, e in part.producer_state.producers.items() if e.batches
    }
    return _Txns(aborted, last_batch, now_ms, part.config.delete_retention_ms, dict(part.marker_ms))


def clean(part: Partition, now_ms: int) -> CleanResult:
    """Run one compaction pass over the cleanable segments of ``part``."""
    cfg = part.config
    with part.lock:
        segs = _cleanable(part, now_ms)
        if not segs:
            return CleanResult(0, 0, 0, 0)
        dirty = [s for s in segs if _segment_end(part, s) > part.cleaner_offset]
        end_of_cleanable = _segment_end(part, segs[-1])
        txns = _txns(part, end_of_cleanable, now_ms)
    # 1. offset map over the dirty section (committed data only)
    latest: dict[bytes | None, int] = {}
    for seg in dirty:
        for h, raw in _batches(seg):
            if h.is_control or not h.record_count or (h.is_transactional and txns.is_aborted(h)):
                continue
            for r in decode_records(raw):
                latest[r.key] = r.offset
    # 2. rewrite
    rewritten = removed = before = after = 0
    for seg in segs:
        first_clean = seg.base_offset not in part.cleaned_ms
        stamp = part.cleaned_ms.get(seg.base_offset, now_ms)
        drop_tombstones = not first_clean and now_ms - stamp > cfg.delete_retention_ms
        n_removed, changed, has_tombstones, new_size = _rewrite(
            part, seg, latest, drop_tombstones, txns
        )
        with part.lock:
            if has_tombstones:
                part.cleaned_ms[seg.base_offset] = stamp
            else:
                part.cleaned_ms.pop(seg.base_offset, None)
        before += seg.size
        after += new_size
        if changed:
            rewritten += 1
            removed += n_removed
    with part.lock:
        part.cleaner_offset = max(part.cleaner_offset, end_of_cleanable)
        part.marker_ms = txns.clock
        part.write_checkpoint()
    if rewritten:
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
    part: Partition,
    seg: Segment,
    latest: dict[bytes | None, int],
    drop_tombstones: bool,
    txns: _Txns,
) -> tuple[int, bool, bool, int]:
    """Rewrite one segment; return (records removed, changed, tombstones left, new size)."""
    name = segment_name(seg.base_offset)
    cleaned_path = part.directory / f"{name}.log.cleaned"
    removed = 0
    changed = False
    tombstones = False
    size = 0
    gone_markers: set[int] = set()
    with open(cleaned_path, "wb") as out:
        for h, raw in _batches(seg):
            if h.is_control:
                if txns.marker(h):
                    gone_markers.add(h.base_offset)
                    removed += h.record_count
                    changed = True
                else:
                    out.write(raw)
                    size += len(raw)
                continue
            kept: list[Record] = []
            if h.is_transactional and txns.is_aborted(h):
                removed += h.record_count  # all go: no need to decode them
            elif h.record_count:
                records = decode_records(raw)
                kept = [r for r in records if _keep(r, latest, drop_tombstones)]
                removed += len(records) - len(kept)
            tombstones = tombstones or any(r.value is None for r in kept)
            last_of_producer = (
                h.producer_id >= 0 and txns.last_batch.get(h.producer_id) == h.last_offset
            )
            if len(kept) == h.record_count and (kept or last_of_producer):
                data = bytes(raw)
            elif kept or last_of_producer:
                data = _rebuilt(h, kept)
                changed = True
            else:
                changed = True
                txns.data(h, written=False)
                continue
            txns.data(h, written=True)
            out.write(data)
            size += len(data)
        out.flush()
        os.fsync(out.fileno())
    if not changed:
        cleaned_path.unlink()
        return 0, False, tombstones, seg.size
    if gone_markers:
        with part.lock:  # the index entry goes before its marker (see the module doc)
            part.txn_index.remove_markers(gone_markers)
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
    return removed, True, tombstones, size


def _rebuilt(h: BatchHeader, kept: list[Record]) -> bytes:
    """The batch ``h`` with only ``kept`` (maybe none): same offsets, attributes, producer."""
    return build_batch(
        kept,
        base_offset=h.base_offset,
        compression=h.compression,
        log_append_time=h.log_append_time,
        is_transactional=h.is_transactional,
        producer_id=h.producer_id,
        producer_epoch=h.producer_epoch,
        base_sequence=h.base_sequence,
        partition_leader_epoch=h.partition_leader_epoch,
        last_offset_delta=h.last_offset_delta,
        base_timestamp=h.base_timestamp,
        max_timestamp=h.max_timestamp,
    )


def _keep(r: Record, latest: dict[bytes | None, int], drop_tombstones: bool) -> bool:
    if r.key is None:
        return False
    if latest.get(r.key, -1) > r.offset:
        return False
    return not (r.value is None and drop_tombstones)
