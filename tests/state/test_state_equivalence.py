"""The in-memory and RocksDB stores agree over random operation sequences, and a store
rebuilt from the changelog that a write-back cache produced equals the original."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state import InMemoryStore, RocksDBStore, WriteBackCache, restore

keys = st.binary(max_size=3)
values = st.one_of(st.none(), st.binary(max_size=4))
batches = st.lists(st.lists(st.tuples(keys, values), max_size=8), max_size=12)
bounds = st.tuples(st.one_of(st.none(), keys), st.one_of(st.none(), keys))

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(batches=batches, queries=st.lists(bounds, max_size=5), probes=st.lists(keys, max_size=5))
def test_memory_and_rocksdb_stores_agree(
    batches: list[list[tuple[bytes, bytes | None]]],
    queries: list[tuple[bytes | None, bytes | None]],
    probes: list[bytes],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mem = InMemoryStore("s")
        rdb = RocksDBStore("s", Path(tmp) / "s")
        for offset, batch in enumerate(batches):
            mem.write_batch(batch, changelog_offset=offset)
            rdb.write_batch(batch, changelog_offset=offset)
            for start, end in queries:
                assert list(mem.range(start, end)) == list(rdb.range(start, end))
            for key in probes:
                assert mem.get(key) == rdb.get(key)
        assert list(mem.items()) == list(rdb.items())
        assert mem.changelog_offset() == rdb.changelog_offset()
        rdb.close()


ops = st.lists(
    st.tuples(st.integers(0, 20), st.one_of(st.none(), st.integers(-5, 5))),
    max_size=60,
)


@SETTINGS
@given(rounds=st.lists(ops, min_size=1, max_size=5), max_entries=st.integers(1, 30))
def test_store_rebuilt_from_cache_changelog_equals_original(
    rounds: list[list[tuple[int, int | None]]], max_entries: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        original = RocksDBStore("s", Path(tmp) / "s")
        cache: WriteBackCache[int, int] = WriteBackCache(
            original,
            lambda k: k.to_bytes(2, "big"),
            lambda v: v.to_bytes(2, "big", signed=True),
            lambda b: int.from_bytes(b, "big", signed=True),
            max_entries=max_entries,
        )
        model: dict[int, int] = {}
        changelog: list[tuple[int, bytes, bytes | None]] = []
        for ops_ in rounds:
            for key, delta in ops_:
                if delta is None:
                    cache.delete(key)
                    model.pop(key, None)
                else:
                    new = (cache.get(key) or 0) + delta
                    cache.put(key, new)
                    model[key] = new
                assert cache.get(key) == model.get(key)
            changes = cache.flush()
            assert len({k for k, _ in changes}) == len(changes)  # one record per changed key
            for key_bytes, value in changes:
                changelog.append((len(changelog), key_bytes, value))
            cache.commit(changes, changelog_offset=len(changelog) - 1 if changelog else None)
        expected = [
            (k.to_bytes(2, "big"), v.to_bytes(2, "big", signed=True))
            for k, v in sorted(model.items())
        ]
        assert list(original.items()) == expected
        rebuilt = InMemoryStore("s")
        restore(rebuilt, changelog, batch_size=7)
        assert list(rebuilt.items()) == list(original.items())
        assert rebuilt.changelog_offset() == original.changelog_offset()
        original.close()
