"""An in-memory key-value store with the same semantics as the RocksDB store.

Used by the test driver and for stores declared in-memory. Point reads and writes are plain
dict operations; ``range`` needs key order, so a sorted key list is built lazily on the first
``range`` after a key was added or removed (overwrites of existing keys keep it valid). That keeps
the write path O(1) and makes repeated scans between writes cheap.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from state.errors import StoreClosedError


class InMemoryStore:
    """A sorted bytes map held in a dict.

    >>> store = InMemoryStore("counts")
    >>> store.write_batch([(b"b", b"2"), (b"a", b"1"), (b"c", None)], changelog_offset=7)
    >>> list(store.range(b"a", b"b")), store.get(b"b"), store.changelog_offset()
    ([(b'a', b'1')], b'2', 7)
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] | None = []
        self._offset: int | None = None
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in order (``None`` where absent)."""
        get = self._data.get
        return [get(k) for k in keys]

    def write_batch(
        self, items: Iterable[tuple[bytes, bytes | None]], *, changelog_offset: int | None = None
    ) -> None:
        """Apply puts and deletes, then record the changelog offset.

        The items are materialised first so that a failing iterable leaves the store untouched,
        matching the all-or-nothing behaviour of a RocksDB write batch.
        """
        if self._closed:
            raise StoreClosedError(self.name)
        batch = list(items)
        data = self._data
        shape_changed = False
        for key, value in batch:
            if value is None:
                if data.pop(key, None) is not None:
                    shape_changed = True
            else:
                if not shape_changed and key not in data:
                    shape_changed = True
                data[key] = value
        if shape_changed:
            self._sorted = None
        if changelog_offset is not None:
            self._offset = changelog_offset

    def _sorted_keys(self) -> list[bytes]:
        keys = self._sorted
        if keys is None:
            keys = self._sorted = sorted(self._data)
        return keys

    def range(
        self, start: bytes | None = None, end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Entries with ``start <= key < end`` in key order.

        Do not write to the store while iterating: keys added meanwhile are not seen, and
        values are read live (a RocksDB iterator would read a snapshot instead).
        """
        keys = self._sorted_keys()  # never mutated in place: a write replaces it with None
        data = self._data
        i = 0 if start is None else bisect_left(keys, start)
        stop = len(keys) if end is None else bisect_left(keys, end)
        while i < stop:
            key = keys[i]
            value = data.get(key)
            if value is not None:
                yield key, value
            i += 1

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return self.range()

    def changelog_offset(self) -> int | None:
        return self._offset

    def approximate_num_entries(self) -> int:
        return len(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        self._closed = True

    def destroy(self) -> None:
        """Drop all data and the offset (the task's local state is invalid)."""
        self._data.clear()
        self._sorted = []
        self._offset = None

    def __repr__(self) -> str:
        return f"InMemoryStore({self.name!r}, entries={len(self._data)})"
