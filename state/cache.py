"""The per-task, per-store write-back cache of Python objects.

A keyed aggregation reads and writes the same hot keys over and over. The cache keeps the
*decoded* values, so a hit costs one dict lookup and a put two dict stores; nothing is
serialized per record. Changed keys are remembered (``dirty``) and encoded once per commit, which
also gives changelog compaction for free: one changelog record per changed key per commit,
however many times the key changed in between.

The commit protocol (numbered as in ``core``'s commit function) drives the cache like this::

    changes = cache.flush()           # 1. encode each dirty key once -> [(key, value|None)]
    offset = produce(changelog, changes)  # 2./3. produce changelog + output records, flush producer
    commit_source_offsets()           # 4. (inside the transaction under exactly-once)
    cache.commit(changes, offset)     # 5. one store write_batch: data + changelog offset

``flush`` does not touch the store: the store is written only after the changelog records are
durable in Kafka, so the offset stored with the data never points past what the changelog holds.
Between ``flush`` and ``commit`` flushed keys are pinned (never evicted), so reads stay correct even
if records are processed meanwhile.

Values must be treated as immutable, or ``put`` back after being changed in place: the cache only
learns about a change through ``put``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from state.api import KeyValueStore

K = TypeVar("K")
V = TypeVar("V")

_MISS: Any = object()


class WriteBackCache(Generic[K, V]):
    """Caches decoded values of one store for one task; see the module docstring.

    >>> from state.memory import InMemoryStore
    >>> store = InMemoryStore("counts")
    >>> cache = WriteBackCache(store, str.encode, lambda v: v.to_bytes(8, "big"),
    ...                        lambda b: int.from_bytes(b, "big"))
    >>> for word in ["a", "b", "a"]:
    ...     cache.put(word, (cache.get(word) or 0) + 1)
    >>> changes = cache.flush()
    >>> [(k, int.from_bytes(v, "big")) for k, v in changes]
    [(b'a', 2), (b'b', 1)]
    >>> cache.commit(changes, changelog_offset=1)
    >>> store.get(b"a"), store.changelog_offset()
    (b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02', 1)

    ``max_entries`` bounds the number of cached entries: clean entries beyond it are evicted
    (oldest first). Dirty entries are never evicted; once ``max_dirty`` keys are dirty,
    ``needs_flush`` turns true and the runtime should commit early.
    """

    def __init__(
        self,
        store: KeyValueStore,
        encode_key: Callable[[K], bytes],
        encode_value: Callable[[V], bytes],
        decode_value: Callable[[bytes], V],
        *,
        max_entries: int = 100_000,
        max_dirty: int | None = None,
        decode_key: Callable[[bytes], K] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.store = store
        self.name = store.name
        self._encode_key = encode_key
        self._encode_value = encode_value
        self._decode_value = decode_value
        self._decode_key = decode_key
        self.max_entries = max_entries
        self.max_dirty = max_entries if max_dirty is None else max_dirty
        self._values: dict[K, V | None] = {}  # None: known absent (or deleted)
        self._dirty: dict[K, None] = {}  # insertion-ordered set: deterministic changelog order
        self._pending: dict[K, None] = {}  # flushed, not yet committed: pinned
        self._pending_changes: list[tuple[bytes, bytes | None]] = []
        self._evict_at = max_entries
        self._store_get = store.get

    # -- hot path ---------------------------------------------------------------------------

    def get(self, key: K) -> V | None:
        """The value of ``key`` (``None`` if absent); a hit is one dict lookup."""
        value = self._values.get(key, _MISS)
        if value is not _MISS:
            return value
        return self._load(key)

    def put(self, key: K, value: V | None) -> None:
        """Set ``key`` (``None`` deletes it); written to the store at the next commit."""
        self._values[key] = value
        self._dirty[key] = None

    def delete(self, key: K) -> None:
        """Delete ``key``: a tombstone in the changelog at the next flush."""
        self._values[key] = None
        self._dirty[key] = None

    def _load(self, key: K) -> V | None:
        raw = self._store_get(self._encode_key(key))
        value = None if raw is None else self._decode_value(raw)
        values = self._values
        if len(values) >= self._evict_at:
            self._evict()
        values[key] = value
        return value

    # -- eviction ---------------------------------------------------------------------------

    def _evict(self) -> None:
        """Drop the oldest clean entries down to 90% of ``max_entries`` (amortised)."""
        values = self._values
        excess = len(values) - (self.max_entries - self.max_entries // 10) + 1
        if excess > 0:
            dirty = self._dirty
            pending = self._pending
            victims = []
            for key in values:
                if key not in dirty and key not in pending:
                    victims.append(key)
                    if len(victims) >= excess:
                        break
            for key in victims:
                del values[key]
        # If mostly dirty, we could not evict enough: do not rescan on every miss.
        self._evict_at = max(self.max_entries, len(values) + max(1, self.max_entries // 10))

    @property
    def needs_flush(self) -> bool:
        """True when so many keys are dirty that the runtime should commit early."""
        return len(self._dirty) >= self.max_dirty

    @property
    def dirty_count(self) -> int:
        return len(self._dirty)

    def __len__(self) -> int:
        """Number of cached entries (not the number of keys in the store)."""
        return len(self._values)

    # -- commit protocol --------------------------------------------------------------------

    def flush(self) -> list[tuple[bytes, bytes | None]]:
        """Encode every dirty key once; return ``[(key, value | None)]`` for the changelog.

        Does not write the store: call :meth:`commit` once the changelog records are durable.
        """
        dirty = self._dirty
        if not dirty:
            return []
        encode_key = self._encode_key
        encode_value = self._encode_value
        values = self._values
        changes: list[tuple[bytes, bytes | None]] = []
        append = changes.append
        for key in dirty:
            value = values[key]
            append((encode_key(key), None if value is None else encode_value(value)))
        if self._pending:
            self._pending.update(dirty)
        else:
            self._pending = dirty
        self._dirty = {}
        self._pending_changes.extend(changes)
        return changes

    def commit(
        self,
        changes: list[tuple[bytes, bytes | None]] | None = None,
        changelog_offset: int | None = None,
    ) -> None:
        """Write flushed changes and the changelog offset to the store in one write batch.

        ``changes=None`` writes everything flushed since the last commit. When the cache is
        nearly full, committed keys move to the young end of the eviction order (they were just
        used); otherwise that bookkeeping is skipped.
        """
        if changes is None:
            changes = self._pending_changes
        if changes or changelog_offset is not None:
            self.store.write_batch(changes, changelog_offset=changelog_offset)
        pending = self._pending
        if pending:
            values = self._values
            if len(values) > self._evict_at - self._evict_at // 5:
                # Eviction is near: keep what was just written (recency beats insertion order).
                for key in pending:
                    if key in values:
                        values[key] = values.pop(key)
            self._pending = {}
        self._pending_changes = []
        self._evict_at = self.max_entries
        if len(self._values) > self.max_entries:
            self._evict()

    def discard(self) -> None:
        """Forget all cached, dirty and flushed-but-uncommitted changes (abort / revoke)."""
        self._values = {}
        self._dirty = {}
        self._pending = {}
        self._pending_changes = []
        self._evict_at = self.max_entries

    # -- reads over ranges (interactive queries, test driver) -------------------------------

    def range(
        self, start: bytes | None = None, end: bytes | None = None
    ) -> Iterator[tuple[bytes, V]]:
        """Entries with encoded key in ``[start, end)`` in key order, uncommitted changes included.

        Costs O(dirty keys) to build the overlay, so it is meant for queries, not per record.
        """
        encode_key = self._encode_key
        values = self._values
        overlay: dict[bytes, V | None] = {}
        for group in (self._pending, self._dirty):
            for key in group:
                raw_key = encode_key(key)
                if (start is None or raw_key >= start) and (end is None or raw_key < end):
                    overlay[raw_key] = values[key]
        decode = self._decode_value
        if not overlay:
            for raw_key, raw in self.store.range(start, end):
                yield raw_key, decode(raw)
            return
        ordered = sorted(overlay)
        i, n = 0, len(ordered)
        for raw_key, raw in self.store.range(start, end):
            while i < n and ordered[i] < raw_key:
                value = overlay[ordered[i]]
                if value is not None:
                    yield ordered[i], value
                i += 1
            if i < n and ordered[i] == raw_key:
                value = overlay[raw_key]
                i += 1
                if value is not None:
                    yield raw_key, value
                continue
            yield raw_key, decode(raw)
        while i < n:
            value = overlay[ordered[i]]
            if value is not None:
                yield ordered[i], value
            i += 1

    def items(self) -> Iterator[tuple[K, V]]:
        """Every entry as ``(key, value)`` with decoded keys, in encoded-key order."""
        decode_key = self._decode_key
        if decode_key is None:
            raise TypeError(
                f"store {self.name!r}: items() needs decode_key= when the cache is created; "
                f"use range() for encoded keys"
            )
        return ((decode_key(raw_key), value) for raw_key, value in self.range())

    def __repr__(self) -> str:
        return (
            f"WriteBackCache({self.name!r}, cached={len(self._values)}, "
            f"dirty={len(self._dirty)}, pending={len(self._pending)})"
        )
