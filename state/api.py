"""The key-value store contract shared by the RocksDB and in-memory stores.

Keys and values are bytes: serdes live above the store, so the store never decodes.
Writes are applied in batches (``write_batch``) so that a commit is one RocksDB
``WriteBatch``; the changelog offset the batch reaches is written in the same batch, so data
and checkpoint can never disagree after a crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol


class KeyValueStore(Protocol):
    """A sorted bytes-to-bytes map with atomic batched writes.

    Implementations: ``state.memory.InMemoryStore`` and ``state.rocksdb.RocksDBStore``. Both give
    identical results for the same sequence of operations; the test-suite checks this.
    """

    name: str

    def get(self, key: bytes) -> bytes | None: ...

    def range(
        self, start: bytes | None = None, end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Entries with ``start <= key < end`` in key order (``None`` means unbounded)."""

    def write_batch(
        self, items: Iterable[tuple[bytes, bytes | None]], *, changelog_offset: int | None = None
    ) -> None:
        """Apply puts (value) and deletes (``None``) atomically, with the changelog offset."""

    def changelog_offset(self) -> int | None:
        """The changelog offset stored with the data: restore resumes after it."""

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every entry in key order (same as ``range()`` with no bounds)."""

    def approximate_num_entries(self) -> int: ...

    def close(self) -> None: ...
