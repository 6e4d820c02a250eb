"""One log segment: ``<base offset>.log`` plus its sparse ``.index`` and ``.timeindex``.

The ``.log`` file holds batches exactly as appended (base offsets already patched), so a
fetch is one ``os.pread`` of a byte range. File names are the base offset zero-padded to
20 digits, as in Kafka, so a directory listing sorts by offset.

The log fd stays open for the segment's life (reads use ``pread``, appends ``writev`` with
``O_APPEND``); index files keep an fd only while they are appended to.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import crc32c

from broker.log.index import OffsetIndex, TimeIndex
from broker.log.records import ATTRIBUTES_OFFSET, HEADER, HEADER_SIZE, LOG_OVERHEAD, BatchHeader

__all__ = ["Segment", "segment_name"]

log = logging.getLogger(__name__)

_SCAN_CHUNK = 16 * 1024
_RECOVER_CHUNK = 4 * 1024 * 1024
_IOV_MAX = 1024
"""Pieces per ``writev`` call (Linux's IOV_MAX)."""


def _write_all(fd: int, pieces: Sequence[bytes | memoryview]) -> None:
    """``writev`` every piece, at most ``_IOV_MAX`` at a time, resuming after short writes."""
    for i in range(0, len(pieces), _IOV_MAX):
        chunk = list(pieces[i : i + _IOV_MAX])
        want = sum(len(p) for p in chunk)
        written = os.writev(fd, chunk)
        while written < want:  # a short write: drop what went out, send the rest
            want -= written
            while written >= len(chunk[0]):
                written -= len(chunk[0])
                chunk.pop(0)
            chunk[0] = memoryview(chunk[0])[written:]
            written = os.writev(fd, chunk)


class _Check:
    """Where a checked scan stopped: end position, next expected offset, and why."""

    __slots__ = ("end", "expected", "reason")

    def __init__(self) -> None:
        self.end = 0
        self.expected = 0
        self.reason = ""


def segment_name(base_offset: int) -> str:
    """``00000000000000000042`` for base offset 42."""
    return f"{base_offset:020d}"


class Segment:
    """A contiguous range of the partition's offsets in one file."""

    def __init__(self, directory: Path, base_offset: int, index_interval: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval = index_interval
        name = segment_name(base_offset)
        self.log_path = directory / f"{name}.log"
        self.offset_index = OffsetIndex(directory / f"{name}.index")
        self.time_index = TimeIndex(directory / f"{name}.timeindex")
        self.fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self.fd).st_size
        if self.size == 0:  # a new segment: empty indexes, so a clean reopen trusts them
            for index_path in (self.offset_index.file.path, self.time_index.file.path):
                index_path.touch()
        self.next_offset = base_offset
        """One past the last offset stored here (``base_offset`` when empty)."""
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self.rolling_base_ms = -1
        """Max timestamp of the first batch: ``segment.ms`` counts from it, as in Kafka."""
        self.created_ms = -1
        """Broker time of the first append (or of opening): the idle-roll clock."""
        self.bytes_since_index = 0
        self.unflushed = False

    # --- opening ---------------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, base_offset: int, index_interval: int, *, recover: bool
    ) -> Segment:
        """Open an existing or new segment; ``recover`` rescans and repairs the tail."""
        seg = cls(directory, base_offset, index_interval)
        if recover or not (seg.offset_index.load() and seg.time_index.load()):
            seg.recover()
        else:
            seg.load_tail()
        return seg

    def load_tail(self) -> bool:
        """After a clean shutdown: trust the indexes, check only past the last entry.

        Returns False when that tail is damaged (the caller then runs :meth:`recover`).
        """
        if self.size == 0:
            return True
        rel, pos = self.offset_index.floor(2**31 - 1)
        self.max_timestamp = self.time_index.last_timestamp
        if len(self.time_index):
            self.offset_of_max_timestamp = self.base_offset + self.time_index.rel_offsets[-1]
        first = self.header_at(0)
        if first is None:
            return False
        self.rolling_base_ms = first.max_timestamp
        check = _Check()
        for _p, h in self._checked(pos, self.base_offset + rel, check):
            self.next_offset = h.last_offset + 1
            if h.max_timestamp > self.max_timestamp:
                self.max_timestamp = h.max_timestamp
                self.offset_of_max_timestamp = h.base_offset
        self.bytes_since_index = self.size - pos
        return check.end == self.size

    def _checked(self, pos: int, expected: int, check: _Check) -> Iterator[tuple[int, BatchHeader]]:
        """Yield batches from ``pos`` while each is whole, well-formed and passes its CRC.

        Where it stops and why is left in ``check``.
        """
        file_size = os.fstat(self.fd).st_size
        buf = b""
        buf_start = pos
        check.end, check.expected = pos, expected
        while pos < file_size:
            off = pos - buf_start
            if off + HEADER_SIZE > len(buf):
                buf = os.pread(self.fd, _RECOVER_CHUNK, pos)
                buf_start, off = pos, 0
                if len(buf) < HEADER_SIZE:
                    check.reason = f"torn batch header ({len(buf)} bytes)"
                    return
            h = BatchHeader._make(HEADER.unpack_from(buf, off))
            size = h.batch_length + LOG_OVERHEAD
            if h.magic != 2 or size < HEADER_SIZE or h.last_offset_delta < 0:
                check.reason = f"invalid batch header (magic {h.magic}, length {h.batch_length})"
                return
            if pos + size > file_size:
                check.reason = f"torn batch ({file_size - pos} of {size} bytes present)"
                return
            if h.base_offset < expected:
                check.reason = f"batch base offset {h.base_offset} below expected {expected}"
                return
            if off + size > len(buf):
                buf = os.pread(self.fd, max(_RECOVER_CHUNK, size), pos)
                buf_start, off = pos, 0
            if crc32c.crc32c(memoryview(buf)[off + ATTRIBUTES_OFFSET : off + size]) != h.crc:
                check.reason = f"CRC mismatch in batch at base offset {h.base_offset}"
                return
            yield pos, h
            expected = h.last_offset + 1
            pos += size
            check.end, check.expected = pos, expected

    def recover(self) -> int:
        """Validate every batch (length, magic, CRC, offset order); cut a bad tail.

        Rebuilds both indexes. Returns the number of bytes truncated.
        """
        file_size = os.fstat(self.fd).st_size
        offsets: list[tuple[int, int]] = []
        times: list[tuple[int, int]] = []
        since = 0
        max_ts, off_max = -1, self.base_offset
        first_ts = -1
        check = _Check()
        for pos, h in self._checked(0, self.base_offset, check):
            if since >= self.index_interval and pos > 0:
                offsets.append((h.base_offset - self.base_offset, pos))
                if max_ts > (times[-1][0] if times else -1):
                    times.append((max_ts, off_max - self.base_offset))
                since = 0
            if pos == 0:
                first_ts = h.max_timestamp
            if h.max_timestamp > max_ts:
                max_ts, off_max = h.max_timestamp, h.base_offset
            since += h.batch_length + LOG_OVERHEAD
        pos = check.end
        truncated = file_size - pos
        if truncated:
            log.warning(
                "%s: truncating %d bytes at position %d (offset %d onwards): %s",
                self.log_path,
                truncated,
                pos,
                check.expected,
                check.reason,
            )
            os.ftruncate(self.fd, pos)
            os.fsync(self.fd)
        self.size = pos
        self.next_offset = check.expected
        self.max_timestamp, self.offset_of_max_timestamp = max_ts, off_max
        self.rolling_base_ms = first_ts
        self.bytes_since_index = since
        self.offset_index.reset(offsets)
        self.time_index.reset(times)
        return truncated

    # --- writing ---------------------------------------------------------------------

    def append(
        self,
        pieces: Sequence[bytes | memoryview],
        length: int,
        entries: list[tuple[int, int, int, int]],
        next_offset: int,
    ) -> None:
        """Write already-patched batches with ``writev`` and update the indexes.

        ``pieces`` are consecutive slices of the batches (patched headers next to views
        of the request's unchanged bytes), ``length`` bytes in all, so the payload is
        never copied on its way to the file. ``entries`` holds ``(position, base offset,
        max timestamp, size)`` per batch, positions counted from the first piece.
        """
        start = self.size
        _write_all(self.fd, pieces)
        since = self.bytes_since_index
        interval = self.index_interval
        base = self.base_offset
        max_ts = self.max_timestamp
        off_max = self.offset_of_max_timestamp
        indexed = False
        for p, b, ts, size in entries:
            if since >= interval and start + p > 0:
                self.offset_index.append(b - base, start + p)
                if max_ts > self.time_index.last_timestamp:
                    self.time_index.append(max_ts, off_max - base)
                since = 0
                indexed = True
            if ts > max_ts:
                max_ts, off_max = ts, b
            since += size
        if indexed:
            self.offset_index.write_pending()
            self.time_index.write_pending()
        self.max_timestamp, self.offset_of_max_timestamp = max_ts, off_max
        if self.rolling_base_ms == -1 and start == 0 and entries:
            self.rolling_base_ms = entries[0][2]
        self.bytes_since_index = since
        self.size = start + length
        self.next_offset = next_offset
        self.unflushed = True

    def seal(self) -> list[int]:
        """The segment stops being active: record its final max timestamp, close index fds.

        Nothing is fsynced here, so sealing costs no disk wait. Returns duplicated fds of
        the log and of the index files written since the last flush: whoever fsyncs and
        closes them (a background thread at roll) makes the segment durable. The
        duplicates stay valid whatever happens to the segment meanwhile (closing,
        deletion, a compaction swap), so that fsync is always safe.
        """
        if self.max_timestamp > self.time_index.last_timestamp:
            rel = self.offset_of_max_timestamp - self.base_offset
            self.time_index.append(self.max_timestamp, rel)
            self.time_index.write_pending()
        fds = self.dup_fds()
        self.offset_index.file.close()
        self.time_index.file.close()
        self.unflushed = False
        return fds

    def flush(self) -> None:
        os.fsync(self.fd)
        self.offset_index.file.flush()
        self.time_index.file.flush()
        self.unflushed = False

    def dup_fds(self) -> list[int]:
        """Duplicates of the fds to fsync, so a flush can run without the partition lock."""
        fds = [os.dup(self.fd)]
        try:
            for f in (self.offset_index.file, self.time_index.file):
                if f.fd is not None:
                    fds.append(os.dup(f.fd))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def close(self) -> None:
        """Close the fds; a pending roll fsync keeps its own duplicates and is unaffected."""
        self.offset_index.file.close()
        self.time_index.file.close()
        os.close(self.fd)

    def delete(self) -> None:
        self.close()
        for path in (self.log_path, self.offset_index.file.path, self.time_index.file.path):
            path.unlink(missing_ok=True)

    # --- reading ---------------------------------------------------------------------

    def header_at(self, position: int) -> BatchHeader | None:
        data = os.pread(self.fd, HEADER_SIZE, position)
        if len(data) < HEADER_SIZE:
            return None
        return BatchHeader._make(HEADER.unpack_from(data))

    def scan(self, position: int, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
        """Yield ``(position, header)`` of batches from a batch boundary, reading in chunks."""
        end = self.size if end is None else end
        buf = b""
        buf_start = position
        while position < end:
            off = position - buf_start
            if off + HEADER_SIZE > len(buf):
                buf = os.pread(self.fd, _SCAN_CHUNK, position)
                buf_start, off = position, 0
                if len(buf) < HEADER_SIZE:
                    return
            h = BatchHeader._make(HEADER.unpack_from(buf, off))
            yield position, h
            position += h.batch_length + LOG_OVERHEAD

    def locate(self, offset: int) -> tuple[int, BatchHeader] | None:
        """The first batch whose last offset is >= ``offset``, or None past the end."""
        if offset >= self.next_offset:
            return None
        _rel, pos = self.offset_index.floor(max(offset - self.base_offset, 0))
        for p, h in self.scan(pos):
            if h.base_offset + h.last_offset_delta >= offset:
                return p, h
        return None

    def end_position(self, start: int, max_bytes: int) -> int:
        """End of the last whole batch within ``start + max_bytes`` (at least one batch)."""
        limit = start + max_bytes
        if limit >= self.size:
            return self.size
        scan_from = max(self.offset_index.floor_position(limit), start)
        end = scan_from
        for p, h in self.scan(scan_from):
            stop = p + h.batch_length + LOG_OVERHEAD
            if stop > limit:
                if end == start:
                    end = stop
                break
            end = stop
        return end

    def read(self, start: int, end: int) -> bytes:
        return os.pread(self.fd, end - start, start)
