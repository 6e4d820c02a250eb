"""A write-back cache of entries ``(key, sub) -> value`` grouped per key, with time expiry.

Windowed and session stores, join buffers and subscription stores all ask the same questions:
"every window of this key", "every session of this key near this time". On the byte store
the raw key is ``prefix(key) + suffix(sub)``, so the entries of one key are contiguous and one
range scan loads them all. The cache loads a key's entries once (a range scan), then serves
reads and writes from a per-key dict of decoded values; nothing is encoded per record. Changed
entries are encoded once per commit, with the same ``flush`` / ``commit`` / ``discard`` protocol
as :class:`state.cache.WriteBackCache`, so the task's commit function drives both alike.

Expiry: every entry has a time (a window's start, a session's end). ``expire(cutoff)`` deletes
entries older than ``cutoff``: entries in memory through a heap of times (amortised O(1)), and
entries only on disk (restored, or evicted from memory) through a scan of the store made at
most once per ``scan_every`` ms of cutoff advance. Keys read from the store never return
entries older than the cutoff.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from state.api import KeyValueStore

K = TypeVar("K")
V = TypeVar("V")
Sub = Any

_MISS: Any = object()


def next_prefix(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``.

    >>> next_prefix(b"ab"), next_prefix(b"a\\xff"), next_prefix(b"\\xff")
    (b'ac', b'b', None)
    """
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


