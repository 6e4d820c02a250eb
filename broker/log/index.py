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


class _PairIndex:
    """Entries ``(first, second)`` with strictly increasing ``first``, kept in two parallel
    arrays and mirrored in an append-only file; the two index kinds differ only in their
    entry layout, column names and what makes a loaded file valid."""

    _ENTRY: struct.Struct
    _TYPECODES: tuple[str, str]

    def __init__(self, path: Path) -> None:
        self.file = _AppendFile(path)
        self._firsts: array[int] = array(self._TYPECODES[0])
        self._seconds: array[int] = array(self._TYPECODES[1])
        self._pending = bytearray()

    @staticmethod
    def _follows(first: int, second: int, prev_first: int, prev_second: int) -> bool:
        """Whether entry ``(first, second)`` may come after ``(prev_first, prev_second)``."""
        raise NotImplementedError

    def _sane(self, first: int, second: int) -> bool:
        """Whether one entry is valid on its own."""
        return True

    def load(self) -> bool:
        """Read the file; False when it is missing or damaged (the caller rebuilds)."""
        try:
            data = self.file.path.read_bytes()
        except FileNotFoundError:
            return False
        if len(data) % self._ENTRY.size:
            return False
        firsts, seconds = array(self._TYPECODES[0]), array(self._TYPECODES[1])
        follows, sane = self._follows, self._sane
        for first, second in self._ENTRY.iter_unpack(data):
            if not sane(first, second) or (
                firsts and not follows(first, second, firsts[-1], seconds[-1])
            ):
                return False
            firsts.append(first)
            seconds.append(second)
        self._firsts, self._seconds = firsts, seconds
        return True

    def append(self, first: int, second: int) -> None:
        if self._firsts and first <= self._firsts[-1]:
            return
        self._firsts.append(first)
        self._seconds.append(second)
        self._pending += self._ENTRY.pack(first, second)

    def write_pending(self) -> None:
        """Write the entries appended since the last call (one write per log append)."""
        if self._pending:
            self.file.write(bytes(self._pending))
            self._pending.clear()

    def reset(self, entries: list[tuple[int, int]]) -> None:
        """Replace all entries (after recovery or compaction) and rewrite the file."""
        self._firsts = array(self._TYPECODES[0], (e[0] for e in entries))
        self._seconds = array(self._TYPECODES[1], (e[1] for e in entries))
        self._pending.clear()
        pack = self._ENTRY.pack
        self.file.rewrite(b"".join(pack(a, b) for a, b in entries))

    def __len__(self) -> int:
        return len(self._firsts)


class OffsetIndex(_PairIndex):
    """Relative offset → file position of the batch starting there."""

    _ENTRY = _OFF
    _TYPECODES = ("i", "i")

    @staticmethod
    def _follows(first: int, second: int, prev_first: int, prev_second: int) -> bool:
        return first > prev_first and second > prev_second

    def _sane(self, first: int, second: int) -> bool:
        return first >= 0 and second >= 0

    @property
    def rel_offsets(self) -> array[int]:
        return self._firsts

    @property
    def positions(self) -> array[int]:
        return self._seconds

    def floor(self, rel_offset: int) -> tuple[int, int]:
        """The last entry at or below ``rel_offset``, else ``(0, 0)`` (segment start)."""
        i = bisect_right(self._firsts, rel_offset) - 1
        if i < 0:
            return 0, 0
        return self._firsts[i], self._seconds[i]

    def floor_position(self, position: int) -> int:
        """The last indexed batch boundary at or below ``position`` (0 if none)."""
        positions = self._seconds
        i = bisect_right(positions, position) - 1
        return positions[i] if i >= 0 else 0

    def truncate_after(self, position: int) -> None:
        """Drop entries pointing at or beyond ``position``."""
        i = bisect_left(self._seconds, position)
        if i < len(self._seconds):
            self.reset(list(zip(self._firsts[:i], self._seconds[:i], strict=True)))


class TimeIndex(_PairIndex):
    """Max timestamp so far → relative offset of the batch where it was reached."""

    _ENTRY = _TIME
    _TYPECODES = ("q", "i")

    @staticmethod
    def _follows(first: int, second: int, prev_first: int, prev_second: int) -> bool:
        return first > prev_first and second >= prev_second

    @property
    def timestamps(self) -> array[int]:
        return self._firsts

    @property
    def rel_offsets(self) -> array[int]:
        return self._seconds

    @property
    def last_timestamp(self) -> int:
        return self._firsts[-1] if self._firsts else -1

    def below(self, timestamp: int) -> int:
        """Relative offset from which a scan for ``timestamp`` may start (0 if none).

        Every batch up to that entry's batch has max timestamp < ``timestamp``.
        """
        i = bisect_left(self._firsts, timestamp) - 1
        return self._seconds[i] if i >= 0 else 0
