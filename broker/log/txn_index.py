"""The aborted-transaction index of one partition (Kafka's ``.txnindex``, one per partition).

Each aborted transaction is one fixed-size entry ``producerId int64 | firstOffset int64 |
lastOffset int64 | lastStableOffset int64`` appended to ``aborted.txnindex`` when the
abort marker is written (``lastOffset`` is the marker's offset). A read_committed fetch
asks for the entries overlapping the range it returns, and the client drops those
producers' batches between ``firstOffset`` and the marker.

The file follows the log: entries past the log end after a crash are dropped at open
(the rebuild from the log adds them back when their marker survived), and entries wholly
below the log start offset are pruned by retention. The cleaner removes the entry of an
abort marker it deletes (once no data of that transaction is left).

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     idx = TxnIndex(pathlib.Path(d))
...     idx.append(7, 10, 15, 10)
...     idx.overlapping(12, 100)
[(7, 10, 15, 10)]
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

__all__ = ["TXN_INDEX_FILE", "TxnIndex"]

TXN_INDEX_FILE = "aborted.txnindex"
_ENTRY = struct.Struct(">qqqq")


class TxnIndex:
    """Aborted transactions of one partition, in marker order (the partition lock guards it)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / TXN_INDEX_FILE
        self.entries: list[tuple[int, int, int, int]] = []
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        whole = len(data) - len(data) % _ENTRY.size
        self.entries = [e for e in _ENTRY.iter_unpack(data[:whole])]
        if whole != len(data):
            self._rewrite()

    @property
    def last_marker_offset(self) -> int:
        return self.entries[-1][2] if self.entries else -1

    def append(self, pid: int, first_offset: int, last_offset: int, lso: int) -> None:
        entry = (pid, first_offset, last_offset, lso)
        self.entries.append(entry)
        with open(self.path, "ab") as f:
            f.write(_ENTRY.pack(*entry))

    def overlapping(self, start: int, end: int) -> list[tuple[int, int, int, int]]:
        """Entries of transactions that touch offsets ``[start, end)``."""
        return [e for e in self.entries if e[2] >= start and e[1] < end]

    def truncate_to(self, log_end: int) -> None:
        """Drop entries whose marker is at or past ``log_end`` (the log lost them)."""
        kept = [e for e in self.entries if e[2] < log_end]
        if len(kept) != len(self.entries):
            self.entries = kept
            self._rewrite()

    def prune_below(self, log_start: int) -> None:
        """Drop entries that end before the log start offset (retention)."""
        kept = [e for e in self.entries if e[2] >= log_start]
        if len(kept) != len(self.entries):
            self.entries = kept
            self._rewrite()

    def remove_markers(self, marker_offsets: set[int]) -> None:
        """Drop the entries of these abort markers (the cleaner removes the markers)."""
        kept = [e for e in self.entries if e[2] not in marker_offsets]
        if len(kept) != len(self.entries):
            self.entries = kept
            self._rewrite()

    def flush(self) -> None:
        if self.path.exists():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(_ENTRY.pack(*e) for e in self.entries))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
