"""Aggregations, tables (tombstones included), global tables and the Processor API."""

from __future__ import annotations

from typing import Any

import pytest

import flows
from flows.testing import TopologyTestDriver


def _grouped_app(name: str = "g") -> tuple[flows.App, flows.Stream]:
    app = flows.App(name)
    return app, app.stream(app.topic("in", key_serde="str", value_serde="int"))


def test_count_by_key() -> None:
    app, s = _grouped_app()
    out = app.topic("out", key_serde="str", value_serde="int")
    s.group_by_key().count(name="c").to_stream().to(out)
    with TopologyTestDriver(app) as driver:
        src = driver.input_topic("in")
        for k in ["a", "b", "a", "a"]:
            src.pipe_input(k, 1)
        src.pipe_input(None, 1)  # null keys are skipped by aggregations
        assert driver.output_topic("out").read_key_values_to_list() == [
            ("a", 1),
            ("b", 1),
            ("a", 2),
            ("a", 3),
        ]
        assert driver.store("c").get("a") == 3
        assert driver.store("c").all() == {"a": 3, "b": 1}


def test_reduce() -> None:
    app, s = _grouped_app()
    out = app.topic("out", key_serde="str", value_serde="int")
    s.group_by_key().reduce(lambda agg, v: agg + v, name="sum").to_stream().to(out)
    with TopologyTestDriver(app) as driver:
        for k, v in [("a", 1), ("a", 2), ("b", 5), ("a", 3)]:
            driver.input_topic("in").pipe_input(k, v)
        assert driver.output_topic("out").read_key_values_to_list() == [
            ("a", 1),
            ("a", 3),
            ("b", 5),
            ("a", 6),
        ]


def test_aggregate_with_json_values() -> None:
    app, s = _grouped_app()
    out = app.topic("out", key_serde="str", value_serde="json")
    s.group_by_key().aggregate(
        lambda: {"n": 0, "total": 0},
        lambda k, v, agg: {"n": agg["n"] + 1, "total": agg["total"] + v},
        name="stats",
        value_serde="json",
    ).to_stream().to(out)
    with TopologyTestDriver(app) as driver:
        driver.input_topic("in").pipe_input("a", 4)
        driver.input_topic("in").pipe_input("a", 6)
        assert driver.output_topic("out").read_key_values_to_map() == {"a": {"n": 2, "total": 10}}


def test_group_by_repartitions_then_counts() -> None:
    app, s = _grouped_app("gb")
    out = app.topic("out", key_serde="int", value_serde="int")
    s.group_by(lambda k, v: v % 2, name="parity", key_serde="int").count(name="n").to_stream().to(
        out
    )
    with TopologyTestDriver(app) as driver:
        for k, v in [("a", 1), ("b", 2), ("c", 3)]:
            driver.input_topic("in").pipe_input(k, v)
        assert driver.output_topic("out").read_key_values_to_list() == [(1, 1), (0, 1), (1, 2)]
        assert len(driver.produced("gb-parity-repartition")) == 3
    assert len(app.topology.subtopologies) == 2


def test_key_changing_step_before_group_by_key_inserts_repartition() -> None:
    app, s = _grouped_app("kc")
    s.select_key(lambda k, v: k.upper(), key_serde="str").group_by_key().count(name="n")
    names = [n.name for sub in app.topology.subtopologies for n in sub.nodes]
    assert "n-repartition-sink" in names and "n-repartition-source" in names


def test_table_from_topic_and_tombstones() -> None:
    app = flows.App("tab")
    users = app.table(app.topic("users", key_serde="str", value_serde="json"), name="users")
    out = app.topic("out", key_serde="str", value_serde="json")
    users.to_stream().to(out)
    with TopologyTestDriver(app) as driver:
        src = driver.input_topic("users")
        src.pipe_input("ann", {"age": 3})
        src.pipe_input("bob", {"age": 5})
        src.pipe_input("ann", None)
        assert driver.output_topic("out").read_key_values_to_list() == [
            ("ann", {"age": 3}),
            ("bob", {"age": 5}),
            ("ann", None),
        ]
        assert driver.store("users").get("ann") is None
        assert driver.store("users").all() == {"bob": {"age": 5}}
        tail = driver.changelog("users")[-1]
        assert tail[1:] == (b"ann", None)


def test_table_filter_forwards_tombstone_for_non_matching_key() -> None:
    app = flows.App("tf")
    t = app.table(app.topic("t", key_serde="str", value_serde="int"))
    out = app.topic("out", key_serde="str", value_serde="int")
    t.filter(lambda k, v: v > 10).to_stream().to(out)
    with TopologyTestDriver(app) as driver:
        for v in [20, 5, None, 30]:
            driver.input_topic("t").pipe_input("k", v)
        assert driver.output_topic("out").read_key_values_to_list() == [
            ("k", 20),
            ("k", None),
            ("k", None),
            ("k", 30),
        ]


def test_table_filter_not_and_map_values() -> None:
    app = flows.App("tm")
    t = app.table(app.topic("t", key_serde="str", value_serde="int"))
    out = app.topic("out", key_serde="str", value_serde="str")
    t.filter_not(lambda k, v: v == 0).map_values(
        lambda v: f"#{v}", value_serde="str"
    ).to_stream().to(out)
    with TopologyTestDriver(app) as driver:
        for v in [1, 0, None]:
            driver.input_topic("t").pipe_input("k", v)
        assert driver.output_topic("out").read_key_values_to_list() == [
            ("k", "#1"),
            ("k", None),
            ("k", None),
        ]


