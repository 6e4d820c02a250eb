"""Both key-value stores: point ops, ranges, batches, offsets, reopen, lifecycle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from state import InMemoryStore, KeyValueStore, RocksDBStore, StoreClosedError, read_offset


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    s: KeyValueStore
    if request.param == "memory":
        s = InMemoryStore("counts")
    else:
        s = RocksDBStore("counts", tmp_path / "counts")
    yield s
    s.close()


def test_get_put_delete(store: KeyValueStore) -> None:
    assert store.get(b"a") is None
    store.write_batch([(b"a", b"1"), (b"b", b"2")])
    assert store.get(b"a") == b"1"
    store.write_batch([(b"a", None), (b"b", b"3"), (b"missing", None)])
    assert store.get(b"a") is None
    assert store.get(b"b") == b"3"
    assert list(store.items()) == [(b"b", b"3")]


def test_any_bytes_are_valid_keys_and_values(store: KeyValueStore) -> None:
    keys = [b"", b"\x00", b"\xff" * 3, b"changelog-offset", b"__flows_meta__"]
    store.write_batch([(k, b"") for k in keys], changelog_offset=5)
    assert [k for k, _ in store.items()] == sorted(keys)
    assert store.get(b"") == b""
    assert store.changelog_offset() == 5


def test_last_write_in_a_batch_wins(store: KeyValueStore) -> None:
    store.write_batch([(b"k", b"1"), (b"k", None), (b"k", b"2"), (b"j", b"x"), (b"j", None)])
    assert list(store.items()) == [(b"k", b"2")]


def test_range_bounds_are_start_inclusive_end_exclusive(store: KeyValueStore) -> None:
    store.write_batch([(bytes([i]), bytes([i])) for i in range(10)])
    assert [k[0] for k, _ in store.range(b"\x03", b"\x06")] == [3, 4, 5]
    assert [k[0] for k, _ in store.range(None, b"\x02")] == [0, 1]
    assert [k[0] for k, _ in store.range(b"\x08")] == [8, 9]
    assert [k[0] for k, _ in store.range(b"\x03\x00", b"\x05")] == [4]
    assert list(store.range(b"\x05", b"\x05")) == []
    assert list(store.range(b"\x07", b"\x02")) == []
    assert len(list(store.range())) == 10


def test_range_prefix_scan(store: KeyValueStore) -> None:
    store.write_batch([(b"user:1", b"a"), (b"user:2", b"b"), (b"usr", b"c"), (b"user;", b"d")])
    assert [k for k, _ in store.range(b"user:", b"user;")] == [b"user:1", b"user:2"]


def test_changelog_offset_written_with_batch(store: KeyValueStore) -> None:
    assert store.changelog_offset() is None
    store.write_batch([(b"a", b"1")], changelog_offset=10)
    assert store.changelog_offset() == 10
    store.write_batch([(b"b", b"1")])
    assert store.changelog_offset() == 10
    store.write_batch([], changelog_offset=12)
    assert store.changelog_offset() == 12


def test_approximate_num_entries(store: KeyValueStore) -> None:
    store.write_batch([(b"%d" % i, b"v") for i in range(100)])
    assert 50 <= store.approximate_num_entries() <= 200


def test_closed_store_refuses_writes(store: KeyValueStore) -> None:
    store.close()
    with pytest.raises(StoreClosedError, match="'counts'"):
        store.write_batch([(b"a", b"1")])
    store.close()  # idempotent


def test_failing_iterable_leaves_memory_store_untouched() -> None:
    s = InMemoryStore("x")

    def items() -> Iterator[tuple[bytes, bytes | None]]:
        yield b"a", b"1"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        s.write_batch(items(), changelog_offset=3)
    assert s.get(b"a") is None
    assert s.changelog_offset() is None


def test_failing_iterable_leaves_rocksdb_store_untouched(tmp_path: Path) -> None:
    s = RocksDBStore("x", tmp_path / "x")

    def items() -> Iterator[tuple[bytes, bytes | None]]:
        yield b"a", b"1"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        s.write_batch(items(), changelog_offset=3)
    assert s.get(b"a") is None
    assert s.changelog_offset() is None
    s.close()


def test_rocksdb_reopen_sees_data_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "0_1" / "counts"
    s = RocksDBStore("counts", path)
    s.write_batch([(b"a", b"1"), (b"b", b"2")], changelog_offset=41)
    s.write_batch([(b"a", None)], changelog_offset=42)
    s.close()
    assert read_offset(path) == 42
    s = RocksDBStore("counts", path)
    assert s.changelog_offset() == 42
    assert list(s.items()) == [(b"b", b"2")]
    s.close()


def test_rocksdb_close_ends_open_iterators(tmp_path: Path) -> None:
    path = tmp_path / "s"
    s = RocksDBStore("s", path)
    s.write_batch([(b"a", b"1"), (b"b", b"2")])
    it = s.range()
    assert next(it) == (b"a", b"1")
    s.close()
    # the half-consumed iterator no longer pins the database: reopening works
    with RocksDBStore("s", path) as again:
        assert again.get(b"b") == b"2"
    with pytest.raises(StopIteration):
        next(it)


def test_rocksdb_get_after_close_names_store(tmp_path: Path) -> None:
    s = RocksDBStore("counts", tmp_path / "s")
    s.close()
    with pytest.raises(StoreClosedError, match="'counts'"):
        s.get(b"a")


def test_rocksdb_destroy_wipes_state(tmp_path: Path) -> None:
    path = tmp_path / "s"
    s = RocksDBStore("s", path)
    s.write_batch([(b"a", b"1")], changelog_offset=3)
    s.destroy()
    assert not path.exists()
    with RocksDBStore("s", path) as fresh:
        assert fresh.get(b"a") is None
        assert fresh.changelog_offset() is None


def test_get_many(tmp_path: Path) -> None:
    for s in (InMemoryStore("m"), RocksDBStore("r", tmp_path / "r")):
        s.write_batch([(b"a", b"1"), (b"c", b"3")])
        assert s.get_many([b"a", b"b", b"c"]) == [b"1", None, b"3"]
        s.close()


def test_read_offset_of_missing_store_is_none(tmp_path: Path) -> None:
    assert read_offset(tmp_path / "nothing") is None
