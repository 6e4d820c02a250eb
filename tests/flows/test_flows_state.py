"""State: RocksDB and in-memory stores agree, survive reopening, and rebuild from changelogs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import flows
from flows.testing import TopologyTestDriver
from state.changelog import restore
from state.memory import InMemoryStore
from state.rocksdb import RocksDBStore


def _app() -> flows.App:
    app = flows.App("st")
    s = app.stream(app.topic("in", key_serde="str", value_serde="int"))
    out = app.topic("out", key_serde="str", value_serde="int")
    g = s.group_by_key()
    g.reduce(lambda a, b: a + b, name="sums").to_stream().to(out)
    g2 = s.filter(lambda k, v: v < 0).group_by_key()
    g2.count(name="negatives")
    return app


INPUT = [("a", 1), ("b", 2), ("a", -3), ("c", 4), ("b", -5), ("a", 6)]


def _run(driver: TopologyTestDriver, pairs: list[tuple[str, int]]) -> list[Any]:
    for k, v in pairs:
        driver.input_topic("in").pipe_input(k, v)
    return driver.output_topic("out").read_key_values_to_list()


def test_rocksdb_and_memory_give_the_same_results(tmp_path: Path) -> None:
    with (
        TopologyTestDriver(_app()) as mem,
        TopologyTestDriver(_app(), store="rocksdb", state_dir=tmp_path) as rocks,
    ):
        assert _run(mem, INPUT) == _run(rocks, INPUT)
        for store in ("sums", "negatives"):
            assert mem.store(store).all() == rocks.store(store).all()
            assert mem.changelog(store) == rocks.changelog(store)
        assert mem.store("sums").all() == {"a": 4, "b": -3, "c": 4}
        assert rocks.store("negatives").all() == {"a": 1, "b": 1}


def test_state_survives_closing_and_reopening(tmp_path: Path) -> None:
    with TopologyTestDriver(_app(), store="rocksdb", state_dir=tmp_path) as driver:
        _run(driver, INPUT[:3])
    with TopologyTestDriver(_app(), store="rocksdb", state_dir=tmp_path) as driver:
        assert driver.store("sums").all() == {"a": -2, "b": 2}
        assert _run(driver, INPUT[3:]) == [("c", 4), ("b", -3), ("a", 4)]


def test_rocksdb_store_reopened_directly_has_data_and_offset(tmp_path: Path) -> None:
    with TopologyTestDriver(_app(), store="rocksdb", state_dir=tmp_path) as driver:
        _run(driver, INPUT)
        last = driver.changelog("sums")[-1][0]
    store = RocksDBStore("sums", tmp_path / "st" / "0_0" / "sums")
    try:
        assert store.changelog_offset() == last
        assert store.get(b"a") == (4).to_bytes(8, "big")
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_store_rebuilt_from_changelog_equals_original(kind: str, tmp_path: Path) -> None:
    kwargs: dict[str, Any] = (
        {"store": "rocksdb", "state_dir": tmp_path} if kind == "rocksdb" else {}
    )
    with TopologyTestDriver(_app(), **kwargs) as driver:
        _run(driver, INPUT)
        for name in ("sums", "negatives"):
            original = driver.tasks[0].stores[name]
            records = driver.changelog(name)
            rebuilt = (
                RocksDBStore(name, tmp_path / "rebuilt" / name)
                if kind == "rocksdb"
                else InMemoryStore(name)
            )
            restore(rebuilt, records)
            assert list(rebuilt.range()) == list(original.range())
            assert rebuilt.changelog_offset() == original.changelog_offset() == records[-1][0]
            rebuilt.close()


def test_one_changelog_record_per_changed_key_per_commit() -> None:
    with TopologyTestDriver(_app()) as driver:
        _run(driver, INPUT[:2])
        assert [(k, v) for _, k, v in driver.changelog("sums")] == [
            (b"a", (1).to_bytes(8, "big")),
            (b"b", (2).to_bytes(8, "big")),
        ]


def test_table_tombstone_reaches_the_changelog_and_rebuild(tmp_path: Path) -> None:
    app = flows.App("tt")
    app.table(app.topic("t", key_serde="str", value_serde="str"), name="tab")
    with TopologyTestDriver(app, store="rocksdb", state_dir=tmp_path) as driver:
        for k, v in [("x", "1"), ("y", "2"), ("x", None)]:
            driver.input_topic("t").pipe_input(k, v)
        records = driver.changelog("tab")
        assert records[-1] == (2, b"x", None)
        rebuilt = InMemoryStore("tab")
        restore(rebuilt, records)
        assert list(rebuilt.range()) == [(b"y", b"2")]


def test_driver_bad_arguments() -> None:
    app = _app()
    with pytest.raises(LookupError, match="store must be"):
        TopologyTestDriver(app, store="disk")
    with pytest.raises(LookupError, match="state_dir"):
        TopologyTestDriver(app, store="rocksdb")
    with TopologyTestDriver(app) as driver:
        with pytest.raises(LookupError, match="not read by app"):
            driver.input_topic("out")
        with pytest.raises(LookupError, match="no store 'nope'"):
            driver.store("nope")
        with pytest.raises(LookupError, match="no store 'nope'"):
            driver.changelog("nope")
