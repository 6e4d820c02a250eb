"""Windowed aggregations through the test driver with controlled time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import flows
from flows import Windowed, windows
from flows.testing import TopologyTestDriver


def _app(name: str, build: Any, *, value_serde: str = "int") -> flows.App:
    app = flows.App(name)
    src = app.topic("in", key_serde="str", value_serde="int")
    out = app.topic("out", key_serde=windows.windowed_serde("str"), value_serde=value_serde)
    build(app.stream(src).group_by_key()).to_stream().to(out)
    return app


def _run(app: flows.App, records: list[tuple[str, int, int]], **kw: Any) -> tuple[list, Any]:
    driver = TopologyTestDriver(app, **kw)
    for key, value, ts in records:
        driver.input_topic("in").pipe_input(key, value, timestamp=ts)
    return driver.output_topic("out").read_key_values_to_list(), driver


def test_tumbling_count_with_out_of_order_and_late_records() -> None:
    app = _app("tumble", lambda g: g.window(windows.tumbling(10, grace=5)).count(name="c"))
    out, driver = _run(
        app,
        [
            ("a", 0, 1_000),
            ("a", 0, 12_000),
            ("a", 0, 9_000),  # out of order, window [0,10s) still open (grace until 15s)
            ("b", 0, 14_000),
            ("a", 0, 15_000),  # stream time 15s: window [0,10s) closes
            ("a", 0, 2_000),  # late: dropped and counted
        ],
    )
    W = Windowed
    assert out == [
        (W("a", 0, 10_000), 1),
        (W("a", 10_000, 20_000), 1),
        (W("a", 0, 10_000), 2),
        (W("b", 10_000, 20_000), 1),
        (W("a", 10_000, 20_000), 2),
    ]
    assert driver.tasks[0].dropped_late_records == 1
    assert driver.store("c").fetch("a", 10_000) == 2
    driver.close()


def test_late_records_go_to_on_late_callback() -> None:
    late: list[tuple[Any, Any, int]] = []
    app = _app(
        "onlate",
        lambda g: g.window(windows.tumbling(timedelta(seconds=10))).count(
            name="c", on_late=lambda k, v, ts: late.append((k, v, ts))
        ),
    )
    _, driver = _run(app, [("a", 7, 25_000), ("a", 8, 3_000)])
    assert late == [("a", 8, 3_000)]
    assert driver.tasks[0].dropped_late_records == 1
    driver.close()


def test_hopping_windows_update_every_window_a_record_falls_in() -> None:
    app = _app("hop", lambda g: g.window(windows.hopping(10, 5)).reduce(lambda a, b: a + b))
    out, driver = _run(app, [("a", 1, 7_000), ("a", 2, 12_000)])
    W = Windowed
    assert out == [
        (W("a", 0, 10_000), 1),
        (W("a", 5_000, 15_000), 1),
        (W("a", 5_000, 15_000), 3),
        (W("a", 10_000, 20_000), 2),
    ]
    driver.close()


def test_grace_expiry_drops_windows_from_the_store() -> None:
    app = _app("expiry", lambda g: g.window(windows.tumbling(10)).count(name="c"))
    _, driver = _run(app, [("a", 0, 1_000), ("b", 0, 35_000)])
    # retention is size + grace: the window [0, 10s) is gone once stream time passes 20s
    assert driver.store("c").all() == {("b", 30_000): 1}
    driver.close()


def test_sliding_windows_left_and_right_windows() -> None:
    app = _app("slide", lambda g: g.window(windows.sliding(10, grace=5)).reduce(lambda a, b: a + b))
    out, driver = _run(app, [("a", 1, 0), ("a", 2, 5_000), ("a", 4, 12_000), ("a", 8, 1_000)])
    W = Windowed
    assert out == [
        (W("a", 0, 0), 1),  # left window of t=0
        (W("a", 0, 5_000), 3),  # left window of t=5s: {0, 5s}
        (W("a", 1, 10_001), 2),  # right window of t=0: {5s}
        (W("a", 2_000, 12_000), 6),  # left window of t=12s: {5s, 12s}
        (W("a", 5_001, 15_001), 4),  # right window of t=5s: {12s}
        # t=1s, out of order: only windows still open at stream time 12s (end + 5s grace >=
        # 12s) are updated; its own left window [0, 1s] has already closed
        (W("a", 1, 10_001), 10),  # right window of t=0, recomputed: {1s, 5s}
        (W("a", 1_001, 11_001), 2),  # its own right window: {5s}
    ]
    driver.close()


def test_sliding_window_late_record_is_dropped() -> None:
    app = _app("slide-late", lambda g: g.window(windows.sliding(5, grace=1)).count())
    out, driver = _run(app, [("a", 0, 20_000), ("a", 0, 13_000), ("a", 0, 16_000)])
    assert out == [
        (Windowed("a", 15_000, 20_000), 1),
        # 13s is late (13s + 5s + 1s grace < 20s); 16s updates the open windows only
        (Windowed("a", 15_000, 20_000), 2),
        (Windowed("a", 16_001, 21_001), 1),
    ]
    assert driver.tasks[0].dropped_late_records == 1
    driver.close()


def test_session_windows_merge_and_retract_old_sessions() -> None:
    app = _app("sess", lambda g: g.window(windows.session(5)).count(name="s"))
    out, driver = _run(
        app,
        [
            ("a", 0, 0),
            ("a", 0, 3_000),  # extends [0,0] to [0,3s]
            ("a", 0, 12_000),  # new session
            ("a", 0, 7_000),  # bridges [0,3s] and [12s,12s] into [0,12s]
            ("a", 0, 30_000),
            ("a", 0, 14_000),  # late: its session would end before stream time 30s
        ],
    )
    W = Windowed
    assert out == [
        (W("a", 0, 0), 1),
        (W("a", 0, 0), None),
        (W("a", 0, 3_000), 2),
        (W("a", 12_000, 12_000), 1),
        (W("a", 0, 3_000), None),
        (W("a", 12_000, 12_000), None),
        (W("a", 0, 12_000), 4),
        (W("a", 30_000, 30_000), 1),
    ]
    assert driver.tasks[0].dropped_late_records == 1
    assert driver.store("s").fetch("a") == [((30_000, 30_000), 1)]
    driver.close()


def test_session_aggregate_uses_the_merger() -> None:
    app = _app(
        "sessagg",
        lambda g: g.window(windows.session(5)).aggregate(
            list, lambda k, v, agg: [*agg, v], lambda k, a, b: a + b, value_serde="json"
        ),
        value_serde="json",
    )
    out, driver = _run(app, [("a", 1, 0), ("a", 2, 8_000), ("a", 3, 4_000)])
    assert out[-1] == (Windowed("a", 0, 8_000), [1, 2, 3])
    driver.close()


def test_suppress_emits_exactly_one_final_result_per_window() -> None:
    app = _app(
        "supp",
        lambda g: g.window(windows.tumbling(10, grace=2)).count(name="c").suppress(),
    )
    out, driver = _run(
        app,
        [
            ("a", 0, 1_000),
            ("a", 0, 2_000),
            ("b", 0, 5_000),
            ("a", 0, 11_000),  # stream time 11s < 10s + 2s grace: nothing final yet
            ("a", 0, 9_000),  # still within grace
            ("a", 0, 12_000),  # 12s: [0, 10s) closes for every key
            ("a", 0, 25_000),  # closes [10s, 20s)
        ],
    )
    W = Windowed
    assert out == [(W("a", 0, 10_000), 3), (W("b", 0, 10_000), 1), (W("a", 10_000, 20_000), 2)]
    driver.close()


def test_suppress_session_windows_emit_final_session_only() -> None:
    app = _app("supp-sess", lambda g: g.window(windows.session(5)).count().suppress())
    out, driver = _run(app, [("a", 0, 0), ("a", 0, 3_000), ("a", 0, 8_000), ("a", 0, 20_000)])
    assert out == [(Windowed("a", 0, 8_000), 3)]
    driver.close()


def test_wall_clock_closes_windows_of_an_idle_stream() -> None:
    app = _app(
        "supp-wall",
        lambda g: g.window(windows.tumbling(60)).count().suppress(wall_clock=True),
    )
    driver = TopologyTestDriver(app, initial_wall_clock_ms=0)
    driver.input_topic("in").pipe_input("a", 0, timestamp=10_000)
    driver.input_topic("in").pipe_input("a", 0, timestamp=20_000)
    out = driver.output_topic("out")
    driver.advance_wall_clock(seconds=30)
    assert out.read_key_values_to_list() == []
    driver.advance_wall_clock(seconds=31)  # wall clock 61s: past the window end
    assert out.read_key_values_to_list() == [(Windowed("a", 0, 60_000), 2)]
    driver.advance_wall_clock(seconds=60)
    assert out.is_empty()
    driver.close()


def test_without_wall_clock_an_idle_window_stays_open() -> None:
    app = _app("supp-nowall", lambda g: g.window(windows.tumbling(60)).count().suppress())
    driver = TopologyTestDriver(app)
    driver.input_topic("in").pipe_input("a", 0, timestamp=10_000)
    driver.advance_wall_clock(seconds=600)
    assert driver.output_topic("out").is_empty()
    driver.close()


def test_windows_on_rocksdb_match_memory(tmp_path: Path) -> None:
    records = [(f"k{i % 7}", i, i * 1_500) for i in range(60)] + [("k1", 0, 3_000)]

    def build(g: Any) -> Any:
        return g.window(windows.hopping(10, 5, grace=3)).count(name="c")

    mem, d1 = _run(_app("eq", build), records)
    rdb, d2 = _run(_app("eq", build), records, store="rocksdb", state_dir=tmp_path)
    assert mem == rdb
    assert d1.store("c").all() == d2.store("c").all()
    assert d1.tasks[0].dropped_late_records == d2.tasks[0].dropped_late_records == 1
    # the changelog holds raw window keys: key bytes + 8-byte big-endian start
    changelog = d2.changelog("c")
    assert changelog[0][1] == b"k0" + (0).to_bytes(8, "big")
    d1.close()
    d2.close()


def test_window_state_restores_from_changelog(tmp_path: Path) -> None:
    app = _app("restore", lambda g: g.window(windows.tumbling(10)).count(name="c"))
    _, d1 = _run(app, [("a", 0, 1_000), ("a", 0, 2_000), ("b", 0, 3_000)])
    records = [(o, k, v) for o, k, v in d1.changelog("c") if k is not None]
    d1.close()
    d2 = TopologyTestDriver(app, store="rocksdb", state_dir=tmp_path)
    d2.tasks[0].restore("c", records)
    d2.input_topic("in").pipe_input("a", 0, timestamp=4_000)
    assert d2.output_topic("out").read_key_values_to_list() == [(Windowed("a", 0, 10_000), 3)]
    d2.close()


def test_windowed_serde_round_trip_and_errors() -> None:
    serde = windows.windowed_serde("str")
    assert serde.decode(serde.encode(Windowed("x", 5, 10))) == Windowed("x", 5, 10)
    with pytest.raises(TypeError, match="Windowed"):
        serde.encode("x")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: windows.tumbling(0), "positive"),
        (lambda: windows.tumbling(-1), "positive"),
        (lambda: windows.tumbling("10s"), "seconds or a datetime.timedelta"),
        (lambda: windows.hopping(10, 20), "must not exceed its size"),
        (lambda: windows.session(5, grace=-1), "grace must be zero or more"),
        (lambda: windows.sliding(True), "seconds"),
    ],
)
def test_bad_window_definitions(make: Any, match: str) -> None:
    with pytest.raises(flows.TopologyError, match=match):
        make()


def test_bad_windowed_aggregations() -> None:
    app = flows.App("bad")
    g = app.stream(app.topic("in", key_serde="str", value_serde="int")).group_by_key()
    with pytest.raises(flows.TopologyError, match="window\\(\\) needs"):
        g.window(windows.join_window(5))
    with pytest.raises(flows.TopologyError, match="window\\(\\) needs"):
        g.window(60)  # type: ignore[arg-type]
    with pytest.raises(flows.TopologyError, match="needs merger"):
        g.window(windows.session(5)).aggregate(list, lambda k, v, a: a)
    with pytest.raises(flows.TopologyError, match="on_late must be a function"):
        g.window(windows.tumbling(5)).count(on_late=3)
    table = g.count(name="plain")
    with pytest.raises(flows.TopologyError, match="for windowed tables"):
        table.suppress()
    windowed = g.window(windows.tumbling(5)).count(name="w")
    with pytest.raises(flows.TopologyError, match="until_window_closes=True"):
        windowed.suppress(until_window_closes=False)
    with pytest.raises(flows.TopologyError, match="interval"):
        windowed.suppress(interval=0)


def test_windowed_keys_need_a_windowed_serde_on_the_sink() -> None:
    app = flows.App("sinkserde")
    src = app.topic("in", key_serde="str", value_serde="int")
    plain = app.topic("plain", key_serde="str", value_serde="int")
    counts = app.stream(src).group_by_key().window(windows.tumbling(5)).count().to_stream()
    with pytest.raises(flows.TopologyError, match=r"windowed_serde\('str'\).*wk\.key"):
        counts.to(plain)
    counts.map(lambda wk, n: (wk.key, n), key_serde="str").to(plain)
    with TopologyTestDriver(app) as driver:
        driver.input_topic("in").pipe_input("a", 1, timestamp=0)
        assert driver.output_topic("plain").read_key_values_to_list() == [("a", 1)]


def test_failing_aggregator_names_the_step() -> None:
    app = _app(
        "boom", lambda g: g.window(windows.tumbling(5)).reduce(lambda a, b: a / 0, name="div")
    )
    with TopologyTestDriver(app) as driver:
        driver.input_topic("in").pipe_input("a", 1, timestamp=0)
        with pytest.raises(flows.ProcessingError, match=r"step 'div' failed.*ZeroDivisionError"):
            driver.input_topic("in").pipe_input("a", 2, timestamp=1)


def test_describe_shows_windows_suppression_and_window_stores() -> None:
    app = _app(
        "desc",
        lambda g: g.window(windows.hopping(10, 5, grace=1)).count(name="c").suppress(name="fin"),
    )
    text = app.topology.describe()
    assert (
        "Processor: c (stores: [c]) [hopping(size=10000ms, advance=5000ms, grace=1000ms)]" in text
    )
    assert "Processor: fin (stores: [fin]) [hopping(" in text
    assert "until window closes" in text
    assert "Store: c (window, retention 11000ms)" in text


@pytest.mark.parametrize(
    "module",
    [
        "flows.windows",
        "flows.windowed",
        "flows.time",
        "core.cron",
        "core.windowing",
        "core.partition_group",
        "state.windowed",
        "state.session",
        "state.timed_cache",
    ],
)
def test_window_and_time_doc_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
