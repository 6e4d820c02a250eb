"""Bad topologies fail at build time with an error naming the step and the fix."""

from __future__ import annotations

import pytest

import flows
from flows.errors import TopologyError


def test_duplicate_step_name() -> None:
    app = flows.App("dup")
    s = app.stream(app.topic("in", value_serde="str"))
    s.filter(lambda k, v: True, name="step-a").map_values(str.upper, name="step-a")
    with pytest.raises(TopologyError, match=r"'step-a' is used twice.*different name=") as err:
        app.topology  # noqa: B018
    assert err.value.step == "step-a"


def test_duplicate_store_name() -> None:
    app = flows.App("dups")
    s = app.stream(app.topic("in", key_serde="str", value_serde="str"))
    s.group_by_key().count(name="n")
    app.store("n", key_serde="str", value_serde="int")
    with pytest.raises(TopologyError, match="store name 'n' is used twice"):
        app.topology  # noqa: B018


def test_missing_value_serde_on_source_topic() -> None:
    app = flows.App("ms")
    app.stream(app.topic("raw"), name="read-raw").to(app.topic("out", value_serde="str"))
    with pytest.raises(TopologyError, match=r"'read-raw' reads topic 'raw'.*value_serde="):
        app.topology  # noqa: B018


def test_missing_value_serde_on_sink_topic() -> None:
    app = flows.App("ms2")
    app.stream(app.topic("in", value_serde="str")).to(app.topic("out"), name="write")
    with pytest.raises(TopologyError, match=r"'write' writes topic 'out'.*value_serde="):
        app.topology  # noqa: B018


def test_missing_serde_for_repartition_without_default() -> None:
    app = flows.App("ms3", default_serde=None)
    s = app.stream(app.topic("in", key_serde="str", value_serde="str"))
    s.flat_map_values(str.split).group_by(lambda k, w: w, name="by-word").count(name="n")
    with pytest.raises(
        TopologyError, match=r"'by-word-repartition'.*key serde is unknown.*group_by"
    ) as err:
        app.topology  # noqa: B018
    assert err.value.step == "by-word-repartition"


def test_missing_serde_for_store_without_default() -> None:
    app = flows.App("ms4", default_serde=None)
    s = app.stream(app.topic("in", key_serde="str", value_serde="str"))
    s.map_values(len).group_by_key().reduce(max, name="longest")
    with pytest.raises(TopologyError, match=r"'longest'.*value serde is unknown.*reduce"):
        app.topology  # noqa: B018


def test_merge_of_non_copartitioned_inputs_before_stateful_step() -> None:
    app = flows.App("cp")
    a = app.stream(app.topic("a", key_serde="str", value_serde="str", partitions=3))
    b = app.stream(app.topic("b", key_serde="str", value_serde="str", partitions=4))
    a.merge(b).group_by_key().count(name="n")
    with pytest.raises(
        TopologyError, match=r"'n' needs co-partitioned.*'a' \(3 partitions\).*'b' \(4.*repartition"
    ) as err:
        app.topology  # noqa: B018
    assert err.value.step == "n"


def test_merge_of_copartitioned_inputs_is_fine_and_stateless_merge_needs_nothing() -> None:
    app = flows.App("cp2")
    a = app.stream(app.topic("a", key_serde="str", value_serde="str", partitions=3))
    b = app.stream(app.topic("b", key_serde="str", value_serde="str", partitions=3))
    a.merge(b).group_by_key().count(name="n")
    assert app.topology.subtopologies[0].partitions == 3

    app2 = flows.App("cp3")
    c = app2.stream(app2.topic("c", value_serde="str", partitions=2))
    d = app2.stream(app2.topic("d", value_serde="str", partitions=5))
    c.merge(d).to(app2.topic("out", value_serde="str"))
    assert app2.topology.subtopologies[0].partitions == 5


def test_repartition_fixes_copartitioning() -> None:
    app = flows.App("cp4")
    a = app.stream(app.topic("a", key_serde="str", value_serde="str", partitions=3))
    b = app.stream(app.topic("b", key_serde="str", value_serde="str", partitions=4))
    a.merge(b.repartition(name="b4", partitions=3)).group_by_key().count(name="n")
    assert [s.partitions for s in app.topology.subtopologies] == [3, 4]


def test_repartition_topic_inherits_upstream_partitions() -> None:
    app = flows.App("rp")
    s = app.stream(app.topic("a", key_serde="str", value_serde="str", partitions=6))
    s.group_by(lambda k, v: v, name="g").count(name="n")
    assert [s.partitions for s in app.topology.subtopologies] == [6, 6]


def test_reading_a_topic_twice() -> None:
    app = flows.App("twice")
    t = app.topic("in", value_serde="str")
    app.stream(t)
    with pytest.raises(TopologyError, match=r"already read.*reuse"):
        app.stream(t)


@pytest.mark.parametrize("bad", ["", "has space", "a/b", 5])
def test_bad_names(bad: object) -> None:
    with pytest.raises(TopologyError, match="not valid"):
        flows.App(bad)  # type: ignore[arg-type]
    app = flows.App("ok")
    s = app.stream(app.topic("in", value_serde="str"))
    with pytest.raises(TopologyError, match="not valid"):
        s.filter(lambda k, v: True, name=bad)  # type: ignore[arg-type]


def test_bad_serde_and_partitions_and_unknown_topic() -> None:
    app = flows.App("bs")
    with pytest.raises(TopologyError, match="not a serde"):
        app.topic("x", value_serde="yaml")
    with pytest.raises(TopologyError, match="partitions must be"):
        app.topic("x", value_serde="str", partitions=0)
    with pytest.raises(TopologyError, match=r"unknown topic 'nope'.*app.topic"):
        app.stream("nope")
    app.topic("x", value_serde="str")
    with pytest.raises(TopologyError, match="declared twice"):
        app.topic("x", value_serde="int")


def test_undeclared_store_in_process() -> None:
    app = flows.App("us")
    app.stream(app.topic("in", value_serde="str")).process(
        lambda r, c: None, stores=["ghost"], name="p"
    )
    with pytest.raises(TopologyError, match=r"'p' uses store 'ghost'.*app.store\('ghost'"):
        app.topology  # noqa: B018


def test_empty_app_and_non_callables() -> None:
    with pytest.raises(TopologyError, match="no steps"):
        flows.App("empty").topology  # noqa: B018
    app = flows.App("nc")
    s = app.stream(app.topic("in", value_serde="str"))
    for op in ("filter", "map", "map_values", "flat_map", "select_key", "peek", "group_by"):
        with pytest.raises(TopologyError, match=f"{op}\\(\\) needs a function"):
            getattr(s, op)(None)
    with pytest.raises(TopologyError, match="merge"):
        s.merge("not a stream")  # type: ignore[arg-type]
