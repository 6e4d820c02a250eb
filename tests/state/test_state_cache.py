"""The write-back cache: reads see dirty values, flush encodes once per key, commit writes
the store with the offset, tombstones, eviction, early-flush signal, merged range reads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from state import InMemoryStore, KeyValueStore, RocksDBStore, WriteBackCache


def enc_int(v: int) -> bytes:
    return v.to_bytes(8, "big", signed=True)


def dec_int(b: bytes) -> int:
    return int.from_bytes(b, "big", signed=True)


class CountingStore(InMemoryStore):
    """An in-memory store that counts reads and batches (to check the cache avoids them)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.reads = 0
        self.batches: list[tuple[list[tuple[bytes, bytes | None]], int | None]] = []

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)

    def write_batch(
        self, items: Iterable[tuple[bytes, bytes | None]], *, changelog_offset: int | None = None
    ) -> None:
        batch = list(items)
        self.batches.append((batch, changelog_offset))
        super().write_batch(batch, changelog_offset=changelog_offset)


def make(store: KeyValueStore, **kw: int) -> WriteBackCache[str, int]:
    return WriteBackCache(store, str.encode, enc_int, dec_int, decode_key=bytes.decode, **kw)


def test_reads_see_dirty_values_before_commit() -> None:
    store = CountingStore("c")
    cache = make(store)
    assert cache.get("a") is None
    cache.put("a", 1)
    assert cache.get("a") == 1
    assert store.get(b"a") is None  # nothing written yet
    assert cache.dirty_count == 1


def test_hits_do_not_read_the_store() -> None:
    store = CountingStore("c")
    cache = make(store)
    for _ in range(100):
        cache.put("a", (cache.get("a") or 0) + 1)
    assert store.reads == 1  # the first miss only
    assert cache.get("a") == 100


def test_one_changelog_record_per_changed_key_per_flush() -> None:
    store = CountingStore("c")
    cache = make(store)
    for word in ["a", "b", "a", "c", "a", "b"]:
        cache.put(word, (cache.get(word) or 0) + 1)
    changes = cache.flush()
    assert changes == [(b"a", enc_int(3)), (b"b", enc_int(2)), (b"c", enc_int(1))]
    assert cache.dirty_count == 0
    assert store.batches == []  # flush does not write the store
    assert cache.flush() == []  # nothing changed since


def test_commit_writes_changes_and_offset_in_one_batch() -> None:
    store = CountingStore("c")
    cache = make(store)
    cache.put("a", 1)
    cache.put("b", 2)
    changes = cache.flush()
    cache.commit(changes, changelog_offset=17)
    assert store.batches == [([(b"a", enc_int(1)), (b"b", enc_int(2))], 17)]
    assert store.changelog_offset() == 17
    assert dec_int(store.get(b"b") or b"") == 2


def test_commit_without_changes_uses_everything_flushed() -> None:
    store = CountingStore("c")
    cache = make(store)
    cache.put("a", 1)
    cache.flush()
    cache.put("b", 2)
    cache.flush()
    cache.commit(changelog_offset=5)
    assert dict(store.items()) == {b"a": enc_int(1), b"b": enc_int(2)}
    cache.commit()  # nothing pending, no offset: no write
    assert len(store.batches) == 1


def test_tombstones_delete_from_the_store() -> None:
    store = InMemoryStore("c")
    store.write_batch([(b"a", enc_int(1)), (b"b", enc_int(2))])
    cache = make(store)
    cache.delete("a")
    cache.put("b", None)
    cache.put("x", None)
    assert cache.get("a") is None
    changes = cache.flush()
    assert changes == [(b"a", None), (b"b", None), (b"x", None)]
    cache.commit(changes, changelog_offset=1)
    assert list(store.items()) == []


def test_changes_after_flush_go_into_the_next_flush() -> None:
    store = InMemoryStore("c")
    cache = make(store)
    cache.put("a", 1)
    first = cache.flush()
    cache.put("a", 2)  # processed between flush and commit
    cache.commit(first, changelog_offset=0)
    assert store.get(b"a") == enc_int(1)
    assert cache.get("a") == 2
    assert cache.flush() == [(b"a", enc_int(2))]


