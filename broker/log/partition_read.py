"""The read side of a partition's log: fetches and ListOffsets lookups.

Locate the batch holding the offset through the sparse index, then one ``pread`` per
segment of whole batches, exactly as stored: a fetch never decodes records. Lookups by
timestamp decode only the one batch that holds the answer.
"""

from __future__ import annotations

from bisect import bisect_right

from broker.errors import ErrorCode, KafkaError
from broker.log.partition_base import PartitionBase
from broker.log.records import decode_records

__all__ = ["ReadMixin"]


class ReadMixin(PartitionBase):
    """Whole-batch reads and the timestamp lookups of ListOffsets."""

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
