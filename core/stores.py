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