def test_clean_entries_are_evicted_beyond_max_entries() -> None:
    store = CountingStore("c")
    store.write_batch([(str(i).encode(), enc_int(i)) for i in range(100)])
    cache = make(store, max_entries=10)
    for i in range(100):
        assert cache.get(str(i)) == i
        assert len(cache) <= 10
    reads = store.reads
    assert cache.get("0") == 0  # evicted long ago: read again, still correct
    assert store.reads == reads + 1


def test_dirty_and_flushed_entries_are_never_evicted() -> None:
    store = CountingStore("c")
    cache = make(store, max_entries=5)
    for i in range(20):
        cache.put(f"d{i}", i)
    flushed = cache.flush()
    for i in range(20, 40):
        cache.put(f"d{i}", i)
    for i in range(50):
        cache.get(f"miss{i}")  # misses trigger eviction attempts
    for i in range(40):
        assert cache.get(f"d{i}") == i
    cache.commit(flushed, changelog_offset=0)
    cache.commit(cache.flush(), changelog_offset=1)
    assert len(cache) <= 5
    assert {k: dec_int(v) for k, v in store.items()} == {f"d{i}".encode(): i for i in range(40)}


def test_needs_flush_when_too_many_dirty_keys() -> None:
    cache = make(InMemoryStore("c"), max_entries=100, max_dirty=3)
    cache.put("a", 1)
    cache.put("b", 1)
    assert not cache.needs_flush
    cache.put("c", 1)
    assert cache.needs_flush
    cache.commit(cache.flush(), changelog_offset=0)
    assert not cache.needs_flush


def test_range_and_items_merge_dirty_and_stored_entries(tmp_path: Path) -> None:
    store = RocksDBStore("c", tmp_path / "c")
    store.write_batch([(b"a", enc_int(1)), (b"c", enc_int(3)), (b"e", enc_int(5))])
    cache = make(store)
    cache.put("b", 2)  # new
    cache.put("c", 30)  # overwrite
    cache.delete("e")  # deleted, not yet committed
    cache.put("g", 7)
    cache.flush()
    cache.put("h", 8)  # dirty after the flush: pending and dirty both visible
    assert list(cache.items()) == [("a", 1), ("b", 2), ("c", 30), ("g", 7), ("h", 8)]
    assert list(cache.range(b"b", b"g")) == [(b"b", 2), (b"c", 30)]
    assert list(cache.range(b"d")) == [(b"g", 7), (b"h", 8)]
    cache.commit(changelog_offset=3)
    cache.commit(cache.flush(), changelog_offset=4)
    assert list(cache.items()) == [("a", 1), ("b", 2), ("c", 30), ("g", 7), ("h", 8)]
    store.close()


def test_items_without_decode_key_says_how_to_fix() -> None:
    cache = WriteBackCache(InMemoryStore("counts"), str.encode, enc_int, dec_int)
    with pytest.raises(TypeError, match=r"'counts'.*decode_key"):
        cache.items()


def test_discard_forgets_uncommitted_changes() -> None:
    store = InMemoryStore("c")
    store.write_batch([(b"a", enc_int(1))])
    cache = make(store)
    cache.put("a", 5)
    cache.flush()
    cache.put("b", 1)
    cache.discard()
    assert cache.get("a") == 1
    assert cache.get("b") is None
    assert cache.flush() == []


def test_invalid_max_entries() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        make(InMemoryStore("c"), max_entries=0)


def test_rocksdb_backed_commit_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "c"
    store = RocksDBStore("c", path)
    cache = make(store)
    for word in ["x", "y", "x"]:
        cache.put(word, (cache.get(word) or 0) + 1)
    cache.commit(cache.flush(), changelog_offset=2)
    store.close()
    reopened = RocksDBStore("c", path)
    again = make(reopened)
    assert again.get("x") == 2
    assert reopened.changelog_offset() == 2
    reopened.close()
