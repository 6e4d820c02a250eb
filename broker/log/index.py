"""Sparse offset and time indexes of one segment.

Both are append-only binary files (big-endian, like Kafka's), loaded into in-memory
arrays at open so lookups are a ``bisect`` (O(log n)) with no file access:

* ``.index``: ``(relative offset int32, file position int32)``, one entry roughly every
  ``index.interval.bytes`` of log, always at a batch boundary.
* ``.timeindex``: ``(max timestamp so far int64, relative offset int32)``; an entry is
  added only when the maximum timestamp grows, so timestamps are strictly increasing.

An index is a cache of what the log says: if its file is damaged it is rebuilt from the
log by the segment's recovery scan.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

__all__ = ["OffsetIndex", "TimeIndex"]

_OFF = struct.Struct(">ii")
_TIME = struct.Struct(">qi")


class _AppendFile:
    """An append-only file with an fd kept open while the segment is active."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def write(self, data: bytes) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, data)

    def rewrite(self, data: bytes) -> None:
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)

    @property
    def fd(self) -> int | None:
        return self._fd

    def flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class OffsetIndex:
    """Relative offset → file position of the batch starting there."""

    def __init__(self, path: Path) -> None:
        self.file = _AppendFile(path)
        self.rel_offsets: array[int] = array("i")
        self.positions: array[int] = array("i")
        self._pending = bytearray()

    def load(self) -> bool:
        """Read the file; False when it is missing or damaged (the caller rebuilds)."""
        try:
            data = self.file.path.read_bytes()
        except FileNotFoundError:
            return False
        if len(data) % _OFF.size:
            return False
        rels, poss = array("i"), array("i")
        for rel, pos in _OFF.iter_unpack(data):
            if (rels and (rel <= rels[-1] or pos <= poss[-1])) or rel < 0 or pos < 0:
                return False
            rels.append(rel)
            poss.append(pos)
        self.rel_offsets, self.positions = rels, poss
        return True

    def append(self, rel_offset: int, position: int) -> None:
        if self.rel_offsets and rel_offset <= self.rel_offsets[-1]:
            return
        self.rel_offsets.append(rel_offset)
        self.positions.append(position)
        self._pending += _OFF.pack(rel_offset, position)

    def write_pending(self) -> None:
        """Write the entries appended since the last call (one write per log append)."""
        if self._pending:
            self.file.write(bytes(self._pending))
            self._pending.clear()

    def floor(self, rel_offset: int) -> tuple[int, int]:
        """The last entry at or below ``rel_offset``, else ``(0, 0)`` (segment start)."""
        i = bisect_right(self.rel_offsets, rel_offset) - 1
        if i < 0:
            return 0, 0
        return self.rel_offsets[i], self.positions[i]

    def floor_position(self, position: int) -> int:
        """The last indexed batch boundary at or below ``position`` (0 if none)."""
        i = bisect_right(self.positions, position) - 1
        return self.positions[i] if i >= 0 else 0

    def reset(self, entries: list[tuple[int, int]]) -> None:
        """Replace all entries (after recovery or compaction) and rewrite the file."""
        self.rel_offsets = array("i", (e[0] for e in entries))
        self.positions = array("i", (e[1] for e in entries))
        self._pending.clear()
        self.file.rewrite(b"".join(_OFF.pack(r, p) for r, p in entries))

    def truncate_after(self, position: int) -> None:
        """Drop entries pointing at or beyond ``position``."""
        i = bisect_left(self.positions, position)
        if i < len(self.positions):
            self.reset(list(zip(self.rel_offsets[:i], self.positions[:i], strict=True)))

    def __len__(self) -> int:
        return len(self.rel_offsets)


class TimeIndex:
    """Max timestamp so far → relative offset of the batch where it was reached."""

    def __init__(self, path: Path) -> None:
        self.file = _AppendFile(path)
        self.timestamps: array[int] = array("q")
        self.rel_offsets: array[int] = array("i")
        self._pending = bytearray()

    def load(self) -> bool:
        try:
            data = self.file.path.read_bytes()
        except FileNotFoundError:
            return False
        if len(data) % _TIME.size:
            return False
        tss, rels = array("q"), array("i")
        for ts, rel in _TIME.iter_unpack(data):
            if tss and (ts <= tss[-1] or rel < rels[-1]):
                return False
            tss.append(ts)
            rels.append(rel)
        self.timestamps, self.rel_offsets = tss, rels
        return True

    @property
    def last_timestamp(self) -> int:
        return self.timestamps[-1] if self.timestamps else -1

    def append(self, timestamp: int, rel_offset: int) -> None:
        if self.timestamps and timestamp <= self.timestamps[-1]:
            return
        self.timestamps.append(timestamp)
        self.rel_offsets.append(rel_offset)
        self._pending += _TIME.pack(timestamp, rel_offset)

    def write_pending(self) -> None:
        if self._pending:
            self.file.write(bytes(self._pending))
            self._pending.clear()

    def below(self, timestamp: int) -> int:
        """Relative offset from which a scan for ``timestamp`` may start (0 if none).

        Every batch up to that entry's batch has max timestamp < ``timestamp``.
        """
        i = bisect_left(self.timestamps, timestamp) - 1
        return self.rel_offsets[i] if i >= 0 else 0

    def reset(self, entries: list[tuple[int, int]]) -> None:
        self.timestamps = array("q", (e[0] for e in entries))
        self.rel_offsets = array("i", (e[1] for e in entries))
        self._pending.clear()
        self.file.rewrite(b"".join(_TIME.pack(t, r) for t, r in entries))

    def __len__(self) -> int:
        return len(self.timestamps)
