"""Stream-table, stream-global-table and table-table joins against hand-computed output."""

from __future__ import annotations

from typing import Any

import pytest

import flows
from flows.testing import TopologyTestDriver


def _pair(a: Any, b: Any) -> str:
    return f"{a}|{b}"


def _tables(how: str) -> flows.App:
    app = flows.App(f"tt-{how}")
    left = app.table(app.topic("L", key_serde="str", value_serde="str"), name="left")
    right = app.table(app.topic("R", key_serde="str", value_serde="str"), name="right")
    out = app.topic("out", key_serde="str", value_serde="str")
    getattr(left, {"inner": "join", "left": "left_join", "outer": "outer_join"}[how])(
        right, _pair, name="j"
    ).to_stream().to(out)
    return app


_TT_INPUT = [
    ("L", "k", "a1"),
    ("R", "k", "b1"),
    ("L", "k", "a2"),
    ("R", "k", None),  # right tombstone
    ("L", "k", None),  # left tombstone
    ("R", "k", "b2"),
    ("R", "k", None),
]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("inner", [("k", "a1|b1"), ("k", "a2|b1"), ("k", None)]),
        (
            "left",
            [("k", "a1|None"), ("k", "a1|b1"), ("k", "a2|b1"), ("k", "a2|None"), ("k", None)],
        ),
        (
            "outer",
            [
                ("k", "a1|None"),
                ("k", "a1|b1"),
                ("k", "a2|b1"),
                ("k", "a2|None"),
                ("k", None),
                ("k", "None|b2"),
                ("k", None),
            ],
        ),
    ],
)
def test_table_table_joins_with_tombstones(how: str, expected: list[Any]) -> None:
    with TopologyTestDriver(_tables(how)) as driver:
        for topic, k, v in _TT_INPUT:
            driver.input_topic(topic).pipe_input(k, v)
        assert driver.output_topic("out").read_key_values_to_list() == expected


def test_table_join_on_derived_tables_materializes_them() -> None:
    app = flows.App("tt-derived")
    left = app.table(app.topic("L", key_serde="str", value_serde="int"))
    right = app.table(app.topic("R", key_serde="str", value_serde="int"))
    out = app.topic("out", key_serde="str", value_serde="int")
    left.filter(lambda k, v: v > 0).join(right.map_values(lambda v: v * 10), lambda a, b: a + b)
    left_copy = left  # the join above must not break further use of the left table
    left_copy.to_stream().to(out)
    text = app.topology.describe()
    assert "-materialized" in text
    with TopologyTestDriver(app) as driver:
        driver.input_topic("L").pipe_input("k", 1)
        assert driver.output_topic("out").read_key_values_to_list() == [("k", 1)]


def _stream_table(how: str) -> flows.App:
    app = flows.App(f"st-{how}")
    users = app.table(app.topic("users", key_serde="str", value_serde="str"), name="users")
    clicks = app.stream(app.topic("clicks", key_serde="str", value_serde="str"))
    out = app.topic("out", key_serde="str", value_serde="str")
    getattr(clicks, "join" if how == "inner" else "left_join")(users, _pair, name="j").to(out)
    return app


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("inner", [("u1", "c2|ann"), ("u1", "c3|anna")]),
        ("left", [("u1", "c1|None"), ("u1", "c2|ann"), ("u1", "c3|anna"), ("u1", "c4|None")]),
    ],
)
def test_stream_table_joins(how: str, expected: list[Any]) -> None:
    with TopologyTestDriver(_stream_table(how)) as driver:
        clicks, users = driver.input_topic("clicks"), driver.input_topic("users")
        clicks.pipe_input("u1", "c1")
        users.pipe_input("u1", "ann")
        clicks.pipe_input("u1", "c2")
        users.pipe_input("u1", "anna")
        clicks.pipe_input("u1", "c3")
        users.pipe_input("u1", None)  # table tombstone
        clicks.pipe_input("u1", "c4")
        clicks.pipe_input(None, "c5")  # null keys never join
        assert driver.output_topic("out").read_key_values_to_list() == expected


