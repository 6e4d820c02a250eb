"""Record order through fan-outs that meet again: batches give Kafka Streams' depth-first order.

Every case runs the same input twice, once as one multi-record batch (``pipe_batches``) and
once a record at a time (``pipe_input``, where depth-first order is trivially kept), and
compares what comes out. A hypothesis test does the same for random split/merge topologies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flows
from core.errors import ProcessingError
from flows import windows
from flows.processor import Record
from flows.testing import TopologyTestDriver

Inputs = list[tuple[Any, Any, int]]
INPUTS: Inputs = [("k", 1, 1), ("k", 2, 2), ("j", 3, 3), ("k", 4, 4), ("j", 5, 5), ("k", 6, 6)]


def _app(name: str) -> tuple[flows.App, flows.Stream, Any]:
    app = flows.App(name)
    src = app.stream(app.topic("in", key_serde="str", value_serde="int"))
    out = app.topic("out", key_serde="str", value_serde="int")
    return app, src, out


def _outputs(
    build: Callable[[], flows.App], inputs: Inputs, *, batch: bool, topics: tuple[str, ...]
) -> dict[str, list[tuple[Any, Any]]]:
    app = build()
    with TopologyTestDriver(app) as d:
        if batch:
            d.pipe_batches({"in": inputs})
        else:
            handle = d.input_topic("in")
            for k, v, ts in inputs:
                handle.pipe_input(k, v, timestamp=ts)
        return {t: d.output_topic(t).read_key_values_to_list() for t in topics}


def _same(
    build: Callable[[], flows.App], inputs: Inputs = INPUTS, topics: tuple[str, ...] = ("out",)
) -> dict[str, list[tuple[Any, Any]]]:
    batched = _outputs(build, inputs, batch=True, topics=topics)
    assert batched == _outputs(build, inputs, batch=False, topics=topics)
    return batched


def _even(k: Any, v: int) -> bool:
    return v % 2 == 0


def test_split_then_merge_keeps_input_order() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-merge")
        br = src.split(name="sp").branch(_even, name="even").default_branch(name="odd")
        br["even"].merge(br["odd"], name="m").to(out, name="sink")
        return app

    got = _same(build, [("k", 1, 1), ("k", 2, 2), ("k", 3, 3), ("k", 4, 4)])
    assert [v for _, v in got["out"]] == [1, 2, 3, 4]


def test_branches_writing_one_topic_keep_input_order() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-sink")
        br = src.split().branch(_even, name="even").default_branch(name="odd")
        br["even"].map_values(lambda v: v * 10).to(out)
        br["odd"].to(out)
        return app

    assert [v for _, v in _same(build)["out"]] == [1, 20, 3, 40, 5, 60]


def test_reduce_through_a_merge_keeps_the_last_value_per_key() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-reduce")
        br = src.split().branch(_even, name="even").default_branch(name="odd")
        merged = br["even"].merge(br["odd"])
        merged.group_by_key().reduce(lambda agg, v: v, name="latest").to_stream().to(out)
        return app

    got = _same(build)
    assert got["out"][-2:] == [("j", 5), ("k", 6)]
    app = build()
    with TopologyTestDriver(app) as d:
        d.pipe_batches({"in": [("k", 3, 1), ("k", 2, 2), ("k", 1, 3)]})
        assert d.store("latest").get("k") == 1


def test_two_children_of_one_step_alternate_per_record() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-fan")
        s = src.map_values(lambda v: v + 100)
        s.filter(lambda k, v: v % 3 != 0).to(out)
        s.map_values(lambda v: -v).to(out)
        return app

    got = _same(build)
    assert [v for _, v in got["out"]][:4] == [101, -101, -102, 103]


def test_two_children_merged_again() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-fan-merge")
        a = src.filter(lambda k, v: v > 1)
        b = src.map_values(lambda v: v * 100)
        a.merge(b).map_values(lambda v: v + 1).to(out)
        return app

    assert [v for _, v in _same(build)["out"]][:5] == [101, 3, 201, 4, 301]


def test_flat_map_in_a_branch_keeps_its_outputs_together() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-flat")
        br = src.split().branch(_even, name="even").default_branch(name="odd")
        br["even"].flat_map_values(lambda v: [v, v * 10, v * 100]).merge(br["odd"]).to(out)
        return app

    got = [v for _, v in _same(build)["out"]]
    assert got[:5] == [1, 2, 20, 200, 3]


class _Tag:
    """Forwards each record twice, tagged, and notes the order it saw records in."""

    seen: list[int] = []

    def __init__(self, tag: int) -> None:
        self.tag = tag

    def process(self, record: Record, ctx: Any) -> None:
        _Tag.seen.append(record.value)
        ctx.forward(record.with_value(record.value * 1000 + self.tag))
        ctx.forward(record.with_value(record.value * 1000 + self.tag + 1))


def test_processors_in_branches_forward_in_input_order() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-proc")
        br = src.split().branch(_even, name="even").default_branch(name="odd")
        a = br["even"].process(lambda: _Tag(10), value_serde="int")
        b = br["odd"].process(lambda: _Tag(20), value_serde="int")
        a.merge(b).to(out)
        return app

    got = [v for _, v in _same(build)["out"]]
    assert got[:4] == [1020, 1021, 2010, 2011]


def test_a_processor_after_a_merge_sees_input_order() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-proc-after")
        br = src.split().branch(_even, name="even").default_branch(name="odd")
        br["even"].merge(br["odd"]).process(lambda: _Tag(0), value_serde="int").to(out)
        return app

    _Tag.seen = []
    build_app = build()
    with TopologyTestDriver(build_app) as d:
        d.pipe_batches({"in": INPUTS})
    assert _Tag.seen == [1, 2, 3, 4, 5, 6]
    _same(build)


def test_children_of_a_processor_meeting_again_alternate() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-proc-fan")
        p = src.process(lambda: _Tag(0), value_serde="int")
        p.filter(lambda k, v: v % 2 == 0).to(out)
        p.map_values(lambda v: -v).to(out)
        return app

    got = [v for _, v in _same(build)["out"]]
    assert got[:4] == [1000, -1000, -1001, 2000]


def test_processors_sharing_a_store_in_two_branches_see_input_order() -> None:
    class Running:
        def process(self, record: Record, ctx: Any) -> None:
            store = ctx.store("total")
            total = (store.get("t") or 0) + record.value
            store.put("t", total)
            ctx.forward(record.with_value(total))

    def build() -> flows.App:
        app, src, out = _app("ord-shared-store")
        total = app.store("total", key_serde="str", value_serde="int")
        br = src.split().branch(_even, name="even").default_branch(name="odd")
        br["even"].process(Running, stores=[total], value_serde="int").to(out)
        br["odd"].process(Running, stores=[total], value_serde="int").to(
            app.topic("out2", key_serde="str", value_serde="int")
        )
        return app

    got = _same(build, topics=("out", "out2"))
    assert [v for _, v in got["out"]] == [3, 10, 21]
    assert [v for _, v in got["out2"]] == [1, 6, 15]


def test_a_stream_joined_with_a_branch_of_itself() -> None:
    def build() -> flows.App:
        app, src, out = _app("ord-self-join")
        other = src.map_values(lambda v: v * 10)
        src.join(other, lambda a, b: a * 1000 + b, window=windows.join_window(60)).to(out)
        return app

    got = _same(build, [("k", 1, 1), ("k", 2, 2), ("j", 3, 3)])
    # each record reaches the map_values side (created first) before its own join side
    assert [v for _, v in got["out"]][:4] == [1010, 1020, 2010, 2020]


def test_linear_chain_still_runs_batch_by_batch() -> None:
    app, src, out = _app("ord-linear")
    src.filter(lambda k, v: v > 0).map_values(lambda v: v + 1).to(out)
    with TopologyTestDriver(app) as d:
        body = d.tasks[0].generated["KSTREAM-SOURCE-0000000000"]
        assert "([(k, v, ts, h)])" not in body  # no per-record calls
        d.pipe_batches({"in": INPUTS})
        assert [v for _, v in d.output_topic("out").read_key_values_to_list()][:2] == [2, 3]


def test_branches_to_different_topics_do_not_call_steps_per_record() -> None:
    app, src, out = _app("ord-apart")
    br = src.split().branch(_even, name="even").default_branch(name="odd")
    br["even"].process(lambda: _Tag(0), value_serde="int").to(out)
    br["odd"].to(app.topic("out2", key_serde="str", value_serde="int"))
    with TopologyTestDriver(app) as d:
        body = d.tasks[0].generated["KSTREAM-SOURCE-0000000000"]
        assert "([(k, v, ts, h)])" not in body  # the processor gets its records as one batch
        d.pipe_batches({"in": INPUTS})
        assert [v for _, v in d.output_topic("out2").read_key_values_to_list()] == [1, 3, 5]


def test_a_failing_step_inside_a_branch_is_named() -> None:
    def boom(v: int) -> int:
        raise ValueError("no")

    app, src, out = _app("ord-error")
    br = src.split().branch(_even, name="even").default_branch(name="odd")
    br["even"].map_values(boom, name="explode").merge(br["odd"]).to(out)
    with (
        TopologyTestDriver(app) as d,
        pytest.raises(
            ProcessingError, match=r"step 'explode' failed in .*boom \(partition 0, offset 1\)"
        ),
    ):
        d.pipe_batches({"in": INPUTS})
    assert not d.produced("out")  # nothing of the failed batch was written


# -- random topologies -----------------------------------------------------------------------

_FUNCS: list[tuple[str, Callable[[Any], Any]]] = [
    ("plus", lambda v: v + 1),
    ("neg", lambda v: -v),
    ("times", lambda v: v * 7),
]
_PREDS: list[Callable[[Any, Any], bool]] = [
    lambda k, v: v % 2 == 0,
    lambda k, v: v % 3 == 0,
    lambda k, v: v > 10,
    lambda k, v: k == "a",
]


def _random_app(data: st.DataObject, name: str) -> Callable[[], flows.App]:
    """Draw a recipe once; the returned function builds the same app every time."""
    recipe = []
    keyed = [False]  # per stream: is its key changed (a processor upstream)?
    for _ in range(data.draw(st.integers(1, 7), label="steps")):
        ops = ["split", "merge", "map", "filter", "flat", "process", "to", "count", "peek", "join"]
        op = data.draw(st.sampled_from(ops))
        src = data.draw(st.integers(0, len(keyed) - 1))
        if op == "split":
            preds = data.draw(st.lists(st.integers(0, len(_PREDS) - 1), min_size=1, max_size=3))
            default = data.draw(st.booleans())
            recipe.append((op, src, (preds, default)))
            keyed += [keyed[src]] * (len(preds) + int(default))
        elif op == "merge":
            other = data.draw(st.integers(0, len(keyed) - 1))
            recipe.append((op, src, other))
            keyed.append(keyed[src] or keyed[other])
        elif op == "join":
            other = data.draw(st.integers(0, len(keyed) - 1))
            # not with itself, and not after a processor (a repartition topic would feed the
            # join in another task, in an order the batch size decides, as with Kafka)
            if other != src and not keyed[src] and not keyed[other]:
                recipe.append((op, src, other))
        elif op in ("map", "filter"):
            recipe.append((op, src, data.draw(st.integers(0, 2))))
            keyed.append(keyed[src])
        elif op in ("flat", "process", "peek"):
            recipe.append((op, src, None))
            keyed.append(keyed[src] or op == "process")
        else:
            recipe.append((op, src, data.draw(st.sampled_from(["out", "out2"]))))
    recipe.append(("to", len(keyed) - 1, "out"))

    def build() -> flows.App:
        app, s, _ = _app(name)
        names = ("out", "out2", *(f"cnt{i}" for i in range(len(recipe))))
        topics = {t: app.topic(t, key_serde="str", value_serde="int") for t in names}
        streams = [s]
        window = windows.join_window(5)
        for n, (op, i, arg) in enumerate(recipe):
            cur = streams[i]
            if op == "split":
                preds, default = arg
                sp = cur.split()
                for j in preds:
                    sp = sp.branch(_PREDS[j])
                branches = sp.default_branch() if default else sp.branches()
                streams.extend(branches.values())
            elif op == "merge":
                streams.append(cur.merge(streams[arg]))
            elif op == "map":
                streams.append(cur.map_values(_FUNCS[arg][1]))
            elif op == "filter":
                streams.append(cur.filter(_PREDS[arg]))
            elif op == "flat":
                streams.append(cur.flat_map_values(lambda v: [v, v + 1000]))
            elif op == "process":
                streams.append(cur.process(lambda: _Tag(len(streams)), value_serde="int"))
            elif op == "peek":
                streams.append(cur.peek(lambda k, v: None))
            elif op == "join":
                joined = cur.join(streams[arg], lambda a, b: a * 100 + b, window=window)
                joined.to(topics[f"cnt{n}"])
            elif op == "count":
                # a count after a processor reads a repartition topic in another task: each
                # count writes its own topic, as tasks' outputs have no order among them
                cur.group_by_key().count().to_stream().to(topics[f"cnt{n}"])
            else:
                cur.to(topics[arg])
        return app

    return build


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    inputs=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(-20, 20)), min_size=1, max_size=12
    ),
)
def test_random_split_merge_topologies_match_one_at_a_time(
    data: st.DataObject, inputs: list[tuple[str, int]]
) -> None:
    build = _random_app(data, "ord-random")
    records = [(k, v, i) for i, (k, v) in enumerate(inputs)]
    _same(build, records, topics=("out", "out2", *(f"cnt{i}" for i in range(8))))
