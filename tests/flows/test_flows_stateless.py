"""Every stateless operator, checked through the test driver with exact outputs."""

from __future__ import annotations

from typing import Any

import pytest

import flows
from flows.testing import TopologyTestDriver


def _app(name: str = "t") -> tuple[flows.App, flows.Stream, Any]:
    app = flows.App(name)
    src = app.stream(app.topic("in", key_serde="str", value_serde="str"))
    out = app.topic("out", key_serde="str", value_serde="str")
    return app, src, out


def _run(app: flows.App, pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    with TopologyTestDriver(app) as driver:
        src = driver.input_topic("in")
        for k, v in pairs:
            src.pipe_input(k, v)
        return driver.output_topic("out").read_key_values_to_list()


def test_filter() -> None:
    app, s, out = _app()
    s.filter(lambda k, v: "x" in v).to(out)
    assert _run(app, [("a", "x1"), ("b", "y"), ("c", "x2")]) == [("a", "x1"), ("c", "x2")]


def test_filter_not() -> None:
    app, s, out = _app()
    s.filter_not(lambda k, v: "x" in v).to(out)
    assert _run(app, [("a", "x1"), ("b", "y")]) == [("b", "y")]


def test_map() -> None:
    app, s, out = _app()
    s.map(lambda k, v: (v, k)).to(out)
    assert _run(app, [("a", "1"), ("b", "2")]) == [("1", "a"), ("2", "b")]


def test_map_values() -> None:
    app, s, out = _app()
    s.map_values(str.upper).to(out)
    assert _run(app, [("a", "hi"), (None, "yo")]) == [("a", "HI"), (None, "YO")]


def test_flat_map() -> None:
    app, s, out = _app()
    s.flat_map(lambda k, v: [(k + c, c) for c in v]).to(out)
    assert _run(app, [("a", "xy"), ("b", "")]) == [("ax", "x"), ("ay", "y")]


def test_flat_map_values_then_filter_inside_the_inner_loop() -> None:
    app, s, out = _app()
    s.flat_map_values(str.split).filter(lambda k, w: w != "skip").map_values(str.title).to(out)
    assert _run(app, [("a", "one skip two")]) == [("a", "One"), ("a", "Two")]


def test_select_key() -> None:
    app, s, out = _app()
    s.select_key(lambda k, v: v[0]).to(out)
    assert _run(app, [("a", "xy"), ("b", "zz")]) == [("x", "xy"), ("z", "zz")]


def test_peek_and_foreach_see_every_record() -> None:
    app, s, out = _app()
    peeked: list[tuple[str, str]] = []
    each: list[tuple[str, str]] = []
    t = s.peek(lambda k, v: peeked.append((k, v)))
    t.to(out)
    t.foreach(lambda k, v: each.append((k, v)))
    assert _run(app, [("a", "1"), ("b", "2")]) == [("a", "1"), ("b", "2")]
    assert peeked == each == [("a", "1"), ("b", "2")]


def test_split_routes_to_first_matching_branch_and_default() -> None:
    app, s, out = _app()
    other = app.topic("other", key_serde="str", value_serde="str")
    rest = app.topic("rest", key_serde="str", value_serde="str")
    b = (
        s.split(name="route")
        .branch(lambda k, v: v.startswith("a"), name="as")
        .branch(lambda k, v: v.startswith("ab"), name="never")
        .branch(lambda k, v: v.startswith("b"), name="bs")
        .default_branch(name="rest")
    )
    b["as"].to(out)
    b["bs"].to(other)
    b["rest"].to(rest)
    b["never"].to(rest)
    with TopologyTestDriver(app) as driver:
        for v in ["abc", "bcd", "cde"]:
            driver.input_topic("in").pipe_input("k", v)
        assert driver.output_topic("out").read_values_to_list() == ["abc"]
        assert driver.output_topic("other").read_values_to_list() == ["bcd"]
        assert driver.output_topic("rest").read_values_to_list() == ["cde"]


def test_branches_without_default_drop_unmatched() -> None:
    app, s, out = _app()
    b = s.split().branch(lambda k, v: v == "keep", name="keep").branches()
    b["keep"].to(out)
    assert _run(app, [("a", "keep"), ("b", "drop")]) == [("a", "keep")]


def test_split_cannot_be_finished_twice() -> None:
    _, s, _ = _app()
    sp = s.split(name="sp").branch(lambda k, v: True)
    sp.branches()
    with pytest.raises(flows.TopologyError, match="sp"):
        sp.branches()


def test_merge() -> None:
    app = flows.App("m")
    a = app.stream(app.topic("a", key_serde="str", value_serde="str"))
    b = app.stream(app.topic("b", key_serde="str", value_serde="str"))
    out = app.topic("out", key_serde="str", value_serde="str")
    a.map_values(lambda v: "a:" + v).merge(b.map_values(lambda v: "b:" + v)).to(out)
    with TopologyTestDriver(app) as driver:
        driver.input_topic("a").pipe_input("k", "1")
        driver.input_topic("b").pipe_input("k", "2")
        driver.input_topic("a").pipe_input("k", "3")
        assert driver.output_topic("out").read_values_to_list() == ["a:1", "b:2", "a:3"]


def test_repartition_passes_records_through_an_internal_topic() -> None:
    app, s, out = _app("rp")
    s.select_key(lambda k, v: v).repartition(name="again").to(out)
    with TopologyTestDriver(app) as driver:
        driver.input_topic("in").pipe_input("a", "x", timestamp=5)
        assert driver.output_topic("out").read_key_values_to_list() == [("x", "x")]
        internal = driver.produced("rp-again-repartition")
        assert [(r.key, r.value, r.timestamp) for r in internal] == [(b'"x"', b"x", 5)]


def test_timestamps_and_headers_are_kept() -> None:
    app, s, out = _app()
    s.map_values(str.upper).to(out)
    with TopologyTestDriver(app) as driver:
        driver.input_topic("in").pipe_input("k", "v", timestamp=1234, headers=[("h", b"1")])
        rec = driver.output_topic("out").read_record()
        assert (rec.key, rec.value, rec.timestamp, rec.headers) == ("k", "V", 1234, [("h", b"1")])


def test_value_only_input_has_null_key_and_tombstones_pass() -> None:
    app, s, out = _app()
    s.to(out)
    with TopologyTestDriver(app) as driver:
        driver.input_topic("in").pipe_input("v")
        driver.input_topic("in").pipe_input("k", None)
        o = driver.output_topic("out")
        assert o.read_key_value() == (None, "v")
        assert o.read_key_value() == ("k", None)
        assert o.is_empty()
        with pytest.raises(LookupError, match="no more records"):
            o.read_value()


def test_user_function_error_names_the_step() -> None:
    app, s, out = _app()
    s.map_values(lambda v: 1 / 0, name="divide").to(out)
    with TopologyTestDriver(app) as driver, pytest.raises(flows.ProcessingError, match="'divide'"):
        driver.input_topic("in").pipe_input("k", "v")


def test_serde_mistake_shows_in_tests() -> None:
    app = flows.App("s")
    out = app.topic("out", value_serde="int")
    app.stream(app.topic("in", value_serde="str")).to(out, name="write")
    with (
        TopologyTestDriver(app) as driver,
        pytest.raises(flows.ProcessingError, match=r"'write'.*'out'"),
    ):
        driver.input_topic("in").pipe_input("not an int")


def test_decode_error_names_topic_partition_and_offset() -> None:
    app = flows.App("d")
    app.stream(app.topic("in", value_serde="int")).to(app.topic("out", value_serde="int"))
    with (
        TopologyTestDriver(app) as driver,
        pytest.raises(flows.ProcessingError, match=r"'in' \(partition 0, offset 0\)"),
    ):
        driver.input_topic("in", value_serde="str").pipe_input("abc")