def test_count_table_filter_emits_tombstone_when_count_stops_matching() -> None:
    app, s = _grouped_app("cf")
    out = app.topic("out", key_serde="str", value_serde="int")
    s.group_by_key().count(name="n").filter(lambda k, c: c % 2 == 1).to_stream().to(out)
    with TopologyTestDriver(app) as driver:
        for _ in range(3):
            driver.input_topic("in").pipe_input("a", 0)
        assert driver.output_topic("out").read_key_values_to_list() == [
            ("a", 1),
            ("a", None),
            ("a", 3),
        ]


class Enrich:
    def process(self, record: flows.Record, ctx: Any) -> None:
        country = ctx.store("countries").get(record.key)
        ctx.forward(record.with_value(f"{record.value}@{country}"))


def test_global_table_read_from_processor() -> None:
    app = flows.App("gt")
    countries = app.global_table(
        app.topic("countries", key_serde="str", value_serde="str"), name="countries"
    )
    out = app.topic("out", key_serde="str", value_serde="str")
    app.stream(app.topic("in", key_serde="str", value_serde="str")).process(
        Enrich, stores=[countries.store_name]
    ).to(out)
    assert "for global store" in app.topology.describe()
    with TopologyTestDriver(app) as driver:
        driver.input_topic("countries").pipe_input("ann", "NZ")
        driver.input_topic("in").pipe_input("ann", "order-1")
        driver.input_topic("in").pipe_input("bob", "order-2")
        assert driver.output_topic("out").read_values_to_list() == ["order-1@NZ", "order-2@None"]
        assert driver.store("countries").get("ann") == "NZ"


class Buffer:
    """Buffers values and flushes their sum on a schedule."""

    def __init__(self) -> None:
        self.fired: list[int] = []

    def init(self, ctx: Any) -> None:
        self.ctx = ctx
        ctx.schedule(10, "wall_clock", self.flush)
        ctx.schedule(1, "stream_time", self.fired.append)

    def flush(self, ts: int) -> None:
        store = self.ctx.store("buf")
        for key, total in list(store.items()):
            self.ctx.forward(flows.Record(key, total, ts))
            store.delete(key)

    def process(self, record: flows.Record, ctx: Any) -> None:
        store = ctx.store("buf")
        store.put(record.key, (store.get(record.key) or 0) + record.value)


def test_processor_with_store_and_punctuation() -> None:
    app, s = _grouped_app("p")
    buf = app.store("buf", key_serde="str", value_serde="int")
    out = app.topic("out", key_serde="str", value_serde="int")
    s.process(Buffer, stores=[buf], name="buffer").to(out)
    with TopologyTestDriver(app) as driver:
        src = driver.input_topic("in")
        src.pipe_input("a", 1, timestamp=0)
        src.pipe_input("a", 2, timestamp=500)
        src.pipe_input("b", 5, timestamp=2500)
        o = driver.output_topic("out")
        assert o.is_empty()
        driver.advance_wall_clock(seconds=9)
        assert o.is_empty()
        driver.advance_wall_clock(seconds=1)
        assert o.read_key_values_to_list() == [("a", 3), ("b", 5)]
        assert driver.store("buf").all() == {}
        processor_state = driver.tasks[0]
        assert processor_state.stream_time == 2500


def test_stream_time_punctuation_fires_on_first_record_then_each_interval() -> None:
    fired: list[int] = []

    class P:
        def init(self, ctx: Any) -> None:
            ctx.schedule(1, "stream_time", fired.append)

        def process(self, record: flows.Record, ctx: Any) -> None:
            pass

    app, s = _grouped_app("st")
    s.process(P)
    with TopologyTestDriver(app) as driver:
        for ts in [100, 600, 1100, 1200, 3500]:
            driver.input_topic("in").pipe_input("k", 1, timestamp=ts)
    assert fired == [100, 1100, 3500]


def test_function_processor_and_undeclared_store() -> None:
    app, s = _grouped_app("fp")
    out = app.topic("out", key_serde="str", value_serde="int")
    s.process(lambda record, ctx: ctx.forward(record.with_value(record.value + 1))).to(out)
    with TopologyTestDriver(app) as driver:
        driver.input_topic("in").pipe_input("k", 1)
        assert driver.output_topic("out").read_value() == 2

    app2, s2 = _grouped_app("fp2")
    s2.process(lambda record, ctx: ctx.store("nope"), name="sneaky")
    with (
        TopologyTestDriver(app2) as driver,
        pytest.raises(flows.ProcessingError, match=r"stores=\['nope'\]"),
    ):
        driver.input_topic("in").pipe_input("k", 1)


def test_schedule_rejects_bad_arguments() -> None:
    class Bad:
        def init(self, ctx: Any) -> None:
            ctx.schedule(1, "sometimes", print)

        def process(self, record: flows.Record, ctx: Any) -> None:
            pass

    app, s = _grouped_app("bad")
    s.process(Bad, name="bad-step")
    with pytest.raises(flows.ProcessingError, match=r"'bad-step'.*stream_time"):
        TopologyTestDriver(app)


def test_process_rejects_non_processor() -> None:
    _, s = _grouped_app()
    with pytest.raises(flows.TopologyError, match="process"):
        s.process(42)