class TimedCache(Generic[K, V]):
    """See the module docstring. Subclasses fix the suffix layout (``SubCodec``)."""

    def __init__(
        self,
        store: KeyValueStore,
        *,
        encode_key: Callable[[K], bytes],
        decode_key: Callable[[bytes], K],
        encode_value: Callable[[V], bytes],
        decode_value: Callable[[bytes], V],
        encode_sub: Callable[[Sub], bytes],
        decode_sub: Callable[[bytes], Sub],
        sub_size: int | None,
        time_of: Callable[[Sub], int],
        retention_ms: int,
        max_entries: int = 100_000,
    ) -> None:
        self.store = store
        self.name = store.name
        self.retention_ms = retention_ms
        self._ek = encode_key
        self._dk = decode_key
        self._ev = encode_value
        self._dv = decode_value
        self._es = encode_sub
        self._ds = decode_sub
        self._sub_size = sub_size
        self._time_of = time_of
        self.max_entries = max_entries
        self.max_dirty = max_entries
        self._scan_every = max(retention_ms, 1)
        self._reset()

    def point_only(self) -> None:
        """Promise that only ``get`` / ``put`` will be used (no ``entries``), e.g. by a windowed
        count: the per-key index that range reads need is then not kept (a set per key)."""
        self._track = False

    def _reset(self) -> None:
        self._track = getattr(self, "_track", True)
        self._values: dict[tuple[Any, Sub], V | None] = {}  # None: known absent or deleted
        self._subs: dict[Any, set[Sub]] = {}  # key -> subs with a cached entry
        self._complete: set[Any] = set()  # keys whose every stored entry is cached
        self._dirty: dict[tuple[Any, Sub], None] = {}
        self._pending: dict[tuple[Any, Sub], None] = {}
        self._pending_changes: list[tuple[bytes, bytes | None]] = []
        self._raw_deletes: list[bytes] = []
        self._times: list[int] = []
        self._by_time: dict[int, list[tuple[Any, Sub]]] = {}  # may repeat: expire checks
        self.cutoff = -(1 << 62)
        self._scanned_at = -(1 << 62)
        self._evict_at = self.max_entries
        self._disk_max: int | None = None  # newest entry time in the store, once known

    # -- layout ------------------------------------------------------------------------------

    def _prefix(self, kb: bytes) -> bytes:
        """Raw prefix of a key; variable-size suffixes need a length header to stay unambiguous."""
        if self._sub_size is None:
            return len(kb).to_bytes(4, "big") + kb
        return kb

    def _split(self, raw: bytes) -> tuple[bytes, bytes]:
        if self._sub_size is None:
            n = int.from_bytes(raw[:4], "big")
            return raw[4 : 4 + n], raw[4 + n :]
        return raw[: -self._sub_size], raw[-self._sub_size :]

    def raw_key(self, key: K, sub: Sub) -> bytes:
        return self._prefix(self._ek(key)) + self._es(sub)

    # -- hot path ----------------------------------------------------------------------------

    def get(self, key: K, sub: Sub) -> V | None:
        """One entry (``None`` if absent): a dict lookup, or one point read of the store."""
        value = self._values.get((key, sub), _MISS)
        if value is not _MISS:
            return value
        if key in self._complete:
            return None
        return self._load_one(key, sub)

    def put(self, key: K, sub: Sub, value: V | None) -> None:
        """Set (or with ``None`` delete) one entry; written to the store at the next commit."""
        ks = (key, sub)
        values = self._values
        old = values.get(ks, _MISS)
        if old is _MISS:
            if len(values) >= self._evict_at:
                self._evict()
            if self._track:
                subs = self._subs.get(key)
                if subs is None:
                    self._subs[key] = {sub}
                else:
                    subs.add(sub)
        if (old is None or old is _MISS) and value is not None:
            self._index(ks)
        values[ks] = value
        self._dirty[ks] = None

    def load(self, key: K, sub: Sub) -> V | None:
        """Read an entry that :meth:`hot` showed is not cached, without caching it: the caller
        ``put``s the new value next (a read-modify-write costs one insertion)."""
        if key in self._complete:
            return None
        disk_max = self._disk_max
        t = self._time_of(sub)
        if (disk_max is not None and t > disk_max) or t < self.cutoff:
            return None  # newer than anything on disk (a new window), or expired
        raw = self.store.get(self._prefix(self._ek(key)) + self._es(sub))
        return None if raw is None else self._dv(raw)

    def hot(self) -> tuple[dict[tuple[Any, Sub], Any], dict[tuple[Any, Sub], None]]:
        """The entry and dirty dicts, for a batch loop's hit path.

        Replacing the value of a cached, live entry is ``values[ks] = v; dirty[ks] = None``;
        anything else (a miss, a delete, a new entry) must go through :meth:`get` / :meth:`put`.
        The dicts are replaced on ``discard``: fetch them again after a restore.
        """
        return self._values, self._dirty

    def entries(self, key: K) -> dict[Sub, V]:
        """Every live entry of ``key`` as ``{sub: value}`` (loaded with one range scan)."""
        if not self._track:
            raise TypeError(f"store {self.name!r} was declared point_only(): use get()")
        if key not in self._complete:
            self._load_all(key)
        values = self._values
        out = {}
        for sub in self._subs.get(key, ()):
            value = values[(key, sub)]
            if value is not None:
                out[sub] = value
        return out

    def _index(self, ks: tuple[Any, Sub]) -> None:
        t = self._time_of(ks[1])
        entries = self._by_time.get(t)
        if entries is None:
            # point-only stores (few distinct times: window starts) remember times only, and
            # expire with one pass over the cache per expired time
            self._by_time[t] = [ks] if self._track else []
            heapq.heappush(self._times, t)
        elif self._track:
            entries.append(ks)

    def _remember(self, key: Any, sub: Sub, value: V | None) -> None:
        values = self._values
        if len(values) >= self._evict_at:
            self._evict()
        values[(key, sub)] = value
        if self._track:
            subs = self._subs.get(key)
            if subs is None:
                self._subs[key] = {sub}
            else:
                subs.add(sub)
        if value is not None:
            self._index((key, sub))

    def _load_one(self, key: K, sub: Sub) -> V | None:
        disk_max = self._disk_max
        if disk_max is not None and self._time_of(sub) > disk_max:
            raw = None  # newer than anything on disk (a new window): no read needed
        else:
            raw = self.store.get(self._prefix(self._ek(key)) + self._es(sub))
        value = None
        if raw is not None and self._time_of(sub) >= self.cutoff:
            value = self._dv(raw)
        self._remember(key, sub, value)
        return value

    def _load_all(self, key: K) -> None:
        prefix = self._prefix(self._ek(key))
        plen = len(prefix)
        size = self._sub_size
        cutoff = self.cutoff
        values = self._values
        for raw, raw_value in self.store.range(prefix, next_prefix(prefix)):
            tail = raw[plen:]
            if size is not None and len(tail) != size:
                continue  # a longer key that shares this prefix
            sub = self._ds(tail)
            if (key, sub) in values or self._time_of(sub) < cutoff:
                continue  # the cached entry is newer (or the entry expired)
            self._remember(key, sub, self._dv(raw_value))
        self._complete.add(key)

    def _evict(self) -> None:
        """Forget the oldest entries with no unflushed change, down to 90% of ``max_entries``."""
        values = self._values
        excess = len(values) - (self.max_entries - self.max_entries // 10) + 1
        clean = len(values) - len(self._dirty) - len(self._pending)
        if excess > 0 and clean >= excess // 2:  # else mostly unflushed: not worth a pass
            dirty, pending = self._dirty, self._pending
            victims = []
            for ks in values:
                if ks not in dirty and ks not in pending:
                    victims.append(ks)
                    if len(victims) >= excess:
                        break
            subs, complete = self._subs, self._complete
            for ks in victims:
                del values[ks]
                key = ks[0]
                complete.discard(key)
                left = subs.get(key)
                if left is not None:
                    left.discard(ks[1])
                    if not left:
                        del subs[key]
            # evicted entries are expired by the next periodic scan of the store
        # If mostly unflushed, we could not evict enough: do not rescan on every load.
        self._evict_at = max(self.max_entries, len(values) + max(1, self.max_entries // 10))

    # -- expiry ------------------------------------------------------------------------------

    def expire(self, cutoff: int) -> int:
        """Delete entries whose time is before ``cutoff``; returns how many were found."""
        if cutoff <= self.cutoff:
            return 0
        self.cutoff = cutoff
        n = 0
        times, by_time, values, dirty = self._times, self._by_time, self._values, self._dirty
        passed = False
        while times and times[0] < cutoff:
            t = heapq.heappop(times)
            passed = True
            for ks in by_time.pop(t, ()):
                if values.get(ks) is not None:
                    values[ks] = None
                    dirty[ks] = None
                    n += 1
        if passed and not self._track:
            time_of = self._time_of
            for ks, value in values.items():  # updates in place: the dict keeps its size
                if value is not None and time_of(ks[1]) < cutoff:
                    values[ks] = None
                    dirty[ks] = None
                    n += 1
        if cutoff - self._scanned_at >= self._scan_every:
            n += self._scan(cutoff)
        return n

    def _scan(self, cutoff: int) -> int:
        """Delete store entries older than ``cutoff`` that are not cached in memory."""
        self._scanned_at = cutoff
        n = 0
        values = self._values
        newest = -(1 << 62)
        for raw, _ in self.store.range():
            kb, tail = self._split(raw)
            sub = self._ds(tail)
            t = self._time_of(sub)
            if t > newest:
                newest = t
            if t >= cutoff:
                continue
            if (self._dk(kb), sub) in values:
                continue  # cached: handled by the time index
            self._raw_deletes.append(raw)
            n += 1
        # every later write goes through flush(), which keeps this up to date
        self._disk_max = newest if self._disk_max is None else max(newest, self._disk_max)
        return n

    # -- commit protocol (as WriteBackCache) -------------------------------------------------

    @property
    def needs_flush(self) -> bool:
        return len(self._dirty) >= self.max_dirty

    @property
    def dirty_count(self) -> int:
        return len(self._dirty) + len(self._raw_deletes)

    def flush(self) -> list[tuple[bytes, bytes | None]]:
        """Encode every changed entry once: ``[(raw_key, raw_value | None)]`` for the changelog."""
        changes: list[tuple[bytes, bytes | None]] = [(raw, None) for raw in self._raw_deletes]
        self._raw_deletes = []
        if self._dirty:
            ek, es, ev, values = self._ek, self._es, self._ev, self._values
            prefix = self._prefix
            disk_max = self._disk_max
            time_of = self._time_of
            for ks in self._dirty:
                value = values[ks]
                raw = prefix(ek(ks[0])) + es(ks[1])
                changes.append((raw, None if value is None else ev(value)))
                if disk_max is not None and value is not None:
                    t = time_of(ks[1])
                    if t > disk_max:
                        disk_max = t
            self._disk_max = disk_max
            self._pending.update(self._dirty)
            self._dirty = {}
        self._pending_changes.extend(changes)
        return changes

    def commit(
        self,
        changes: list[tuple[bytes, bytes | None]] | None = None,
        changelog_offset: int | None = None,
    ) -> None:
        """Write flushed changes with the changelog offset in one store write batch."""
        if changes is None:
            changes = self._pending_changes
        if changes or changelog_offset is not None:
            self.store.write_batch(changes, changelog_offset=changelog_offset)
        self._pending = {}
        self._pending_changes = []
        self._evict_at = self.max_entries

    def discard(self) -> None:
        """Forget everything cached or unflushed (abort, revoke, restore)."""
        self._reset()

    # -- whole-store reads (queries, the test driver) -----------------------------------------

    def items(self) -> Iterator[tuple[K, Sub, V]]:
        """Every live entry as ``(key, sub, value)`` in raw-key order, unflushed changes too."""
        merged: dict[bytes, tuple[Any, Sub, V]] = {}
        values = self._values
        for raw, raw_value in self.store.range():
            kb, tail = self._split(raw)
            sub = self._ds(tail)
            key = self._dk(kb)
            if (key, sub) in values or self._time_of(sub) < self.cutoff:
                continue
            merged[raw] = (key, sub, self._dv(raw_value))
        for (key, sub), value in values.items():
            if value is not None:
                merged[self.raw_key(key, sub)] = (key, sub, value)
        for raw in sorted(merged):
            yield merged[raw]

    def __len__(self) -> int:
        """Number of entries cached in memory."""
        return len(self._values)
