"""Window, session and prefix stores on the byte stores: layout, expiry, commit protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from state.memory import InMemoryStore
from state.rocksdb import RocksDBStore
from state.session import SessionStore
from state.timed_cache import next_prefix
from state.windowed import WindowStore, decode_time, encode_time, list_codec


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        yield InMemoryStore("w")
    else:
        s = RocksDBStore("w", tmp_path / "w")
        yield s
        s.close()


def _ws(store: Any, retention: int = 10_000, **kw: Any) -> WindowStore[str]:
    return WindowStore(
        store,
        encode_key=str.encode,
        decode_key=bytes.decode,
        encode_value=str.encode,
        decode_value=bytes.decode,
        retention_ms=retention,
        **kw,
    )


def _commit(cache: Any, offset: int = 0) -> list[tuple[bytes, bytes | None]]:
    changes = cache.flush()
    cache.commit(changes, offset)
    return changes


def test_layout_is_key_then_big_endian_start(store: Any) -> None:
    ws = _ws(store)
    ws.put("a", 258, "x")
    changes = _commit(ws)
    assert changes == [(b"a" + (258).to_bytes(8, "big"), b"x")]
    assert decode_time(encode_time(258)) == 258
    assert encode_time(-5) == bytes(8)  # times before the epoch are clamped


def test_keys_sharing_a_prefix_stay_apart(store: Any) -> None:
    ws = _ws(store)
    for key in ("a", "ab", "a\x00"):
        ws.put(key, 1_000, key.upper())
    _commit(ws)
    fresh = _ws(store)  # nothing cached: reads go to the store
    assert fresh.fetch("a", 0, 5_000) == [(1_000, "A")]
    assert fresh.fetch("ab", 0, 5_000) == [(1_000, "AB")]
    assert fresh.get("a\x00", 1_000) == "A\x00"
    # raw-key order: "a\x00" + start sorts before "a" + start (a shorter key, then time bytes)
    assert [(k, s, v) for k, s, v in fresh.items()] == [
        ("a\x00", 1_000, "A\x00"),
        ("a", 1_000, "A"),
        ("ab", 1_000, "AB"),
    ]


def test_fetch_time_range_and_overlay_of_uncommitted_changes(store: Any) -> None:
    ws = _ws(store)
    for start in (0, 5_000, 10_000):
        ws.put("k", start, str(start))
    _commit(ws)
    ws.put("k", 15_000, "new")
    ws.put("k", 0, None)
    assert ws.fetch("k", 0, 12_000) == [(5_000, "5000"), (10_000, "10000")]
    assert [(s, v) for _, s, v in ws.items()] == [
        (5_000, "5000"),
        (10_000, "10000"),
        (15_000, "new"),
    ]
    ws.discard()  # abort: back to what the store holds
    assert ws.fetch("k", 0, 20_000) == [(0, "0"), (5_000, "5000"), (10_000, "10000")]


def test_expiry_of_cached_entries_writes_tombstones(store: Any) -> None:
    ws = _ws(store, retention=10_000)
    ws.put("a", 0, "old")
    ws.put("a", 20_000, "new")
    ws.put("b", 1_000, "old")
    assert ws.expire(15_000) == 2
    assert ws.expire(15_000) == 0  # the cutoff did not move
    changes = dict(_commit(ws))
    assert changes[b"a" + encode_time(0)] is None
    assert changes[b"b" + encode_time(1_000)] is None
    assert [(k, s) for k, s, _ in _ws(store).items()] == [("a", 20_000)]


def test_expiry_scans_entries_only_on_disk(store: Any) -> None:
    ws = _ws(store, retention=1_000)
    ws.put("a", 0, "x")
    ws.put("b", 5_000, "y")
    _commit(ws)
    restarted = _ws(store, retention=1_000)  # e.g. after a restore: nothing in memory
    assert restarted.expire(2_000) == 1
    _commit(restarted, 1)
    assert [(k, s) for k, s, _ in _ws(store).items()] == [("b", 5_000)]
    assert store.changelog_offset() == 1


def test_entries_older_than_cutoff_are_never_read(store: Any) -> None:
    ws = _ws(store, retention=100_000)
    ws.put("a", 0, "x")
    _commit(ws)
    fresh = _ws(store, retention=100_000)
    fresh.expire(5)  # scans are rare, but reads filter by the cutoff at once
    assert fresh.fetch("a", 0, 10) == []


def test_eviction_keeps_unflushed_keys(store: Any) -> None:
    ws = _ws(store, max_entries=10)
    for i in range(30):
        ws.put(f"k{i:02d}", 0, str(i))
        if i % 5 == 4:
            _commit(ws)
    assert len(ws) <= 30
    _commit(ws)
    assert len([1 for _ in ws.items()]) == 30
    assert ws.get("k00", 0) == "0"


def test_session_store_layout_and_find(store: Any) -> None:
    ss: SessionStore[str] = SessionStore(
        store,
        encode_key=str.encode,
        decode_key=bytes.decode,
        encode_value=str.encode,
        decode_value=bytes.decode,
        retention_ms=1_000,
    )
    ss.put("u", (0, 500), "s1")
    ss.put("u", (2_000, 2_600), "s2")
    changes = _commit(ss)
    assert changes[0][0] == b"u" + (0).to_bytes(8, "big") + (500).to_bytes(8, "big")
    assert ss.find("u", 400, 1_000) == [((0, 500), "s1")]
    assert ss.find("u", 0, 3_000) == [((0, 500), "s1"), ((2_000, 2_600), "s2")]
    ss.expire(1_600)  # sessions expire by their end
    assert ss.find("u", 0, 3_000) == [((2_000, 2_600), "s2")]


def test_helpers() -> None:
    assert next_prefix(b"a\xff\xff") == b"b"
    assert next_prefix(b"") is None
    enc, dec = list_codec(str.encode, bytes.decode)
    assert dec(enc([])) == []
    assert dec(enc(["x", "yz"])) == ["x", "yz"]
