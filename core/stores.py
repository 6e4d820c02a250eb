"""Typed views of a task's stores, for processors (``ctx.store``) and the test driver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.plan import StoreSpec


class CachedStoreView:
    """Reads and writes through the task's write-back cache (changes reach the store at commit)."""

    def __init__(self, cache: Any, spec: StoreSpec) -> None:
        self._cache = cache
        self.name = spec.name
        self.get = cache.get
        self.put = cache.put
        self.delete = cache.delete

    def items(self) -> Iterator[tuple[Any, Any]]:
        """All entries (decoded), in encoded-key order."""
        return self._cache.items()

    def all(self) -> dict[Any, Any]:
        return dict(self._cache.items())

    def approximate_num_entries(self) -> int:
        return int(self._cache.store.approximate_num_entries())

    def __repr__(self) -> str:
        return f"<store {self.name}>"


class ReadOnlyStoreView:
    """A decoded, read-only view of a store written by someone else (global tables)."""

    def __init__(self, store: Any, spec: StoreSpec) -> None:
        assert spec.key_serde is not None and spec.value_serde is not None
        self._store = store
        self._ke = spec.key_serde.encode
        self._kd = spec.key_serde.decode
        self._vd = spec.value_serde.decode
        self.name = spec.name

    def get(self, key: Any) -> Any:
        raw = self._store.get(self._ke(key))
        return None if raw is None else self._vd(raw)

    def items(self) -> Iterator[tuple[Any, Any]]:
        for k, v in self._store.range():
            yield self._kd(k), self._vd(v)

    def all(self) -> dict[Any, Any]:
        return dict(self.items())

    def approximate_num_entries(self) -> int:
        return int(self._store.approximate_num_entries())


def _no_time(sub: Any) -> int:
    return 0


def open_cache(store: Any, spec: StoreSpec) -> Any:
    """The task-side cache for ``store``: a write-back cache, or a window / session store."""
    ks, vs = spec.key_serde, spec.value_serde
    assert ks is not None and vs is not None
    if spec.kind in ("window", "session"):
        from state.session import SessionStore
        from state.windowed import WindowStore

        cls = WindowStore if spec.kind == "window" else SessionStore
        return cls(
            store,
            encode_key=bytes if ks.identity else ks.encode,
            decode_key=ks.decode,
            encode_value=bytes if vs.identity else vs.encode,
            decode_value=vs.decode,
            retention_ms=spec.retention_ms,
        )
    if spec.kind == "prefix":
        from state.timed_cache import TimedCache

        return TimedCache(
            store,
            encode_key=bytes if ks.identity else ks.encode,
            decode_key=ks.decode,
            encode_value=bytes if vs.identity else vs.encode,
            decode_value=vs.decode,
            encode_sub=bytes,
            decode_sub=bytes,
            sub_size=None,
            time_of=_no_time,
            retention_ms=1 << 62,
        )
    from state.cache import WriteBackCache

    return WriteBackCache(
        store,
        bytes if ks.identity else ks.encode,
        bytes if vs.identity else vs.encode,
        vs.decode,
        decode_key=ks.decode,
    )


def view_for(cache: Any, spec: StoreSpec) -> Any:
    """A decoded view of a task's store, by store kind."""
    if spec.kind == "window":
        return WindowStoreView(cache, spec)
    if spec.kind == "session":
        return SessionStoreView(cache, spec)
    if spec.kind == "prefix":
        return EntriesStoreView(cache, spec)
    return CachedStoreView(cache, spec)


class WindowStoreView:
    """A window store as ``Windowed``-keyed entries; ``fetch(key, start)`` reads one window.

    The window end is ``start + size`` for the aggregation that owns the store.
    """

    def __init__(self, cache: Any, spec: StoreSpec, size: int | None = None) -> None:
        self._cache = cache
        self.name = spec.name
        self.size = size

    def fetch(self, key: Any, start: int) -> Any:
        """The value of ``key``'s window starting at ``start`` (``None`` if absent)."""
        return self._cache.get(key, start)

    def fetch_range(self, key: Any, t_from: int, t_to: int) -> list[tuple[int, Any]]:
        """``[(start, value)]`` of ``key``'s windows starting in ``[t_from, t_to]``."""
        return list(self._cache.fetch(key, t_from, t_to))

    def items(self) -> Iterator[tuple[Any, int, Any]]:
        """Every window as ``(key, start, value)``."""
        return self._cache.items()

    def all(self) -> dict[tuple[Any, int], Any]:
        """``{(key, start): value}`` for every live window."""
        return {(k, s): v for k, s, v in self._cache.items()}

    def __repr__(self) -> str:
        return f"<window store {self.name}>"


class SessionStoreView:
    """A session store; ``all()`` maps ``(key, start, end)`` to the session's aggregate."""

    def __init__(self, cache: Any, spec: StoreSpec) -> None:
        self._cache = cache
        self.name = spec.name

    def fetch(self, key: Any) -> list[tuple[tuple[int, int], Any]]:
        """``[((start, end), value)]`` of ``key``'s live sessions, oldest first."""
        return sorted(self._cache.entries(key).items())

    def items(self) -> Iterator[tuple[Any, tuple[int, int], Any]]:
        return self._cache.items()

    def all(self) -> dict[tuple[Any, int, int], Any]:
        return {(k, s[0], s[1]): v for k, s, v in self._cache.items()}

    def __repr__(self) -> str:
        return f"<session store {self.name}>"


class EntriesStoreView:
    """A store of entries per key and sub-key (e.g. a foreign-key join's subscriptions)."""

    def __init__(self, cache: Any, spec: StoreSpec) -> None:
        self._cache = cache
        self.name = spec.name

    def fetch(self, key: Any) -> list[tuple[Any, Any]]:
        """``[(sub_key, value)]`` of ``key``, in sub-key order."""
        return sorted(self._cache.entries(key).items())

    def items(self) -> Iterator[tuple[Any, Any, Any]]:
        """Every entry as ``(key, sub_key, value)``."""
        return self._cache.items()

    def all(self) -> dict[tuple[Any, Any], Any]:
        return {(k, s): v for k, s, v in self._cache.items()}