def test_stream_table_join_after_key_change_repartitions() -> None:
    app = flows.App("st-rekey")
    users = app.table(app.topic("users", key_serde="str", value_serde="str", partitions=4))
    orders = app.stream(app.topic("orders", key_serde="str", value_serde="json", partitions=2))
    out = app.topic("out", key_serde="str", value_serde="str")
    orders.select_key(lambda k, v: v["user"], key_serde="str").join(
        users, lambda o, u: f"{u}:{o['item']}", name="enrich"
    ).to(out)
    topo = app.topology
    assert len(topo.subtopologies) == 2
    assert "st-rekey-enrich-left-repartition" in topo.describe()
    joining = next(st for st in topo.subtopologies if any(n.name == "enrich" for n in st.nodes))
    assert joining.partitions == 4
    rp = next(n for n in joining.nodes if n.role == "repartition_source")
    assert rp.topic is not None and rp.topic.partitions == 4
    with TopologyTestDriver(app) as driver:
        driver.input_topic("users").pipe_input("ann", "Ann")
        driver.input_topic("orders").pipe_input("o1", {"user": "ann", "item": "pen"})
        assert driver.output_topic("out").read_key_values_to_list() == [("ann", "Ann:pen")]


def test_stream_global_table_join_with_key_selector() -> None:
    app = flows.App("sg")
    products = app.global_table(app.topic("products", key_serde="str", value_serde="str"))
    orders = app.stream(app.topic("orders", key_serde="str", value_serde="json"))
    out = app.topic("out", key_serde="str", value_serde="str")
    orders.join(products, lambda o, p: f"{o['qty']}x{p}", key_selector=lambda k, o: o["sku"]).to(
        out
    )
    left_out = app.topic("left-out", key_serde="str", value_serde="str")
    orders.left_join(
        products, lambda o, p: f"{o['qty']}x{p}", key_selector=lambda k, o: o["sku"]
    ).to(left_out)
    with TopologyTestDriver(app) as driver:
        driver.input_topic("products").pipe_input("p1", "pen")
        driver.input_topic("orders").pipe_input("o1", {"sku": "p1", "qty": 2})
        driver.input_topic("orders").pipe_input("o2", {"sku": "p9", "qty": 1})
        assert driver.output_topic("out").read_key_values_to_list() == [("o1", "2xpen")]
        assert driver.output_topic("left-out").read_key_values_to_list() == [
            ("o1", "2xpen"),
            ("o2", "1xNone"),
        ]


def test_join_copartitioning_error_names_topics_and_fix() -> None:
    app = flows.App("copart")
    left = app.table(app.topic("a", key_serde="str", value_serde="str", partitions=3))
    right = app.table(app.topic("b", key_serde="str", value_serde="str", partitions=4))
    left.join(right, _pair, name="X")
    with pytest.raises(
        flows.TopologyError,
        match=r"join step 'X': topics 'a' \(3 partitions\) and 'b' \(4 partitions\) are not "
        r"co-partitioned: repartition one side with \.repartition\(partitions=4\)",
    ):
        app.topology  # noqa: B018


def test_bad_joins() -> None:
    app = flows.App("badjoin")
    s = app.stream(app.topic("s", key_serde="str", value_serde="str"))
    t = app.table(app.topic("t", key_serde="str", value_serde="str"))
    g = app.global_table(app.topic("g", key_serde="str", value_serde="str"))
    with pytest.raises(flows.TopologyError, match="needs joiner"):
        s.join(t, "nope")  # type: ignore[arg-type]
    with pytest.raises(flows.TopologyError, match="needs key_selector"):
        s.join(g, _pair)
    with pytest.raises(flows.TopologyError, match="outer_join\\(\\) of a stream with a table"):
        s.outer_join(t, _pair)  # type: ignore[arg-type]
    with pytest.raises(flows.TopologyError, match=r"needs window=windows\.join_window"):
        s.join(s.map_values(str.upper), _pair)
    with pytest.raises(flows.TopologyError, match="with itself"):
        from flows import windows

        s.join(s, _pair, window=windows.join_window(5))
    with pytest.raises(flows.TopologyError, match="needs a Stream, Table or GlobalTable"):
        s.join(42, _pair)
    with pytest.raises(flows.TopologyError, match="needs a Table of the same app"):
        t.join(s, _pair)  # type: ignore[arg-type]
    with pytest.raises(flows.TopologyError, match="foreign_key must be a function"):
        t.join(t.map_values(str.upper), _pair, foreign_key="x")
    with pytest.raises(flows.TopologyError, match="with itself"):
        t.join(t, _pair)
