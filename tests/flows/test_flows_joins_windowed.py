"""Windowed stream-stream joins (inner, left, outer) against hand-computed output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import flows
from flows import windows
from flows.testing import TopologyTestDriver


def _app(how: str, grace: float = 0) -> flows.App:
    app = flows.App(f"ss-{how}")
    left = app.stream(app.topic("L", key_serde="str", value_serde="str"))
    right = app.stream(app.topic("R", key_serde="str", value_serde="str"))
    out = app.topic("out", key_serde="str", value_serde="str")
    op = {"inner": left.join, "left": left.left_join, "outer": left.outer_join}[how]
    op(right, lambda a, b: f"{a}|{b}", window=windows.join_window(5, grace=grace), name="j").to(out)
    return app


# (topic, key, value, timestamp ms); max_difference 5s, no grace
_INPUT = [
    ("L", "k", "a", 0),
    ("R", "k", "x", 3_000),  # joins a
    ("R", "k", "y", 6_000),  # 6s from a: no partner yet
    ("L", "k", "b", 4_000),  # out of order: joins x and y
    ("L", "k", "c", 20_000),  # no partner
    ("R", "k", "z", 14_000),  # late: 14s + 5s < stream time 20s
    ("L", "q", "d", 26_000),  # stream time 26s closes c's window (20s + 5s < 26s)
    ("R", "k", "w", 40_000),  # closes d's window
    ("R", "k", "v", 50_000),  # closes w's window
]


def _run(app: flows.App, inputs: list[tuple[str, str, str, int]], **kw: Any) -> tuple[list, Any]:
    driver = TopologyTestDriver(app, **kw)
    for topic, k, v, ts in inputs:
        driver.input_topic(topic).pipe_input(k, v, timestamp=ts)
    out = [(r.key, r.value, r.timestamp) for r in driver.output_topic("out").read_records_to_list()]
    return out, driver


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("inner", [("k", "a|x", 3_000), ("k", "b|x", 4_000), ("k", "b|y", 6_000)]),
        (
            "left",
            [
                ("k", "a|x", 3_000),
                ("k", "b|x", 4_000),
                ("k", "b|y", 6_000),
                ("k", "c|None", 20_000),
                ("q", "d|None", 26_000),
            ],
        ),
        (
            "outer",
            [
                ("k", "a|x", 3_000),
                ("k", "b|x", 4_000),
                ("k", "b|y", 6_000),
                ("k", "c|None", 20_000),
                ("q", "d|None", 26_000),
                ("k", "None|w", 40_000),
            ],
        ),
    ],
)
def test_stream_stream_joins(how: str, expected: list[Any]) -> None:
    out, driver = _run(_app(how), _INPUT)
    assert out == expected
    assert driver.tasks[0].dropped_late_records == 1
    driver.close()


def test_left_join_never_emits_an_early_unmatched_result() -> None:
    # a has no partner when it arrives, but x joins it before its window closes: only a|x
    out, driver = _run(
        _app("left"), [("L", "k", "a", 0), ("R", "k", "x", 4_000), ("L", "q", "e", 30_000)]
    )
    assert [v for _, v, _ in out] == ["a|x"]
    driver.close()


def test_grace_admits_out_of_order_records() -> None:
    inputs = [("L", "k", "a", 0), ("L", "q", "b", 9_000), ("R", "k", "x", 2_000)]
    strict, d1 = _run(_app("inner"), inputs)
    graceful, d2 = _run(_app("inner", grace=10), inputs)
    assert strict == []
    assert d1.tasks[0].dropped_late_records == 1
    assert graceful == [("k", "a|x", 2_000)]
    d1.close()
    d2.close()


def test_join_buffers_on_rocksdb_match_memory(tmp_path: Path) -> None:
    mem, d1 = _run(_app("outer"), _INPUT)
    rdb, d2 = _run(_app("outer"), _INPUT, store="rocksdb", state_dir=tmp_path)
    assert mem == rdb
    assert {s for s in d2.topology.stores} == {"j-left", "j-right", "j-outer"}
    d1.close()
    d2.close()


def test_unmatched_buffer_survives_restore(tmp_path: Path) -> None:
    app = _app("left")
    _, d1 = _run(app, [("L", "k", "a", 0)])
    logs = {
        s: [(o, k, v) for o, k, v in d1.changelog(s) if k is not None] for s in d1.topology.stores
    }
    d1.close()
    d2 = TopologyTestDriver(app, store="rocksdb", state_dir=tmp_path)
    for store, records in logs.items():
        d2.tasks[0].restore(store, records)
    d2.input_topic("L").pipe_input("q", "e", timestamp=30_000)
    assert d2.output_topic("out").read_key_values_to_list() == [("k", "a|None")]
    d2.close()


def test_rekeyed_side_is_repartitioned_like_the_other_side() -> None:
    app = flows.App("ss-rekey")
    left = app.stream(app.topic("L", key_serde="str", value_serde="json", partitions=2))
    right = app.stream(app.topic("R", key_serde="str", value_serde="str", partitions=6))
    out = app.topic("out", key_serde="str", value_serde="str")
    left.select_key(lambda k, v: v["id"], key_serde="str").join(
        right, lambda a, b: f"{a['n']}{b}", window=windows.join_window(1), name="j"
    ).to(out)
    joining = next(st for st in app.topology.subtopologies if any(n.name == "j" for n in st.nodes))
    assert joining.partitions == 6
    with TopologyTestDriver(app) as driver:
        driver.input_topic("R").pipe_input("x", "!", timestamp=0)
        driver.input_topic("L").pipe_input("k", {"id": "x", "n": 1}, timestamp=500)
        assert driver.output_topic("out").read_key_values_to_list() == [("x", "1!")]


def test_null_keys_skip_and_late_records_reach_on_late() -> None:
    late: list[Any] = []
    app = flows.App("ss-late")
    left = app.stream(app.topic("L", key_serde="str", value_serde="str"))
    right = app.stream(app.topic("R", key_serde="str", value_serde="str"))
    out = app.topic("out", key_serde="str", value_serde="str")
    left.join(
        right,
        lambda a, b: a + b,
        window=windows.join_window(1),
        on_late=lambda k, v, ts: late.append((k, v, ts)),
    ).to(out)
    with TopologyTestDriver(app) as driver:
        driver.input_topic("L").pipe_input(None, "n", timestamp=0)
        driver.input_topic("L").pipe_input("k", "a", timestamp=10_000)
        driver.input_topic("R").pipe_input("k", "x", timestamp=1_000)
        assert driver.output_topic("out").is_empty()
        assert late == [("k", "x", 1_000)]


def test_windowed_tables_cannot_be_joined() -> None:
    app = flows.App("ss-wt")
    s = app.stream(app.topic("s", key_serde="str", value_serde="str"))
    counts = s.group_by_key().window(windows.tumbling(5)).count()
    other = app.table(app.topic("t", key_serde="str", value_serde="str"))
    with pytest.raises(flows.TopologyError, match="windowed tables is not supported"):
        counts.join(other, lambda a, b: a)
