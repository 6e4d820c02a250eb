"""Opening a partition's directory, recovering whatever an unclean stop left behind.

``close`` writes a clean-shutdown marker; without it, opening rescans every segment from
the last flushed one (the recovery point), checks each batch's length and CRC, truncates a
torn or corrupt tail (logged) and rebuilds that segment's indexes. Leftovers of an
interrupted compaction are finished or dropped first: ``*.log.swap`` files replace their
segment (which is then rescanned) and ``*.cleaned`` files are deleted.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from broker.log.partition_base import PartitionBase
from broker.log.partition_durability import CHECKPOINT_FILE
from broker.log.segment import Segment

__all__ = ["CLEAN_SHUTDOWN_FILE", "RecoveryMixin"]

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN_FILE = ".clean_shutdown"


class RecoveryMixin(PartitionBase):
    """Loads segments, the checkpoint and producer state when a partition opens."""

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
